"""Soft actor-critic for continuous actions: :class:`SACLoss`.

SAC v2 (Haarnoja et al. 2018b, no value network):

* ``loss_qvalue = sum_i mean(d(Q_i(s, a), y))`` with
  ``y = r + gamma * (1 - terminated) * (min_i Q'_i(s', a') - alpha * log pi(a'|s'))``,
  ``a' ~ pi(.|s')``;
* ``loss_actor = mean(alpha * log pi(a~|s) - min_i Q_i(s, a~))``, ``a~`` reparameterised,
  the critics' parameters detached (it moves the actor only);
* ``loss_alpha`` tunes the temperature towards ``target_entropy`` (``"auto"``:
  ``-action_dim``), see :mod:`~rlkernel_algos.objectives._temperature`.

SAC v1 (with ``value_network``): the critics' target is ``r + gamma * (1 - terminated) *
V'(s')`` and ``loss_value = mean(d(V(s), min_i Q_i(s, a~) - alpha * log pi(a~|s)))``.

Example::

    >>> loss = SACLoss(actor, qvalue, num_qvalue_nets=2, action_spec=env.action_spec)  # doctest: +SKIP
    >>> loss.make_value_estimator(gamma=0.99)                                         # doctest: +SKIP
    >>> updater = SoftUpdate(loss, tau=0.005)                                          # doctest: +SKIP
    >>> td = loss(batch)
    >>> (td["loss_actor"] + td["loss_qvalue"] + td["loss_alpha"]).backward()
"""

from __future__ import annotations

import dataclasses

import torch
from tensordict.utils import NestedKey

from rlkernel.errors import SpecError
from rlkernel_algos.objectives._ensemble import (
    action_size,
    actor_action_spec,
    make_ensemble,
    rsample_and_log_prob,
    run_ensemble,
)
from rlkernel_algos.objectives._off_policy import OffPolicyLoss
from rlkernel_algos.objectives._returns import check_loss_function, distance_loss, match_shape
from rlkernel_algos.objectives._runner import ModuleRunner
from rlkernel_algos.objectives._temperature import TemperatureMixin

__all__ = ["SACLoss"]


