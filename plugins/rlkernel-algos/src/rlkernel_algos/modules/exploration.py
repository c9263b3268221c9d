"""Exploration modules: put after a policy, they perturb its action.

Each acts only when :func:`rlkernel.exploration.exploration_type` is ``RANDOM`` (the
default, and what collectors set); under ``DETERMINISTIC``, ``MODE``, ``MEAN`` or
``MEDIAN`` the action passes through untouched::

    >>> from tensordict.nn import TensorDictSequential
    >>> policy = TensorDictSequential(actor, EGreedyModule(env.action_spec))   # doctest: +SKIP
    >>> with set_exploration_type(ExplorationType.DETERMINISTIC):               # doctest: +SKIP
    ...     env.rollout(100, policy)                                              # greedy

Annealing state (step counter, current epsilon/sigma) lives in buffers, so it is saved by
``state_dict`` and restored by ``load_state_dict``. Call ``step(frames)`` after each batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from rlkernel.errors import SpecError
from rlkernel.exploration import ExplorationType, exploration_type
from rlkernel_algos.modules.actors import NestedKey, action_leaf_spec

__all__ = ["AdditiveGaussianModule", "EGreedyModule", "OrnsteinUhlenbeckProcessModule"]


def _positive_int(value: Any, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpecError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


class _Annealed(TensorDictModuleBase):
    """A linear schedule from ``init`` to ``end`` over ``annealing_num_steps`` calls of ``step``."""

    _value_name = "value"

    def __init__(self, spec: Any, action_key: NestedKey, init: float, end: float, annealing_num_steps: int,
                 device: torch.device | str | None) -> None:
        super().__init__()
        owner = type(self).__name__
        self.spec = action_leaf_spec(spec, action_key)
        if self.spec is None:
            raise SpecError(f"{owner}: an action spec is required")
        self.action_key = action_key
        self.annealing_num_steps = _positive_int(annealing_num_steps, "annealing_num_steps", owner)
        self.register_buffer("_init", torch.tensor(float(init), device=device))
        self.register_buffer("_end", torch.tensor(float(end), device=device))
        self.register_buffer("num_steps", torch.zeros((), dtype=torch.int64, device=device))
        self.register_buffer(self._value_name, torch.tensor(float(init), device=device))

    def step(self, frames: int = 1) -> None:
        """Advance the schedule by ``frames`` steps (it stays at its end value afterwards)."""
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 0:
            raise SpecError(f"{type(self).__name__}.step: frames must be a non-negative int, got {frames!r}")
        self.num_steps += frames
        progress = min(int(self.num_steps) / self.annealing_num_steps, 1.0)
        # end + (init - end) * remaining: exactly ``end`` once annealed.
        getattr(self, self._value_name).copy_(self._end + (self._init - self._end) * (1.0 - progress))

    def _action(self, tensordict: TensorDictBase) -> torch.Tensor:
        action = tensordict.get(self.action_key, None)
        if action is None:
            raise SpecError(
                f"{type(self).__name__}: the input has no action at {self.action_key!r} (put the module "
                f"after the policy); keys: {list(tensordict.keys(True, True))}"
            )
        spec_shape = tuple(self.spec.shape)
        if tuple(action.shape[action.ndim - len(spec_shape):]) != spec_shape or action.ndim < len(spec_shape):
            raise SpecError(
                f"{type(self).__name__}: action {self.action_key!r} of shape {list(action.shape)} does not "
                f"end with the spec's shape {list(spec_shape)}"
            )
        return action

    @staticmethod
    def _per_env(flag: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """A flag shaped like the batch, broadcast over the action's remaining dims."""
        return flag.reshape(tuple(flag.shape) + (1,) * (like.ndim - flag.ndim))


