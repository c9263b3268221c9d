"""Episode bookkeeping: :class:`StepCounter` (with truncation) and :class:`InitTracker`."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from rlkernel.envs.step import DONE, TRUNCATED, NestedKey
from rlkernel.specs import Bounded, Categorical, Composite, Unbounded
from rlkernel.transforms._utils import (
    TransformError,
    as_key,
    episode_start_index,
    episode_starts,
    masked_fill_reset,
    missing_key_error,
    next_key,
    reset_mask,
)
from rlkernel.transforms.base import Transform


def _flag(shape: torch.Size, device: torch.device) -> Categorical:
    return Categorical(2, shape=shape, dtype=torch.bool, device=device)


class StepCounter(Transform):
    """Count the steps of each episode in ``step_count`` (int64, shape ``(*batch, 1)``).

    The count is 0 after ``reset`` (for the sub-environments being reset) and the count
    of the step's input plus one after ``step``. With ``max_steps``, reaching it sets
    ``truncated`` (and ``done`` when ``update_done``), so a rollout or a collector resets
    the episode. ``forward`` on a trajectory ``[*B, T]`` recounts from the episode
    boundaries given by ``("next", "done")``.

    Args:
        max_steps: truncate episodes after this many steps (``None``: never).
        truncated_key: the flag to raise (added to the done spec if the env lacks it).
        step_count_key: where the count goes.
        update_done: also raise ``done`` on truncation.

    Example::

        >>> from rlkernel.testing import CountingEnv
        >>> from rlkernel.transforms import TransformedEnv
        >>> env = TransformedEnv(CountingEnv(max_count=100), StepCounter(max_steps=2))
        >>> td = env.rollout(10, policy=lambda td: td.set("action", torch.ones(1)))
        >>> td["next", "step_count"].flatten().tolist(), td["next", "truncated"].flatten().tolist()
        ([1, 2], [False, True])
    """

    def __init__(
        self,
        max_steps: int | None = None,
        truncated_key: NestedKey = TRUNCATED,
        step_count_key: NestedKey = "step_count",
        update_done: bool = True,
    ) -> None:
        super().__init__()
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
            raise TransformError(f"StepCounter: max_steps must be a positive int or None, got {max_steps!r}")
        self.max_steps = max_steps
        self.truncated_key = as_key(truncated_key, "StepCounter", "truncated_key")
        self.step_count_key = as_key(step_count_key, "StepCounter", "step_count_key")
        self.done_key: NestedKey = (
            (*self.truncated_key[:-1], DONE) if isinstance(self.truncated_key, tuple) else DONE
        )
        self.update_done = bool(update_done)
        self._shape: torch.Size | None = None
        self._device = torch.device("cpu")

    def _declared_keys(self) -> list[NestedKey]:
        return [self.step_count_key, self.truncated_key]

    def transform_output_spec(self, output_spec: Composite) -> Composite:
        done = output_spec["full_done_spec"]
        shape = torch.Size((*output_spec.shape, 1))
        self._shape, self._device = shape, output_spec.device
        if self.max_steps is not None:
            if self.truncated_key not in done:
                done[self.truncated_key] = _flag(shape, output_spec.device)
            if self.update_done and self.done_key not in done:
                done[self.done_key] = _flag(shape, output_spec.device)
        obs = output_spec["full_observation_spec"]
        if self.max_steps is None:
            obs[self.step_count_key] = Unbounded(shape=shape, dtype=torch.int64, device=output_spec.device)
        else:
            obs[self.step_count_key] = Bounded(
                0, self.max_steps, shape=shape, dtype=torch.int64, device=output_spec.device
            )
        return output_spec

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        shape = self._shape if self._shape is not None else torch.Size((*tensordict_reset.batch_size, 1))
        mask = reset_mask(tensordict, tensordict_reset.batch_size)
        fresh = torch.zeros(shape, dtype=torch.int64, device=self._device)
        old = tensordict.get(self.step_count_key, None) if mask is not None else None
        tensordict_reset.set(self.step_count_key, masked_fill_reset(mask, fresh, old))
        return tensordict_reset

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        count = tensordict.get(self.step_count_key, None)
        if count is None:
            raise missing_key_error(
                repr(self), self.step_count_key, tensordict, "input of step() (step from what reset() returned)"
            )
        count = count + 1
        next_tensordict.set(self.step_count_key, count)
        if self.max_steps is not None:
            reached = count >= self.max_steps
            if bool(reached.any()):
                self._truncate(next_tensordict, reached)
        return next_tensordict

    def _truncate(self, next_tensordict: TensorDictBase, reached: torch.Tensor) -> None:
        trunc = next_tensordict.get(self.truncated_key, None)
        next_tensordict.set(self.truncated_key, reached if trunc is None else trunc | reached.reshape(trunc.shape))
        if self.update_done:
            done = next_tensordict.get(self.done_key, None)
            next_tensordict.set(self.done_key, reached if done is None else done | reached.reshape(done.shape))

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Recount the steps of a trajectory along its last batch dim (time)."""
        td = tensordict if tensordict.batch_dims else tensordict.unsqueeze(0)
        starts = episode_starts(td, self.done_key)
        first = episode_start_index(starts)
        steps = torch.arange(td.batch_size[-1], device=td.device).expand_as(first)
        count = steps - first
        old = td.get(self.step_count_key, None)
        if old is not None:
            carry = old.reshape(*td.batch_size, -1)[..., 0:1, 0].to(torch.int64)
            count = count + torch.where(first == 0, carry, torch.zeros_like(carry))
        root = count.unsqueeze(-1)
        td.set(self.step_count_key, root)
        td.set(next_key(self.step_count_key), root + 1)
        if self.max_steps is not None:
            self._truncate(td.get("next"), root + 1 >= self.max_steps)
        return tensordict if tensordict.batch_dims else td.squeeze(0)

    def _repr_args(self) -> list[str]:
        return [f"max_steps={self.max_steps}"]