class SACLoss(TemperatureMixin, OffPolicyLoss):
    """The SAC loss (v2 by default, v1 with a value network).

    Args:
        actor_network: a probabilistic actor with a reparameterisable distribution
            (e.g. ``ProbabilisticActor`` with ``TanhNormal``).
        qvalue_network: a critic reading the observation and ``action``, writing
            ``state_action_value``; copied and re-initialised into ``num_qvalue_nets``
            critics, or a list of them.
        value_network: a state-value network (SAC v1), writing ``state_value``.
        num_qvalue_nets: the number of critics (2).
        loss_function: ``"smooth_l1"`` (default), ``"l2"`` or ``"l1"``.
        alpha_init: the initial temperature.
        min_alpha, max_alpha: optional bounds of the temperature.
        action_spec: the action spec, for ``target_entropy="auto"`` (``-action_dim``); when
            neither it nor the actor's ``spec`` is given, the first sampled action tells.
        fixed_alpha: keep alpha at ``alpha_init``.
        target_entropy: ``"auto"`` or a number.
        delay_actor: keep a target actor for the next actions (default False, as SAC v2).
        delay_qvalue: keep target critics (default True).
        delay_value: keep a target value network (SAC v1; default True).
        gamma: the discount (shortcut for ``make_value_estimator("td0", gamma=...)``).

    Returns (from ``forward``): ``loss_actor``, ``loss_qvalue``, ``loss_alpha``,
    ``loss_value`` (v1), and the diagnostics ``alpha`` and ``entropy`` (``-mean log pi``).
    """

    @dataclasses.dataclass
    class _AcceptedKeys(OffPolicyLoss._AcceptedKeys):
        """Keys of :class:`SACLoss` (plus those of every off-policy loss).

        Attributes:
            action: the action (stored; the critics read the sampled one at this key).
            value: the value network's output (SAC v1).
            state_action_value: the critics' output.
        """

        action: NestedKey = "action"
        value: NestedKey = "state_value"
        state_action_value: NestedKey = "state_action_value"

    def __init__(
        self,
        actor_network,
        qvalue_network,
        value_network=None,
        *,
        num_qvalue_nets: int = 2,
        loss_function: str = "smooth_l1",
        alpha_init: float = 1.0,
        min_alpha: float | None = None,
        max_alpha: float | None = None,
        action_spec: object = None,
        fixed_alpha: bool = False,
        target_entropy: str | float = "auto",
        delay_actor: bool = False,
        delay_qvalue: bool = True,
        delay_value: bool = True,
        gamma: float | None = None,
    ) -> None:
        super().__init__(gamma=gamma)
        owner = type(self).__name__
        self.loss_function = check_loss_function(loss_function, owner)
        self.num_qvalue_nets = int(num_qvalue_nets)
        self.actor_network = actor_network
        self.qvalue_network = make_ensemble(qvalue_network, self.num_qvalue_nets, owner)
        self.value_network = value_network
        self.delay_actor, self.delay_qvalue, self.delay_value = bool(delay_actor), bool(delay_qvalue), bool(delay_value)
        self._actor = ModuleRunner(actor_network, f"{owner}.actor_network")
        if not self._actor.probabilistic:
            raise SpecError(f"{owner}: actor_network must end in a distribution (a probabilistic actor)")
        self._qvalues = [ModuleRunner(q, f"{owner}.qvalue_network[{i}]") for i, q in enumerate(self.qvalue_network)]
        self._target_actor, self._target_qvalues = self._actor, self._qvalues
        if self.delay_actor:
            self._target_actor = ModuleRunner(self.make_target("actor_network"), f"{owner}.target_actor_network")
        if self.delay_qvalue:
            self._target_qvalues = [ModuleRunner(q, f"{owner}.target_qvalue_network[{i}]")
                                    for i, q in enumerate(self.make_target("qvalue_network"))]
        self._value = self._target_value = None
        if value_network is not None:
            self._value = self._target_value = ModuleRunner(value_network, f"{owner}.value_network")
            if self.delay_value:
                self._target_value = ModuleRunner(self.make_target("value_network"), f"{owner}.target_value_network")
        if target_entropy == "auto":
            size = action_size(action_spec if action_spec is not None else actor_action_spec(actor_network))
            target = None if size is None else -float(size)
        elif isinstance(target_entropy, (int, float)):
            target = float(target_entropy)
        else:
            raise SpecError(f"{owner}: target_entropy must be 'auto' or a number, got {target_entropy!r}")
        self._init_temperature(alpha_init=alpha_init, min_alpha=min_alpha, max_alpha=max_alpha,
                               fixed_alpha=fixed_alpha, target_entropy=target)

    def _build_in_keys(self) -> list[NestedKey]:
        action = self.tensor_keys.action
        q = self._qvalues[0]
        keys = [*self._actor.in_keys, *q.in_keys, *self._step_keys()]
        if self._value is None:
            keys += self._network_keys(self._actor, now=False, nxt=True)
            keys += self._network_keys(q, now=False, nxt=True, skip=(action,))
        else:
            keys += [*self._value.in_keys, *self._network_keys(self._value, now=False, nxt=True)]
        return keys

    def _next_value(self, source, batch_shape: torch.Size, alpha: torch.Tensor) -> torch.Tensor:
        """``min_i Q'_i(s', a') - alpha * log pi(a'|s')`` (v2) or ``V'(s')`` (v1), ``[*B, 1]``."""
        keys = self.tensor_keys
        if self._target_value is not None:
            values = self._target_value.outputs(source, nxt=True, batch_shape=batch_shape, stop_at=keys.value)
            return values[keys.value]
        dist = self._target_actor.dist(source, nxt=True, batch_shape=batch_shape)
        action, log_prob = rsample_and_log_prob(dist)
        q = run_ensemble(self._target_qvalues, keys.state_action_value, source, nxt=True,
                         overrides={keys.action: action}, batch_shape=batch_shape).min(0).values
        return q - alpha * match_shape(log_prob, q, "log pi(a'|s')", type(self).__name__)

    def _loss(self, source, batch_shape: torch.Size) -> dict[str, torch.Tensor]:
        owner = type(self).__name__
        keys = self.tensor_keys
        alpha = self._alpha()
        # actor: a reparameterised action through critics with detached parameters
        dist = self._actor.dist(source, batch_shape=batch_shape)
        action, log_prob = rsample_and_log_prob(dist)
        if self._target_entropy_pending:
            self._fill_target_entropy(-float(action.shape[-1] if action.ndim > len(batch_shape) else 1))
        q_actor = run_ensemble(self.detached_runners("qvalue_network"), keys.state_action_value, source,
                               overrides={keys.action: action}, batch_shape=batch_shape).min(0).values
        log_prob = match_shape(log_prob, q_actor, "log pi(a|s)", owner)
        weights = self._weights(source, q_actor)
        out: dict[str, torch.Tensor] = {"loss_actor": self._mean(alpha * log_prob - q_actor, weights)}
        # critics
        with torch.no_grad():
            target = self._bootstrap(source, self._next_value(source, batch_shape, alpha))
        pred = run_ensemble(self._qvalues, keys.state_action_value, source, batch_shape=batch_shape)
        out["loss_qvalue"] = self._mean(distance_loss(pred, target.expand_as(pred), self.loss_function).sum(0), weights)
        out["loss_alpha"] = self._alpha_loss(log_prob, weights)
        if self._value is not None:
            value = self._value.outputs(source, batch_shape=batch_shape, stop_at=keys.value)[keys.value]
            value_target = (q_actor - alpha * log_prob).detach()
            out["loss_value"] = self._mean(distance_loss(value, value_target, self.loss_function), weights)
        with torch.no_grad():
            self._write_priority(source, (pred - target).abs().max(0).values.squeeze(-1))
            out["alpha"] = alpha
            out["entropy"] = -log_prob.detach().mean()
        return out