class EGreedyModule(_Annealed):
    """Epsilon-greedy: with probability ``eps`` (per batch element), a uniformly random action.

    ``eps`` goes linearly from ``eps_init`` to ``eps_end`` over ``annealing_num_steps`` calls
    of :meth:`step` (exactly ``eps_end`` from then on). With ``action_mask_key``, random
    actions are drawn among the allowed ones (the mask is bool, True = allowed, one flag per
    category: the one-hot action's shape, or a categorical action's shape plus ``n``).

    Args:
        spec: the action spec (or a Composite holding ``action_key``).
        eps_init, eps_end, annealing_num_steps: the schedule.
        action_key: the action perturbed.
        action_mask_key: the action mask, when there is one (discrete specs only).
        device: where the buffers live.

    Example::

        >>> from rlkernel.specs import Categorical
        >>> eg = EGreedyModule(Categorical(4), eps_init=1.0, eps_end=0.0, annealing_num_steps=10)
        >>> eg.step(10); float(eg.eps)
        0.0
    """

    _value_name = "eps"

    def __init__(
        self,
        spec: Any,
        eps_init: float = 1.0,
        eps_end: float = 0.1,
        annealing_num_steps: int = 1000,
        *,
        action_key: NestedKey = "action",
        action_mask_key: NestedKey | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        for name, value in (("eps_init", eps_init), ("eps_end", eps_end)):
            if not 0.0 <= float(value) <= 1.0:
                raise SpecError(f"EGreedyModule: {name} must be in [0, 1], got {value!r}")
        super().__init__(spec, action_key, eps_init, eps_end, annealing_num_steps, device)
        from rlkernel.specs import Categorical, OneHot

        self._one_hot = isinstance(self.spec, OneHot)
        if action_mask_key is not None and not isinstance(self.spec, (Categorical, OneHot)):
            raise SpecError(
                f"EGreedyModule: action masks need a Categorical or OneHot spec, got {type(self.spec).__name__}"
            )
        self.action_mask_key = action_mask_key
        self.in_keys = [action_key] + ([action_mask_key] if action_mask_key is not None else [])
        self.out_keys = [action_key]

    def _random_masked(self, action: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n = self.spec.n
        if self._one_hot:
            fits = tuple(mask.shape) == tuple(action.shape)
        else:
            lead = tuple(mask.shape[:-1])
            fits = mask.shape[-1:] == (n,) and (
                lead == tuple(action.shape) or (action.shape[-1:] == (1,) and lead == tuple(action.shape[:-1]))
            )
        if mask.dtype is not torch.bool or not fits:
            raise SpecError(
                f"EGreedyModule: the action mask {self.action_mask_key!r} must be bool with one flag per "
                f"category (last dim {n}) for the action of shape {list(action.shape)}, got "
                f"{mask.dtype} of shape {list(mask.shape)}"
            )
        scores = torch.rand(mask.shape, device=mask.device).masked_fill_(~mask, -1.0)
        index = scores.argmax(-1)
        if self._one_hot:
            return torch.nn.functional.one_hot(index, n).to(action.dtype)
        return index.reshape(action.shape).to(action.dtype)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Replace the action by a random one with probability ``eps`` (under ``RANDOM`` only)."""
        if exploration_type() is not ExplorationType.RANDOM:
            return tensordict
        action = self._action(tensordict)
        if self.action_mask_key is not None:
            mask = tensordict.get(self.action_mask_key, None)
            if mask is None:
                raise SpecError(f"EGreedyModule: the input has no action mask at {self.action_mask_key!r}")
            random_action = self._random_masked(action, mask)
        else:
            lead = action.shape[: action.ndim - len(self.spec.shape)]
            random_action = self.spec.rand(lead).to(action.device)
        explore = torch.rand(tensordict.batch_size, device=action.device) < self.eps.to(action.device)
        tensordict.set(self.action_key, torch.where(self._per_env(explore, action), random_action, action))
        return tensordict


class AdditiveGaussianModule(_Annealed):
    """Add ``sigma * Normal(mean, std)`` noise to a continuous action, then clip it to the spec.

    ``sigma`` goes linearly from ``sigma_init`` to ``sigma_end`` over ``annealing_num_steps``
    calls of :meth:`step`.

    Args:
        spec: the action spec (``Bounded`` for clipping; ``safe=False`` skips the clipping).
        sigma_init, sigma_end, annealing_num_steps: the noise scale schedule.
        mean, std: of the unscaled noise.
        action_key: the action perturbed.
        safe: clip the noisy action to the spec's bounds (``spec.project``).
        device: where the buffers live.
    """

    _value_name = "sigma"

    def __init__(
        self,
        spec: Any,
        sigma_init: float = 1.0,
        sigma_end: float = 0.1,
        annealing_num_steps: int = 1000,
        mean: float = 0.0,
        std: float = 1.0,
        *,
        action_key: NestedKey = "action",
        safe: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        if min(float(sigma_init), float(sigma_end), float(std)) < 0:
            raise SpecError(f"AdditiveGaussianModule: sigma_init, sigma_end and std must be >= 0, got "
                            f"{sigma_init}, {sigma_end}, {std}")
        super().__init__(spec, action_key, sigma_init, sigma_end, annealing_num_steps, device)
        if not self.spec.dtype.is_floating_point:
            raise SpecError(f"AdditiveGaussianModule: needs a continuous (float) action spec, got {self.spec!r}")
        self.mean, self.std, self.safe = float(mean), float(std), bool(safe)
        self.in_keys = [action_key]
        self.out_keys = [action_key]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Add the noise (under ``RANDOM`` only)."""
        if exploration_type() is not ExplorationType.RANDOM:
            return tensordict
        action = self._action(tensordict)
        noise = torch.randn_like(action) * self.std + self.mean
        out = action + self.sigma.to(action.device) * noise
        tensordict.set(self.action_key, self.spec.project(out) if self.safe else out)
        return tensordict


class OrnsteinUhlenbeckProcessModule(_Annealed):
    """Temporally correlated noise (Ornstein-Uhlenbeck), as used by DDPG.

    ``noise <- noise + theta * (mu - noise) * dt + sigma_t * sqrt(dt) * N(0, 1)`` and
    ``action <- action + eps * noise``. The noise state travels in the TensorDict, next to
    the action, under ``"_ou_prev_noise"`` (the action's shape) and ``"_ou_steps"`` (int64,
    ``[*batch, 1]``) (rename with ``noise_key`` / ``steps_key``): ``step_mdp`` carries them
    to the next step. They are (re)set to ``x0`` and 0 where the bool entry ``is_init_key``
    (``[*batch, 1]``, True at the first step of an episode) is True, and wherever they are
    missing.

    ``eps`` anneals from ``eps_init`` to ``eps_end`` over ``annealing_num_steps`` calls of
    :meth:`step`; ``sigma_t`` from ``sigma`` to ``sigma_min`` over ``n_steps_annealing`` steps
    of each episode (constant when ``sigma_min`` is None).
    """

    _value_name = "eps"

    def __init__(
        self,
        spec: Any,
        eps_init: float = 1.0,
        eps_end: float = 0.1,
        annealing_num_steps: int = 1000,
        theta: float = 0.15,
        mu: float = 0.0,
        sigma: float = 0.2,
        dt: float = 1e-2,
        x0: float | torch.Tensor | None = None,
        sigma_min: float | None = None,
        n_steps_annealing: int = 1000,
        *,
        action_key: NestedKey = "action",
        is_init_key: NestedKey = "is_init",
        noise_key: NestedKey = "_ou_prev_noise",
        steps_key: NestedKey = "_ou_steps",
        safe: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        if not (theta >= 0 and sigma >= 0 and dt > 0):
            raise SpecError(f"OrnsteinUhlenbeckProcessModule: need theta >= 0, sigma >= 0, dt > 0; got "
                            f"{theta}, {sigma}, {dt}")
        super().__init__(spec, action_key, eps_init, eps_end, annealing_num_steps, device)
        self.theta, self.mu, self.sigma, self.dt = float(theta), float(mu), float(sigma), float(dt)
        self.sigma_min = self.sigma if sigma_min is None else float(sigma_min)
        self.n_steps_annealing = _positive_int(n_steps_annealing, "n_steps_annealing", "OrnsteinUhlenbeckProcessModule")
        self.x0 = 0.0 if x0 is None else x0
        self.is_init_key, self.noise_key, self.steps_key = is_init_key, noise_key, steps_key
        self.safe = bool(safe)
        self.in_keys = [action_key, is_init_key, noise_key, steps_key]
        self.out_keys = [action_key, noise_key, steps_key]

    def _state(self, tensordict: TensorDictBase, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = tensordict.batch_size
        noise = tensordict.get(self.noise_key, None)
        steps = tensordict.get(self.steps_key, None)
        fresh_noise = torch.zeros_like(action) + torch.as_tensor(self.x0, dtype=action.dtype, device=action.device)
        fresh_steps = torch.zeros((*batch, 1), dtype=torch.int64, device=action.device)
        if noise is None or steps is None:
            return fresh_noise, fresh_steps
        is_init = tensordict.get(self.is_init_key, None)
        if is_init is not None:
            if is_init.dtype is not torch.bool or tuple(is_init.shape) not in ((*batch, 1), tuple(batch)):
                raise SpecError(
                    f"OrnsteinUhlenbeckProcessModule: {self.is_init_key!r} must be bool of shape "
                    f"{[*batch, 1]}, got {is_init.dtype} of shape {list(is_init.shape)}"
                )
            init = is_init.reshape(batch)
            noise = torch.where(self._per_env(init, noise), fresh_noise, noise)
            steps = torch.where(self._per_env(init, steps), fresh_steps, steps)
        return noise, steps

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Advance the noise and add it to the action (under ``RANDOM`` only)."""
        if exploration_type() is not ExplorationType.RANDOM:
            return tensordict
        action = self._action(tensordict)
        noise, steps = self._state(tensordict, action)
        decay = (self.sigma - self.sigma_min) / self.n_steps_annealing
        sigma_t = torch.clamp(self.sigma - decay * steps.to(action.dtype), min=self.sigma_min)
        sigma_t = self._per_env(sigma_t.reshape(tensordict.batch_size), action)
        noise = noise + self.theta * (self.mu - noise) * self.dt + sigma_t * math.sqrt(self.dt) * torch.randn_like(
            action
        )
        out = action + self.eps.to(action.device) * noise
        tensordict.set(self.action_key, self.spec.project(out) if self.safe else out)
        tensordict.set(self.noise_key, noise)
        tensordict.set(self.steps_key, steps + 1)
        return tensordict
