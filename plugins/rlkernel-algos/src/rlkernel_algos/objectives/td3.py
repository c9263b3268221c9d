"""Twin delayed DDPG: :class:`TD3Loss`.

Fujimoto et al. 2018, three changes to DDPG:

* twin critics; the target is ``r + gamma * (1 - terminated) * min_i Q'_i(s', a')``;
* target policy smoothing: ``a' = clip(mu'(s') + clip(N(0, policy_noise), -noise_clip,
  noise_clip), low, high)``;
* delayed actor updates: the training loop steps the actor's optimizer every ``d``
  critic updates (``loss_actor`` is computed every call; skip its backward as you like).

``loss_actor = -mean(Q_0(s, mu(s)))`` (first critic, parameters detached);
``loss_qvalue = sum_i mean(d(Q_i(s, a), target))``.
"""

from __future__ import annotations

import dataclasses

import torch
from tensordict.utils import NestedKey

from rlkernel.errors import SpecError
from rlkernel_algos.objectives._ensemble import action_bounds, actor_action_spec, make_ensemble, run_ensemble
from rlkernel_algos.objectives._off_policy import OffPolicyLoss
from rlkernel_algos.objectives._returns import check_loss_function, distance_loss
from rlkernel_algos.objectives._runner import ModuleRunner
from rlkernel_algos.objectives.ddpg import deterministic_action

__all__ = ["TD3Loss"]


class TD3Loss(OffPolicyLoss):
    """The TD3 loss.

    Args:
        actor_network: a deterministic actor writing ``action``.
        qvalue_network: a critic (reading observation and action, writing
            ``state_action_value``), copied and re-initialised into ``num_qvalue_nets``
            critics, or a list of them.
        action_spec: the action's bounds (a ``Bounded`` spec or a ``(low, high)`` pair);
            ``None`` (or an unbounded spec) for no clipping of the smoothed target action.
        num_qvalue_nets: the number of critics (2).
        policy_noise: std of the target smoothing noise.
        noise_clip: the smoothing noise is clipped to ``[-noise_clip, noise_clip]``.
        loss_function: ``"smooth_l1"`` (default), ``"l2"`` or ``"l1"``.
        delay_actor, delay_qvalue: keep target copies (default True for both).
        gamma: the discount (shortcut for ``make_value_estimator("td0", gamma=...)``).

    Returns (from ``forward``): ``loss_actor``, ``loss_qvalue``, and the diagnostics
    ``pred_value``, ``state_action_value_actor``, ``next_state_value``, ``target_value``,
    ``td_error``.
    """

    @dataclasses.dataclass
    class _AcceptedKeys(OffPolicyLoss._AcceptedKeys):
        """Keys of :class:`TD3Loss` (plus those of every off-policy loss)."""

        action: NestedKey = "action"
        state_action_value: NestedKey = "state_action_value"

    def __init__(
        self,
        actor_network,
        qvalue_network,
        *,
        action_spec: object = None,
        num_qvalue_nets: int = 2,
        policy_noise: float = 0.2,
        noise_clip: float = 0.5,
        loss_function: str = "smooth_l1",
        delay_actor: bool = True,
        delay_qvalue: bool = True,
        gamma: float | None = None,
    ) -> None:
        super().__init__(gamma=gamma)
        owner = type(self).__name__
        if policy_noise < 0 or noise_clip < 0:
            raise SpecError(f"{owner}: policy_noise and noise_clip must be >= 0, got {policy_noise}, {noise_clip}")
        self.policy_noise, self.noise_clip = float(policy_noise), float(noise_clip)
        self.loss_function = check_loss_function(loss_function, owner)
        self.num_qvalue_nets = int(num_qvalue_nets)
        self.delay_actor, self.delay_qvalue = bool(delay_actor), bool(delay_qvalue)
        self.actor_network = actor_network
        self.qvalue_network = make_ensemble(qvalue_network, self.num_qvalue_nets, owner)
        if action_spec is None:  # fall back on the actor's spec, when it carries bounds
            action_spec = actor_action_spec(actor_network)
            action_spec = action_spec if hasattr(action_spec, "low") else None
        bounds = action_bounds(action_spec, owner)
        if bounds is not None:
            self.register_buffer("action_low", bounds[0])
            self.register_buffer("action_high", bounds[1])
        self._bounded = bounds is not None
        self._actor = ModuleRunner(actor_network, f"{owner}.actor_network")
        self._qvalues = [ModuleRunner(q, f"{owner}.qvalue_network[{i}]") for i, q in enumerate(self.qvalue_network)]
        self._target_actor = self._actor
        self._target_qvalues = self._qvalues
        if self.delay_actor:
            self._target_actor = ModuleRunner(self.make_target("actor_network"), f"{owner}.target_actor_network")
        if self.delay_qvalue:
            self._target_qvalues = [
                ModuleRunner(q, f"{owner}.target_qvalue_network[{i}]")
                for i, q in enumerate(self.make_target("qvalue_network"))
            ]

    def _build_in_keys(self) -> list[NestedKey]:
        action = self.tensor_keys.action
        q = self._qvalues[0]
        return [
            *self._actor.in_keys, *q.in_keys, *self._network_keys(self._actor, now=False, nxt=True),
            *self._network_keys(q, now=False, nxt=True, skip=(action,)), *self._step_keys(),
        ]

    def _smoothed(self, action: torch.Tensor) -> torch.Tensor:
        noise = (torch.randn_like(action) * self.policy_noise).clamp(-self.noise_clip, self.noise_clip)
        action = action + noise
        if self._bounded:
            action = torch.maximum(torch.minimum(action, self.action_high), self.action_low)
        return action

    def _loss(self, source, batch_shape: torch.Size) -> dict[str, torch.Tensor]:
        keys = self.tensor_keys
        value_key, action_key = keys.state_action_value, keys.action
        action = deterministic_action(self._actor, action_key, source, nxt=False, batch_shape=batch_shape)
        first_critic = self.detached_runners("qvalue_network")[:1]
        q_actor = run_ensemble(first_critic, value_key, source, overrides={action_key: action},
                               batch_shape=batch_shape)[0]
        weights = self._weights(source, q_actor)
        loss_actor = self._mean(-q_actor, weights)
        with torch.no_grad():
            next_action = self._smoothed(
                deterministic_action(self._target_actor, action_key, source, nxt=True, batch_shape=batch_shape)
            )
            next_value = run_ensemble(self._target_qvalues, value_key, source, nxt=True,
                                      overrides={action_key: next_action}, batch_shape=batch_shape).min(0).values
            target = self._bootstrap(source, next_value)
        pred = run_ensemble(self._qvalues, value_key, source, batch_shape=batch_shape)
        loss_qvalue = self._mean(distance_loss(pred, target.expand_as(pred), self.loss_function).sum(0), weights)
        with torch.no_grad():
            td_error = (pred - target).abs().max(0).values
            self._write_priority(source, td_error.squeeze(-1))
            terms = {
                "pred_value": pred.mean(), "state_action_value_actor": q_actor.detach().mean(),
                "next_state_value": next_value.mean(), "target_value": target.mean(), "td_error": td_error.mean(),
            }
        return {"loss_actor": loss_actor, "loss_qvalue": loss_qvalue, **terms}
