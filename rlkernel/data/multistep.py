"""n-step returns: a post-processor for batches of collected trajectories."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from rlkernel.data.errors import BufferError

__all__ = ["MultiStep"]

_FLAGS = ("done", "terminated", "truncated")


class MultiStep:
    """Turns one-step transitions into ``n_steps``-step transitions, without crossing
    episode ends.

    ``MultiStep(gamma, n_steps)`` is called on a TensorDict of batch size ``[*B, T]``
    (time last) holding ``("next", "reward")`` and done flags at ``("next", "done")``,
    ``("next", "terminated")`` and/or ``("next", "truncated")``. For each step ``t`` let
    ``m`` be the number of steps summed: ``n_steps``, fewer if the episode ends first
    (a done, terminated or truncated flag at ``t + m - 1``) or the batch ends first. It
    returns a new TensorDict where

    * ``("next", "reward")`` is ``sum(gamma**k * reward[t + k] for k < m)`` and the
      one-step reward is kept as ``("next", "original_reward")``;
    * every other ``("next", ...)`` entry (observation, done, terminated, truncated,
      ...) is the one of step ``t + m - 1``: the state reached after ``m`` steps and
      whether the episode terminated (no bootstrap) or was truncated (bootstrap from
      that state) there;
    * ``"steps_to_next_obs"`` holds ``m`` and ``("next", "discount")`` holds
      ``gamma ** m``, so that the target is
      ``reward + discount * (1 - terminated) * V(next observation)``.

    The input is not modified.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"obs": torch.arange(4.0), "next": {"obs": torch.arange(1.0, 5.0),
    ...     "reward": torch.ones(4), "done": torch.tensor([False, True, False, False])}}, [4])
    >>> out = MultiStep(gamma=0.5, n_steps=2)(td)
    >>> out["next", "reward"].tolist(), out["next", "obs"].tolist(), out["steps_to_next_obs"].tolist()
    ([1.5, 1.0, 1.5, 1.0], [2.0, 2.0, 4.0, 4.0], [2, 1, 2, 1])
    """

    def __init__(self, gamma: float, n_steps: int) -> None:
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
            raise BufferError(f"MultiStep: n_steps must be a positive int, got {n_steps!r}")
        if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not 0 <= gamma <= 1:
            raise BufferError(f"MultiStep: gamma must be a number in [0, 1], got {gamma!r}")
        self.gamma = float(gamma)
        self.n_steps = n_steps

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Return the n-step version of ``tensordict`` (see the class docstring)."""
        if not isinstance(tensordict, TensorDictBase):
            raise BufferError(f"MultiStep takes a TensorDict, got {type(tensordict).__name__}")
        if not tensordict.batch_dims:
            raise BufferError("MultiStep needs a TensorDict whose last batch dimension is time, got batch_size=[]")
        nxt = tensordict.get("next", None)
        if not isinstance(nxt, TensorDictBase) or nxt.get("reward", None) is None:
            raise BufferError("MultiStep: the TensorDict has no ('next', 'reward') entry")
        flags = [nxt.get(name) for name in _FLAGS if nxt.get(name, None) is not None]
        if not flags:
            raise BufferError("MultiStep: the TensorDict has none of ('next', 'done'/'terminated'/'truncated')")
        batch = tuple(tensordict.batch_size)
        tdim, steps = len(batch) - 1, batch[-1]
        stop = torch.zeros(batch, dtype=torch.bool, device=flags[0].device)
        for flag in flags:
            stop |= flag.reshape(*batch, -1).any(-1)
        time = torch.arange(steps, device=stop.device)
        # The first episode end at or after each step (steps + n_steps where none).
        end_at = torch.where(stop, time, steps + self.n_steps)
        first_end = end_at.flip(-1).cummin(-1).values.flip(-1)
        taken = torch.minimum(first_end - time + 1, steps - time).clamp_(max=self.n_steps)
        target = time + taken - 1

        def gather(value: torch.Tensor) -> torch.Tensor:
            index = target.reshape(*batch, *[1] * (value.ndim - len(batch)))
            return value.gather(tdim, index.expand_as(value))

        reward = nxt.get("reward")
        extra = [1] * (reward.ndim - len(batch))
        total = torch.zeros_like(reward)
        for k in range(min(self.n_steps, steps)):
            keep = (taken > k).reshape(*batch, *extra)
            head = total.narrow(tdim, 0, steps - k)
            head += (self.gamma**k) * reward.narrow(tdim, k, steps - k) * keep.narrow(tdim, 0, steps - k)
        shifted = nxt.exclude("reward").apply(gather)
        shifted.set("reward", total)
        shifted.set("original_reward", reward)
        exponent = (
            taken.reshape(*batch, *extra)
            .expand_as(reward)
            .to(reward.dtype if reward.is_floating_point() else torch.float32)
        )
        shifted.set("discount", torch.full_like(exponent, self.gamma).pow_(exponent))
        out = tensordict.clone(False)
        out.set("next", shifted)
        flag_shape = flags[0].shape
        out.set(
            "steps_to_next_obs", taken.reshape(*batch, *[1] * (len(flag_shape) - len(batch))).expand(flag_shape).clone()
        )
        return out

    def __repr__(self) -> str:
        return f"MultiStep(gamma={self.gamma}, n_steps={self.n_steps})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, MultiStep) and (self.gamma, self.n_steps) == (other.gamma, other.n_steps)

    def __hash__(self) -> int:
        return hash((MultiStep, self.gamma, self.n_steps))
