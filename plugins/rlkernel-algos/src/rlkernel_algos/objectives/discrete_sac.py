"""Soft actor-critic for discrete actions: :class:`DiscreteSACLoss` (Christodoulou 2019).

The actor's distribution gives the probabilities ``pi(.|s)`` of all actions (a
categorical, one-hot categorical or masked categorical); each critic writes
``action_value`` (``[*B, n_actions]``). Expectations over actions are exact:

* ``loss_qvalue = sum_i mean(d(Q_i(s, a), y))``,
  ``y = r + gamma * (1 - terminated) * sum_a' pi(a'|s') (min_i Q'_i(s', a') - alpha log pi(a'|s'))``;
* ``loss_actor = mean(sum_a pi(a|s) (alpha log pi(a|s) - min_i Q_i(s, a)))`` (critics detached);
* ``loss_alpha = -mean(log_alpha * (-H(pi(.|s)) + target_entropy))`` with ``"auto"`` target
  ``target_entropy_weight * log(num_actions)``.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from tensordict.utils import NestedKey

from rlkernel.errors import SpecError
from rlkernel_algos.objectives._ensemble import make_ensemble, run_ensemble
from rlkernel_algos.objectives._off_policy import OffPolicyLoss
from rlkernel_algos.objectives._returns import check_loss_function, distance_loss
from rlkernel_algos.objectives._runner import ModuleRunner
from rlkernel_algos.objectives._temperature import TemperatureMixin
from rlkernel_algos.objectives.dqn import action_space_kind, chosen_values

__all__ = ["DiscreteSACLoss"]


def probs_and_log_probs(dist: torch.distributions.Distribution, owner: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(probs, log probs)`` of every action; masked actions get probability 0 and a finite log."""
    probs = getattr(dist, "probs", None)
    if probs is None:
        raise SpecError(f"{owner}: the actor's distribution {type(dist).__name__} has no 'probs' (use a categorical)")
    return probs, torch.log(torch.where(probs == 0.0, torch.full_like(probs, 1e-8), probs))


