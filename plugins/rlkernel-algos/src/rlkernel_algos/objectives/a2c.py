"""Advantage actor-critic: :class:`A2CLoss`.

``loss_objective = -mean(log pi(a|s) * A)``, plus ``loss_critic`` and ``loss_entropy`` as
in PPO (see :class:`~rlkernel_algos.objectives._on_policy.OnPolicyLoss`). The stored
log-probability is not needed: A2C is on-policy by construction.

Example::

    >>> loss = A2CLoss(actor, critic, entropy_coef=0.01)       # doctest: +SKIP
    >>> td = loss(batch)   # the value estimator (GAE) runs when "advantage" is missing
"""

from __future__ import annotations

import torch

from rlkernel_algos.objectives._on_policy import OnPolicyLoss
from rlkernel_algos.objectives._returns import match_shape

__all__ = ["A2CLoss"]


class A2CLoss(OnPolicyLoss):
    """A2C (Mnih et al. 2016) with a shared or separate critic.

    Args: see :class:`~rlkernel_algos.objectives._on_policy.OnPolicyLoss`.

    Returns (from ``forward``): ``loss_objective``, ``loss_critic`` (with a critic),
    ``loss_entropy`` and ``entropy`` (with ``entropy_bonus``), ``explained_variance`` (when
    ``log_explained_variance=True``).
    """

    def _policy_keys(self):
        return [self.tensor_keys.action]

    def _loss(self, source, batch_shape: torch.Size) -> dict[str, torch.Tensor]:
        source, advantage = self._advantage(source, batch_shape)
        dist, log_prob = self._log_prob(source, batch_shape)
        advantage = match_shape(advantage, log_prob, "advantage", type(self).__name__).detach()
        out: dict[str, torch.Tensor] = {"loss_objective": -(log_prob * advantage).mean()}
        self._add_entropy(dist, out)
        if self._critic is not None:
            self._critic_loss(source, batch_shape, out)
        return out
