"""``GymWrapper`` and ``GymEnv``: gymnasium environments behind rlkernel's ``EnvBase``.

A single gymnasium ``Env`` gives an rlkernel env of batch size ``()``; a gymnasium
``VectorEnv`` (``GymEnv(..., num_envs=N)``) one of batch size ``(N,)``.

The TensorDict of a step::

    observation (or the Dict observation's entries), [pixels], [info entries], action,
    done, terminated, truncated,
    next: {observation..., reward (float32, (..., 1)), done, terminated, truncated}

``terminated`` and ``truncated`` are gymnasium's own flags, kept apart; ``done`` is their or.

**Vectorised envs and resets.** The vector env is made with
``autoreset_mode=AutoresetMode.DISABLED``: gymnasium never resets on its own. ``step`` returns
the true last observation of an episode in ``("next", "observation")``; the sub-envs that are
done are reset only when rlkernel says so (``reset`` with a ``"_reset"`` mask, as
``step_and_maybe_reset`` and ``rollout`` do), through gymnasium's
``reset(options={"reset_mask": ...})``. No transition is lost or mixed across a reset.
Stepping a sub-env whose episode ended without resetting it is an
:class:`~rlkernel.errors.EnvError`. A user-made vector env given to :class:`GymWrapper` must
use the ``NEXT_STEP`` or ``DISABLED`` autoreset mode (both work with masked resets).

**Seeding.** ``set_seed(seed)`` seeds the action space and the next full reset:
``env.reset(seed=seed)`` (sub-env ``i`` of a vector env gets ``seed + i``, as in gymnasium);
later resets continue each env's random stream, so equally seeded envs replay identically.

**One step.** The gymnasium step is written once, as a direct step
(``FastPaths._step_into_fn``) that writes gymnasium's outputs into preallocated tensors:
``ParallelEnv``/``SerialEnv`` workers and the collectors bind it to their own buffers, and
``step`` goes through the TensorDict ``_step`` that ``EnvBase`` derives from it (fresh
tensors every step: returned TensorDicts may be kept and stacked; the TensorDict is built
without the constructor's per-entry checks and holds every done flag). Actions are checked
by the core's ``EnvBase.check_action`` (whose spec tests are fast on the CPU).
``benchmarks/bench_gym_step.py`` measures it against plain gymnasium.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from tensordict import TensorDict, TensorDictBase

from rlkernel._compat import tensordict as td_compat
from rlkernel.envs import EnvBase
from rlkernel.envs.step import DONE, RESET, TERMINATED, TRUNCATED
from rlkernel.errors import EnvError, SpecError
from rlkernel.specs import TensorSpec
from rlkernel_gym.fast_paths import FastPaths
from rlkernel_gym.info import InfoReader, infer_info_specs
from rlkernel_gym.pixels import PixelObservation
from rlkernel_gym.spaces import Layout

VECTORIZATION_MODES = ("sync", "async")
InfoKeys = Mapping[str, TensorSpec] | Iterable[str] | None


class GymWrapper(FastPaths, EnvBase):
    """An rlkernel environment around a gymnasium ``Env`` or ``VectorEnv``.

    Its step is a direct step (``direct_step``): ``_step_into_fn`` (in
    :mod:`rlkernel_gym.fast_paths`) writes gymnasium's outputs into preallocated tensors and
    the TensorDict ``_step`` is derived from it by ``EnvBase``. A subclass that defines its
    own ``_step`` is stepped through that ``_step`` everywhere; one that defines ``reset``,
    ``_reset``, ``maybe_reset`` or ``_merge_partial_reset`` loses the one-pass vector
    ``maybe_reset`` (``one_pass_reset``).

    Args:
        env: a gymnasium ``Env`` (batch size ``()``) or ``VectorEnv`` (batch size
            ``(num_envs,)``, autoreset mode ``NEXT_STEP`` or ``DISABLED``).
        from_pixels: add ``env.render()`` as ``"pixels"`` (uint8, ``(H, W, 3)``); the env
            must have ``render_mode="rgb_array"``. Single envs only here: for a vectorised
            env use ``GymEnv(..., num_envs=N, from_pixels=True)``.
        pixels_only: keep only ``"pixels"`` (with ``from_pixels``).
        info_keys: ``info`` entries to read into the TensorDict: ``{name: spec}`` or a list
            of names whose specs are inferred (see :mod:`rlkernel_gym.info`).
        device: where the TensorDicts live.
        check_actions: validate actions against the action spec in ``step``.

    >>> import gymnasium
    >>> env = GymWrapper(gymnasium.make("Pendulum-v1"))
    >>> env.rollout(3)["next", "observation"].shape
    torch.Size([3, 3])
    """

    direct_step = True
    #: ``maybe_reset`` of a plain vector env in one pass (see ``FastPaths.maybe_reset``)
    one_pass_reset: ClassVar[bool] = True
    capability_methods: ClassVar[dict[str, tuple[str, ...]]] = {
        **EnvBase.capability_methods,
        "one_pass_reset": ("reset", "_reset", "maybe_reset", "_merge_partial_reset", "_any_done"),
    }

    def __init__(
        self,
        env: gymnasium.Env | VectorEnv,
        *,
        from_pixels: bool = False,
        pixels_only: bool = False,
        info_keys: InfoKeys = None,
        device: torch.device | str | None = None,
        check_actions: bool = True,
    ) -> None:
        is_vector = isinstance(env, VectorEnv)
        if not is_vector and not isinstance(env, gymnasium.Env):
            raise EnvError(f"GymWrapper needs a gymnasium Env or VectorEnv, got {type(env).__name__}")
        if pixels_only and not from_pixels:
            raise EnvError("pixels_only=True needs from_pixels=True")
        if from_pixels:
            if is_vector:
                raise EnvError(
                    "GymWrapper(from_pixels=True) takes a single env; for a vectorised env use "
                    "GymEnv(env_id, num_envs=N, from_pixels=True)"
                )
            if not isinstance(env, PixelObservation):
                env = PixelObservation(env, pixels_only=pixels_only)
        batch = (int(env.num_envs),) if is_vector else ()
        super().__init__(device=device, batch_size=batch, check_actions=check_actions)
        self.gym_env = env
        self.is_vector = is_vector
        self.from_pixels = from_pixels
        if is_vector:
            mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
            if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED):
                raise EnvError(
                    f"GymWrapper: the vector env uses autoreset mode {mode}; use NEXT_STEP or DISABLED "
                    "(rlkernel resets finished sub-envs itself, keeping their last observation)"
                )
            obs_space, act_space = env.single_observation_space, env.single_action_space
        else:
            obs_space, act_space = env.observation_space, env.action_space
        self._obs_layout = Layout(obs_space, None, batch, self.device)  # (CPU tensors: see _step_into_fn)
        self._action_layout = Layout(act_space, "action", batch, self.device)
        self._info = InfoReader(self._info_specs(info_keys), batch, self.device)
        obs_spec = self._obs_layout.spec.clone()
        for name, spec in self._info.specs.items():
            if name in obs_spec:
                raise SpecError(f"info_keys: {name!r} clashes with the observation key {name!r}")
            obs_spec[name] = spec
        self.observation_spec = obs_spec
        self.full_action_spec = self._action_layout.spec
        self._next_seed: int | None = None
        # Sub-envs whose episode ended (or that never started): they must be reset before a step.
        self._needs_reset = np.ones(batch or (1,), dtype=bool)
        # Per-step shortcuts (see _as_tensordict and the step, in fast_paths).
        self._trusted_outputs = self.device.type == "cpu"
        self._flat_outputs = all(len(key) == 1 for key in self._obs_layout.keys)  # no nested entries
        self._has_info = bool(self._info)
        self._flags_shape = (*batch, 1)
        # maybe_reset in one pass (see there): a vector env whose outputs are the observation
        # and the three flags, none nested, of a class that keeps the resets of this one
        self._plain_vector_reset = (
            is_vector and type(self).one_pass_reset and self._trusted_outputs and self._flat_outputs
            and not self._has_info
        )

    # ------------------------------------------------------------------ construction helpers
    def _info_specs(self, info_keys: InfoKeys) -> dict[str, TensorSpec]:
        if info_keys is None:
            return {}
        if isinstance(info_keys, Mapping):
            return dict(info_keys)
        if isinstance(info_keys, str):
            raise SpecError(f"info_keys must be a list of names or a {{name: spec}} mapping, got {info_keys!r}")
        names = list(info_keys)
        env = self.gym_env
        _, reset_info = env.reset()
        *_, step_info = env.step(env.action_space.sample())
        self._needs_reset = np.ones(self.batch_size or (1,), dtype=bool)
        return infer_info_specs(names, [reset_info, step_info], self.is_vector)

    # ------------------------------------------------------------------ the contract
    def _set_seed(self, seed: int | None) -> None:
        self._next_seed = seed
        self.gym_env.action_space.seed(seed)

    def _gym_reset(self, rows: np.ndarray | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset all envs (``rows=None``) or the sub-envs selected by the bool mask ``rows``."""
        seed, self._next_seed = self._next_seed, None
        if rows is None:
            out = self.gym_env.reset(seed=seed)
            self._needs_reset[:] = False
            return out
        seeds = None if seed is None else [seed + i for i in range(len(rows))]
        out = self.gym_env.reset(seed=seeds, options={"reset_mask": rows})
        self._needs_reset[rows] = False
        return out

    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        mask = tensordict.get(RESET, None) if tensordict is not None else None
        rows = None
        if mask is not None:
            rows = mask.reshape(self.numel, -1).any(-1).cpu().numpy()
            if not rows.any():  # nothing to reset: EnvBase keeps every current entry
                return self._full_observation_spec.zero()
            if rows.all() or not self.is_vector:
                rows = None
        obs, info = self._gym_reset(rows)
        source = self._obs_layout.source(obs, {})
        if self._has_info:
            self._add_info(source, info, "reset")
        # the done flags EnvBase would add (all False), in the order it adds them
        shape = self._flags_shape  # (numpy makes small arrays faster than torch.zeros)
        source[TERMINATED] = torch.from_numpy(np.zeros(shape, dtype=bool))
        source[TRUNCATED] = torch.from_numpy(np.zeros(shape, dtype=bool))
        source[DONE] = torch.from_numpy(np.zeros(shape, dtype=bool))
        return self._as_tensordict(source)

    def _not_reset_error(self) -> EnvError:
        if not self.is_vector:
            return EnvError(
                f"{type(self).__name__}.step: the episode has ended (or never started); call reset() first"
            )
        rows = np.flatnonzero(self._needs_reset).tolist()
        return EnvError(
            f"{type(self).__name__}.step: sub-environment(s) {rows} finished an episode (or never started) "
            "and were not reset; use step_and_maybe_reset, or reset with a '_reset' mask, before stepping again"
        )

    def _add_info(self, source: dict[str, Any], info: Mapping[str, Any], where: str) -> None:
        """Put the chosen ``info`` entries into the TensorDict ``source``."""
        for name, arr in zip(self._info.names, self._info.arrays(info, where)):
            source[name] = torch.from_numpy(arr)

    def _as_tensordict(self, source: dict[str, Any]) -> TensorDictBase:
        """A TensorDict of the env's batch size and device from a nested ``source``.

        Every tensor was made by this wrapper from gymnasium's arrays, with the shapes of
        the specs (checked by construction), on the CPU: on a CPU env the TensorDict is
        built without the constructor's per-entry checks (``td_compat.new_unsafe``);
        otherwise the public constructor moves the tensors to the env's device.
        """
        if self._trusted_outputs:
            out = td_compat.new_unsafe(
                source, batch_size=self.batch_size, device=self.device, nested=not self._flat_outputs
            )
        else:
            out = TensorDict(source, batch_size=self.batch_size, device=self.device)
        return out

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the gymnasium env (and its worker processes, for ``async``)."""
        if not self.is_closed:
            self.gym_env.close()
        super().close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(env={self.gym_env}, batch_size={tuple(self.batch_size)}, device={self.device})"


class GymEnv(GymWrapper):
    """A gymnasium environment made by id: ``GymEnv("CartPole-v1", num_envs=8)``.

    Args:
        env_id: a gymnasium id (anything ``gymnasium.make`` accepts).
        num_envs: ``None`` for one env (batch size ``()``); ``N`` for gymnasium's own vector
            env of ``N`` copies (batch size ``(N,)``).
        vectorization_mode: ``"sync"`` (``SyncVectorEnv``, default) or ``"async"``
            (``AsyncVectorEnv``, one process per sub-env).
        from_pixels, pixels_only, info_keys, device, check_actions: as in :class:`GymWrapper`.
        **make_kwargs: passed to ``gymnasium.make`` (``max_episode_steps=5``, ``render_mode``,
            the env's own arguments).

    >>> env = GymEnv("CartPole-v1", num_envs=2)
    >>> env.set_seed(0)
    0
    >>> env.rollout(4, break_when_any_done=False)["next", "reward"].shape
    torch.Size([2, 4, 1])
    """

    batches_natively = True

    def __init__(
        self,
        env_id: str,
        *,
        num_envs: int | None = None,
        vectorization_mode: str = "sync",
        from_pixels: bool = False,
        pixels_only: bool = False,
        info_keys: InfoKeys = None,
        device: torch.device | str | None = None,
        check_actions: bool = True,
        **make_kwargs: Any,
    ) -> None:
        if not isinstance(env_id, str):
            raise EnvError(f"GymEnv: env_id must be a gymnasium id string, got {type(env_id).__name__}")
        if num_envs is not None and (isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1):
            raise EnvError(f"GymEnv: num_envs must be None or a positive int, got {num_envs!r}")
        if vectorization_mode not in VECTORIZATION_MODES:
            raise EnvError(
                f"GymEnv: vectorization_mode must be one of {VECTORIZATION_MODES}, got {vectorization_mode!r}"
            )
        if pixels_only and not from_pixels:
            raise EnvError("pixels_only=True needs from_pixels=True")
        if from_pixels:
            make_kwargs.setdefault("render_mode", "rgb_array")
        self.env_id = env_id
        try:
            if num_envs is None:
                env: Any = gymnasium.make(env_id, **make_kwargs)
            else:
                wrappers = [functools.partial(PixelObservation, pixels_only=pixels_only)] if from_pixels else None
                env = gymnasium.make_vec(
                    env_id,
                    num_envs,
                    vectorization_mode=vectorization_mode,
                    vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED, "copy": False},
                    wrappers=wrappers,
                    **make_kwargs,
                )
        except gymnasium.error.Error as err:
            raise EnvError(f"GymEnv: gymnasium cannot make {env_id!r}: {err}") from err
        super().__init__(
            env,
            from_pixels=from_pixels and num_envs is None,
            pixels_only=pixels_only,
            info_keys=info_keys,
            device=device,
            check_actions=check_actions,
        )
        self.from_pixels = from_pixels