class DiscreteSACLoss(TemperatureMixin, OffPolicyLoss):
    """The discrete SAC loss.

    Args:
        actor_network: a probabilistic actor with a categorical distribution.
        qvalue_network: a critic writing ``action_value`` (``[*B, num_actions]``); copied and
            re-initialised into ``num_qvalue_nets`` critics, or a list of them.
        num_actions: the number of actions.
        num_qvalue_nets: the number of critics (2).
        loss_function: ``"smooth_l1"`` (default), ``"l2"`` or ``"l1"``.
        alpha_init, min_alpha, max_alpha, fixed_alpha: the temperature (see SACLoss).
        action_space: ``"one_hot"``, ``"categorical"``, a spec, or ``None`` (per batch).
        target_entropy_weight: the ``"auto"`` target is this times ``log(num_actions)``.
        target_entropy: ``"auto"`` or a number.
        delay_qvalue: keep target critics (default True).
        gamma: the discount (shortcut for ``make_value_estimator("td0", gamma=...)``).

    Returns (from ``forward``): ``loss_actor``, ``loss_qvalue``, ``loss_alpha``, and the
    diagnostics ``alpha`` and ``entropy``.
    """

    @dataclasses.dataclass
    class _AcceptedKeys(OffPolicyLoss._AcceptedKeys):
        """Keys of :class:`DiscreteSACLoss` (plus those of every off-policy loss)."""

        action: NestedKey = "action"
        action_value: NestedKey = "action_value"

    def __init__(
        self,
        actor_network,
        qvalue_network,
        num_actions: int,
        *,
        num_qvalue_nets: int = 2,
        loss_function: str = "smooth_l1",
        alpha_init: float = 1.0,
        min_alpha: float | None = None,
        max_alpha: float | None = None,
        action_space: object = None,
        fixed_alpha: bool = False,
        target_entropy_weight: float = 0.98,
        target_entropy: str | float = "auto",
        delay_qvalue: bool = True,
        gamma: float | None = None,
    ) -> None:
        super().__init__(gamma=gamma)
        owner = type(self).__name__
        if int(num_actions) < 2:
            raise SpecError(f"{owner}: num_actions must be >= 2, got {num_actions}")
        self.num_actions = int(num_actions)
        self.loss_function = check_loss_function(loss_function, owner)
        self.action_space = action_space_kind(action_space, owner)
        self.num_qvalue_nets = int(num_qvalue_nets)
        self.delay_qvalue = bool(delay_qvalue)
        self.actor_network = actor_network
        self.qvalue_network = make_ensemble(qvalue_network, self.num_qvalue_nets, owner)
        self._actor = ModuleRunner(actor_network, f"{owner}.actor_network")
        if not self._actor.probabilistic:
            raise SpecError(f"{owner}: actor_network must end in a distribution (a categorical actor)")
        self._qvalues = [ModuleRunner(q, f"{owner}.qvalue_network[{i}]") for i, q in enumerate(self.qvalue_network)]
        self._target_qvalues = self._qvalues
        if self.delay_qvalue:
            self._target_qvalues = [ModuleRunner(q, f"{owner}.target_qvalue_network[{i}]")
                                    for i, q in enumerate(self.make_target("qvalue_network"))]
        if target_entropy == "auto":
            target = float(target_entropy_weight) * math.log(self.num_actions)
        elif isinstance(target_entropy, (int, float)):
            target = float(target_entropy)
        else:
            raise SpecError(f"{owner}: target_entropy must be 'auto' or a number, got {target_entropy!r}")
        self._init_temperature(alpha_init=alpha_init, min_alpha=min_alpha, max_alpha=max_alpha,
                               fixed_alpha=fixed_alpha, target_entropy=target)

    def _build_in_keys(self) -> list[NestedKey]:
        q = self._qvalues[0]
        return [
            *self._actor.in_keys, *q.in_keys, self.tensor_keys.action,
            *self._network_keys(self._actor, now=False, nxt=True),
            *self._network_keys(q, now=False, nxt=True), *self._step_keys(),
        ]

    def _loss(self, source, batch_shape: torch.Size) -> dict[str, torch.Tensor]:
        owner = type(self).__name__
        keys = self.tensor_keys
        alpha = self._alpha()
        probs, log_probs = probs_and_log_probs(self._actor.dist(source, batch_shape=batch_shape), owner)
        q_actor = run_ensemble(self.detached_runners("qvalue_network"), keys.action_value, source,
                               batch_shape=batch_shape).min(0).values
        if q_actor.shape != probs.shape:
            raise SpecError(f"{owner}: the critics write {list(q_actor.shape)} values but the actor gives "
                            f"{list(probs.shape)} probabilities")
        actor_terms = (probs * (alpha * log_probs - q_actor)).sum(-1, keepdim=True)
        weights = self._weights(source, actor_terms)
        out: dict[str, torch.Tensor] = {"loss_actor": self._mean(actor_terms, weights)}
        neg_entropy = (probs * log_probs).sum(-1, keepdim=True)
        with torch.no_grad():
            next_probs, next_log_probs = probs_and_log_probs(
                self._actor.dist(source, nxt=True, batch_shape=batch_shape), owner)
            next_q = run_ensemble(self._target_qvalues, keys.action_value, source, nxt=True,
                                  batch_shape=batch_shape).min(0).values
            next_value = (next_probs * (next_q - alpha * next_log_probs)).sum(-1, keepdim=True)
            target = self._bootstrap(source, next_value)
        all_values = run_ensemble(self._qvalues, keys.action_value, source, batch_shape=batch_shape)
        action = self._get(source, "action")
        pred = torch.stack([chosen_values(v, action, self.action_space) for v in all_values.unbind(0)])
        out["loss_qvalue"] = self._mean(distance_loss(pred, target.expand_as(pred), self.loss_function).sum(0), weights)
        out["loss_alpha"] = self._alpha_loss(neg_entropy, weights)
        with torch.no_grad():
            self._write_priority(source, (pred - target).abs().max(0).values.squeeze(-1))
            out["alpha"] = alpha
            out["entropy"] = -neg_entropy.mean()
        return out
