"""REINFORCE with an optional learned baseline: :class:`ReinforceLoss`.

``loss_actor = -mean(log pi(a|s) * A)`` where ``A`` is the ``advantage`` entry: a return
(e.g. from :func:`rlkernel_algos.value.functional.reward2go`) when there is no critic, or
an advantage computed with the critic as baseline (GAE by default, TorchRL's choice).
With a critic, ``loss_value`` regresses it on ``value_target``.

Example::

    >>> loss = ReinforceLoss(actor)                                    # doctest: +SKIP
    >>> td = loss(observation=obs, action=act, advantage=returns)      # doctest: +SKIP
"""

from __future__ import annotations

import torch

from rlkernel_algos.objectives._on_policy import OnPolicyLoss
from rlkernel_algos.objectives._returns import match_shape

__all__ = ["ReinforceLoss"]


class ReinforceLoss(OnPolicyLoss):
    """REINFORCE (Williams 1992).

    Args:
        actor_network: a probabilistic actor.
        critic_network: an optional baseline writing ``state_value``.
        loss_critic_type: distance of the baseline's regression (``"smooth_l1"``).
        normalize_advantage: standardise the advantage over the batch.

    Returns (from ``forward``): ``loss_actor`` and, with a critic, ``loss_value``
    (and ``explained_variance`` with ``log_explained_variance=True``).
    """

    def __init__(self, actor_network, critic_network=None, *, loss_critic_type: str = "smooth_l1",
                 normalize_advantage: bool = False, log_explained_variance: bool = False) -> None:
        super().__init__(
            actor_network, critic_network, entropy_bonus=False, loss_critic_type=loss_critic_type,
            normalize_advantage=normalize_advantage, log_explained_variance=log_explained_variance,
        )

    def _policy_keys(self):
        return [self.tensor_keys.action]

    def _loss(self, source, batch_shape: torch.Size) -> dict[str, torch.Tensor]:
        source, advantage = self._advantage(source, batch_shape)
        _, log_prob = self._log_prob(source, batch_shape)
        advantage = match_shape(advantage, log_prob, "advantage", type(self).__name__).detach()
        out: dict[str, torch.Tensor] = {"loss_actor": -(log_prob * advantage).mean()}
        if self._critic is not None:
            self._critic_loss(source, batch_shape, out, name="loss_value", coef=1.0)
        return out
