"""What DQN, DDPG, TD3 and SAC share: bootstrapped targets, priorities, sample weights.

The input is a batch of transitions (``[*B]``, e.g. drawn from a replay buffer)::

    {observation, action, [priority_weight], next: {observation, reward, done, terminated}}

Targets are ``reward + gamma * (1 - terminated) * V(next)`` by default (TD(0)); only a
*terminated* step stops bootstrapping: a truncated one (time limit) still bootstraps from
its next observation. ``make_value_estimator("td_lambda", gamma=..., lmbda=...)`` switches
to multi-step targets over ``[*B, T]`` batches of consecutive steps.

Prioritized replay: when the batch holds ``priority_weight`` (importance weights), each
loss averages its per-sample terms with them; when the batch is a TensorDict, the
per-sample absolute TD error is written back to it at ``td_error`` (``tensor_keys.priority``)
for the buffer to update its priorities.
"""

from __future__ import annotations

import dataclasses

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from rlkernel_algos.objectives._returns import ReturnEstimator, match_shape
from rlkernel_algos.objectives.common import LossModule

__all__ = ["OffPolicyLoss"]


class OffPolicyLoss(LossModule):
    """Base of the off-policy losses (not used directly)."""

    @dataclasses.dataclass
    class _AcceptedKeys:
        """Keys every off-policy loss reads or writes.

        Attributes:
            priority: where the per-sample TD error is written (prioritized replay).
            priority_weight: the importance weights of a prioritized sample (optional).
            reward, done, terminated: read under ``"next"``.
        """

        priority: NestedKey = "td_error"
        priority_weight: NestedKey = "priority_weight"
        reward: NestedKey = "reward"
        done: NestedKey = "done"
        terminated: NestedKey = "terminated"

    def __init__(self, *, gamma: float | None = None) -> None:
        super().__init__()
        if gamma is not None:
            self.make_value_estimator("td0", gamma=gamma)

    def make_value_estimator(self, value_type=None, **hyperparams) -> ReturnEstimator:
        """Choose the target: ``"td0"`` (default), ``"td1"`` or ``"td_lambda"``, with ``gamma``
        (default 0.99) and ``lmbda`` (default 0.95). Returns the estimator, also at
        ``loss.value_estimator``.
        """
        return self._set_value_estimator(ReturnEstimator(
            "td0" if value_type is None else value_type, owner=type(self).__name__, **hyperparams
        ))

    @property
    def gamma(self) -> float:
        """The discount of the value estimator."""
        return self.value_estimator.gamma

    def _step_keys(self) -> list[NestedKey]:
        keys = self.tensor_keys
        return [("next", keys.reward), ("next", keys.done), ("next", keys.terminated), keys.priority_weight]

    def _bootstrap(self, source, next_value: torch.Tensor) -> torch.Tensor:
        """The target for each sample, shaped like ``next_value`` (``[*B, 1]``)."""
        owner = type(self).__name__
        reward = match_shape(self._get(source, "reward", nxt=True), next_value, "('next', reward)", owner)
        done = self._get(source, "done", nxt=True, required=False)
        terminated = self._get(source, "terminated", nxt=True, required=done is None)
        if terminated is None:
            terminated = done
        terminated = match_shape(terminated, next_value, "('next', terminated)", owner)
        if done is not None:
            done = match_shape(done, next_value, "('next', done)", owner)
        return self.value_estimator(reward, next_value, terminated, done)

    def _weights(self, source, like: torch.Tensor) -> torch.Tensor | None:
        weights = source.get(self.tensor_keys.priority_weight, None)
        if weights is None:
            return None
        return match_shape(weights, like, "priority_weight", type(self).__name__)

    @staticmethod
    def _mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        return values.mean() if weights is None else (values * weights).mean()

    def _write_priority(self, source, td_error: torch.Tensor) -> None:
        if isinstance(source, TensorDictBase):
            source.set(self.tensor_keys.priority, td_error.detach())
