"""Rollouts of :class:`~rlkernel.envs.EnvBase`: ``rollout``, run on the rollout engine.

:class:`Rollouts` is a mixin of ``EnvBase``. ``rollout`` runs the same engine as the
collectors (:class:`rlkernel.collectors.stepper.Stepper`): one root TensorDict carried from
step to step, every step written into buffers allocated at the first step, the env's
direct step when its class declares one, ``maybe_reset`` (the env's one partial-reset
merge) where an episode ended.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase

from rlkernel.envs.step import (
    DONE,
    NEXT,
    TERMINATED,
    TRUNCATED,
    NestedKey,
)
from rlkernel.errors import EnvError

Policy = Callable[[TensorDictBase], TensorDictBase]


class _RolloutPolicy:
    """A rollout's policy as the engine calls it: ``td -> td``, never run ahead of time.

    The engine goes on with the TensorDict the policy returns (as ``rollout`` always did).
    """

    draws_from_spec = False

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.written_keys: list[NestedKey] = []

    def discover(self, td: TensorDictBase, action_keys: list[NestedKey], *, owner: str) -> TensorDictBase:
        """No dry run: the rollout's first step tells the engine what the policy writes."""
        return td

    def output_paths(self) -> None:
        """Unknown: the engine records every root entry at every step."""
        return None

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        out = self.policy(td)
        if not isinstance(out, TensorDictBase):
            raise EnvError(f"rollout: the policy must return a TensorDict, got {type(out).__name__}")
        return out


class _RandomActions:
    """Random actions for a rollout without a policy, drawn from the action spec (with the
    env's generator) for every step at once and handed out one step at a time."""

    draws_from_spec = True

    def __init__(self, env: Any, steps: int) -> None:
        self.policy = self
        self.written_keys: list[NestedKey] = []
        from rlkernel.collectors.access import put

        spec = env.full_action_spec
        self._paths = [(key,) if isinstance(key, str) else tuple(key) for key in env.action_keys]
        self._drawn = [spec[key].rand((steps,), generator=env.generator).unbind(0) for key in env.action_keys]
        self._t = 0
        self._put = put

    def discover(self, td: TensorDictBase, action_keys: list[NestedKey], *, owner: str) -> TensorDictBase:
        """Nothing to run ahead of time."""
        return td

    def output_paths(self) -> set[tuple[str, ...]]:
        """It writes the actions only."""
        return set(self._paths)

    def __call__(self, td: TensorDictBase) -> None:
        t = self._t
        self._t = t + 1
        put = self._put
        for path, drawn in zip(self._paths, self._drawn):
            put(td, path, drawn[t])


class Rollouts:
    """``rollout``: run a policy (or random actions) for a number of steps and record them."""

    def rollout(
        self,
        max_steps: int,
        policy: Policy | None = None,
        *,
        break_when_any_done: bool = True,
        break_when_all_done: bool = False,
        auto_reset: bool = True,
        tensordict: TensorDictBase | None = None,
        set_truncated: bool = False,
    ) -> TensorDictBase:
        """Run ``max_steps`` steps and return them along a time dim.

        The result has batch size ``(*batch_size, T)``. Without a policy the actions are
        drawn at random from the action spec (for all steps at once, with the env's
        generator). ``break_when_any_done`` stops at the first step where any
        sub-environment is done; otherwise done sub-environments are reset and the rollout
        goes on; ``break_when_all_done`` (with ``break_when_any_done=False``) resets
        sub-environments as they finish and stops once every one of them has ended an
        episode. ``set_truncated`` marks the last step as truncated. The policy is called
        once per step, on the TensorDict the previous call returned (with the step's
        observations); it must return a TensorDict holding the action. It runs under
        ``torch.no_grad()``, as in the collectors: the rollout is recorded data, with no graph.
        """
        from rlkernel.collectors.stepper import Stepper

        if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
            raise EnvError(f"rollout: max_steps must be a positive int, got {max_steps!r}")
        if auto_reset:
            root = self.reset(tensordict) if tensordict is not None else self.reset()
        elif tensordict is None:
            raise EnvError("rollout: auto_reset=False needs a tensordict to start from")
        else:
            root = tensordict
        caller = _RandomActions(self, max_steps) if policy is None else _RolloutPolicy(policy)
        engine = Stepper(
            self,  # type: ignore[arg-type]
            caller,  # type: ignore[arg-type]
            steps=max_steps,
            storing_device=self.device,
            max_frames_per_traj=None,
            owner=f"{type(self).__name__}.rollout",
            root=root,
            trajectories=False,
        )
        stop = "any" if break_when_any_done else "all" if break_when_all_done else None
        with torch.no_grad():  # recorded data: written into preallocated memory, it carries no graph
            out = engine.collect(stop=stop)
        if engine.length < max_steps:  # the steps taken only, in memory of their own
            out = out[(*([slice(None)] * len(self.batch_size)), slice(0, engine.length))]
            if self.batch_size:
                out = out.clone()
        if set_truncated:
            self._mark_truncated(out)
        return out

    def _mark_truncated(self, out: TensorDictBase) -> None:
        """Mark the last step of a rollout truncated where it did not terminate."""
        last = (*([slice(None)] * len(self.batch_size)), -1)
        for prefix, names in self._done_groups():
            if TRUNCATED not in names:
                continue
            group = out.get((NEXT, *prefix)) if prefix else out.get(NEXT)
            terminated = group.get(TERMINATED)[last] if TERMINATED in names else False
            group.get(TRUNCATED)[last] |= ~terminated
            if DONE in names:
                group.get(DONE)[last] = True
