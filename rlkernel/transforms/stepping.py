"""Transforms that step the parent env themselves: :class:`NoopResetEnv` and
:class:`FrameSkipTransform`. They only make sense inside a
:class:`~rlkernel.transforms.TransformedEnv`; ``forward`` raises."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from rlkernel.envs.step import step_mdp
from rlkernel.errors import EnvError
from rlkernel.transforms._utils import TransformError, reset_mask
from rlkernel.transforms.base import Transform

_MAX_NOOP_TRIALS = 10


class NoopResetEnv(Transform):
    """After each reset, take a random number (or exactly ``noops``) of random actions.

    As in TorchRL the actions are drawn from the parent env's action spec; the reset
    returns the state reached. An episode that ends during the no-ops is reset and the
    no-ops start again (up to 10 times). Place it first in the chain: the transforms
    before it see the no-op steps.

    A batched env is stepped as a whole, so a *partial* reset (some sub-environments
    only) cannot take no-ops without advancing the others: it raises; apply
    ``NoopResetEnv`` to each sub-environment instead (inside the batched env's factory).

    Args:
        noops: the number of no-op steps (the maximum when ``random``).
        random: draw the number uniformly in ``[0, noops]`` at each reset.
    """

    def __init__(self, noops: int = 30, random: bool = True) -> None:
        super().__init__()
        if isinstance(noops, bool) or not isinstance(noops, int) or noops < 0:
            raise TransformError(f"NoopResetEnv: noops must be a non-negative int, got {noops!r}")
        self.noops = noops
        self.random = bool(random)

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        parent = self.parent
        if parent is None:
            raise TransformError("NoopResetEnv only works inside a TransformedEnv")
        mask = reset_mask(tensordict, tensordict_reset.batch_size)
        if mask is not None and not bool(mask.any()):
            return tensordict_reset  # nothing is being reset
        if mask is not None:
            raise TransformError(
                "NoopResetEnv cannot reset part of a batched env: no-op steps would advance the other "
                "sub-environments too; apply NoopResetEnv to each sub-environment instead"
            )
        count = int(torch.randint(self.noops + 1, ())) if self.random else self.noops
        if count == 0:
            return tensordict_reset
        keys = list(tensordict_reset.keys(include_nested=True, leaves_only=True))
        kwargs = {
            "reward_keys": parent.reward_keys,
            "done_keys": parent.done_keys,
            "action_keys": parent.action_keys,
            "exclude_done": False,
        }
        state = tensordict_reset
        for _ in range(_MAX_NOOP_TRIALS):
            for _ in range(count):
                stepped = parent.rand_step(state.copy())
                state = step_mdp(stepped, **kwargs)
                if bool(parent._any_done(state).any()):
                    state = parent.reset()
                    break
            else:
                return state.select(*keys, strict=False)
        raise EnvError(
            f"NoopResetEnv: the episode ended during the {count} no-op steps {_MAX_NOOP_TRIALS} times in a "
            "row; lower noops"
        )

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        raise TransformError("NoopResetEnv acts on resets; it has no meaning outside a TransformedEnv")

    def _repr_args(self) -> list[str]:
        return [f"noops={self.noops}", f"random={self.random}"]


class FrameSkipTransform(Transform):
    """Repeat each action ``frame_skip`` times, summing the rewards.

    The repetition stops early when an episode ends (for a batched env, when any
    sub-environment is done, since they are stepped together). The returned step is the
    last one taken, with the summed rewards.
    """

    def __init__(self, frame_skip: int = 1) -> None:
        super().__init__()
        if isinstance(frame_skip, bool) or not isinstance(frame_skip, int) or frame_skip < 1:
            raise TransformError(f"FrameSkipTransform: frame_skip must be a positive int, got {frame_skip!r}")
        self.frame_skip = frame_skip

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        if self.frame_skip == 1:
            return next_tensordict
        parent = self.parent
        if parent is None:
            raise TransformError("FrameSkipTransform only works inside a TransformedEnv")
        reward_keys = parent.reward_keys
        totals = [next_tensordict.get(k) for k in reward_keys]
        for _ in range(self.frame_skip - 1):
            if bool(parent._any_done(next_tensordict).any()):
                break
            next_tensordict = parent._step_inverted(tensordict)
            totals = [t + next_tensordict.get(k) for t, k in zip(totals, reward_keys)]
        for key, total in zip(reward_keys, totals):
            next_tensordict.set(key, total)
        return next_tensordict

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        raise TransformError("FrameSkipTransform repeats env steps; it has no meaning outside a TransformedEnv")

    def _repr_args(self) -> list[str]:
        return [f"frame_skip={self.frame_skip}"]
