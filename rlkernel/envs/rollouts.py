"""Rollouts of :class:`~rlkernel.envs.EnvBase`: ``rollout`` and the stacking of its steps.

:class:`Rollouts` is a mixin of ``EnvBase`` (it calls ``reset``, ``step`` and
``step_and_maybe_reset``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDictBase

from rlkernel.envs.step import (
    DONE,
    NEXT,
    TERMINATED,
    TRUNCATED,
)
from rlkernel.errors import EnvError

Policy = Callable[[TensorDictBase], TensorDictBase]


class Rollouts:
    """``rollout``: run a policy (or random actions) for a number of steps and stack them."""

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
        """Run ``max_steps`` steps and return them stacked along a time dim.

        The result has batch size ``(*batch_size, T)``. Without a policy the actions are
        drawn at random from the action spec. ``break_when_any_done`` stops at the first
        step where any sub-environment is done; otherwise done sub-environments are reset
        and the rollout goes on; ``break_when_all_done`` (with ``break_when_any_done=False``)
        resets sub-environments as they finish and stops once every one of them has ended an
        episode. ``set_truncated`` marks the last step as truncated.
        """
        if not isinstance(max_steps, int) or max_steps < 1:
            raise EnvError(f"rollout: max_steps must be a positive int, got {max_steps!r}")
        if auto_reset:
            td = self.reset(tensordict) if tensordict is not None else self.reset()
        elif tensordict is None:
            raise EnvError("rollout: auto_reset=False needs a tensordict to start from")
        else:
            td = tensordict
        steps: list[TensorDictBase] = []
        finished = torch.zeros(self.batch_size, dtype=torch.bool, device=self.device)
        for _ in range(max_steps):
            if policy is None:
                td.update(self._full_action_spec.rand(generator=self.generator))
            else:
                td = policy(td)
            if break_when_any_done:
                td = self.step(td)
                steps.append(td)
                if bool(self._any_done(td.get(NEXT)).any()):
                    break
                td = self._step_mdp(td)
            else:
                td, root = self.step_and_maybe_reset(td)
                steps.append(td)
                if break_when_all_done:
                    finished = finished | self._any_done(td.get(NEXT))
                    if bool(finished.all()):
                        break
                td = root
        out = self._stack_steps(steps)
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

    def _stack_steps(self, steps: list[TensorDictBase]) -> TensorDictBase:
        try:
            return torch.stack(steps, dim=len(self.batch_size))
        except RuntimeError as err:
            first = set(steps[0].keys(include_nested=True, leaves_only=True))
            for t, step in enumerate(steps[1:], start=1):
                keys = set(step.keys(include_nested=True, leaves_only=True))
                if keys != first:
                    raise EnvError(
                        f"{type(self).__name__}.rollout: step {t} has keys {sorted(map(str, keys - first))} "
                        f"that step 0 lacks and lacks {sorted(map(str, first - keys))}; an environment must "
                        "produce the same keys at every step (declare them in its specs and return them from "
                        "_reset as well as _step)"
                    ) from err
            raise EnvError(f"{type(self).__name__}.rollout: cannot stack the steps: {err}") from err