class InitTracker(Transform):
    """Flag the first step of each episode in ``is_init`` (bool, shape ``(*batch, 1)``).

    True after ``reset`` for the sub-environments being reset (False for the others) and
    False after every step; recurrent policies reset their hidden state where it is set.
    ``forward`` on a trajectory marks the steps that start an episode.
    """

    def __init__(self, init_key: NestedKey = "is_init") -> None:
        super().__init__()
        self.init_key = as_key(init_key, "InitTracker", "init_key")
        self._shape: torch.Size | None = None
        self._device = torch.device("cpu")

    def _declared_keys(self) -> list[NestedKey]:
        return [self.init_key]

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        self._shape = torch.Size((*observation_spec.shape, 1))
        self._device = observation_spec.device
        observation_spec[self.init_key] = _flag(self._shape, observation_spec.device)
        return observation_spec

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        shape = self._shape if self._shape is not None else torch.Size((*tensordict_reset.batch_size, 1))
        mask = reset_mask(tensordict, tensordict_reset.batch_size)
        if mask is None:
            flag = torch.ones(shape, dtype=torch.bool, device=self._device)
        else:
            flag = mask.reshape(shape).clone()
        tensordict_reset.set(self.init_key, flag)
        return tensordict_reset

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        shape = self._shape if self._shape is not None else torch.Size((*next_tensordict.batch_size, 1))
        next_tensordict.set(self.init_key, torch.zeros(shape, dtype=torch.bool, device=self._device))
        return next_tensordict

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Mark episode starts along the last batch dim (time)."""
        td = tensordict if tensordict.batch_dims else tensordict.unsqueeze(0)
        starts = episode_starts(td).unsqueeze(-1)
        td.set(self.init_key, starts)
        td.set(next_key(self.init_key), torch.zeros_like(starts))
        return tensordict if tensordict.batch_dims else td.squeeze(0)
