"""Deep deterministic policy gradient: :class:`DDPGLoss`.

* ``loss_actor = -mean(Q(s, mu(s)))``, computed with the critic's parameters detached:
  it moves the actor only;
* ``loss_value = mean(d(Q(s, a), r + gamma * (1 - terminated) * Q'(s', mu'(s'))))`` with
  the target networks ``mu'`` and ``Q'`` (or the online ones without gradient, when not
  delayed): it moves the critic only.

Example::

    >>> loss = DDPGLoss(actor, qvalue, delay_actor=True, delay_value=True)   # doctest: +SKIP
    >>> updater = SoftUpdate(loss, tau=0.005)                                 # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import torch
from tensordict.utils import NestedKey

from rlkernel.errors import SpecError
from rlkernel_algos.objectives._off_policy import OffPolicyLoss
from rlkernel_algos.objectives._returns import check_loss_function, distance_loss
from rlkernel_algos.objectives._runner import ModuleRunner

__all__ = ["DDPGLoss"]


def deterministic_action(runner: ModuleRunner, key, source, *, nxt: bool, batch_shape) -> torch.Tensor:
    """The action a deterministic actor writes at ``key``."""
    action = runner.outputs(source, nxt=nxt, batch_shape=batch_shape, stop_at=key).get(key)
    if action is None:
        raise SpecError(f"{runner.name} writes {runner.out_keys}, not the action key {key!r}; use set_keys(action=...)")
    return action


class DDPGLoss(OffPolicyLoss):
    """The DDPG loss (Lillicrap et al. 2016).

    Args:
        actor_network: a deterministic actor writing ``action``.
        value_network: a critic reading the observation and ``action``, writing
            ``state_action_value``.
        loss_function: ``"l2"`` (default), ``"l1"`` or ``"smooth_l1"``.
        delay_actor: keep a target actor (``target_actor_network``); default False.
        delay_value: keep a target critic (``target_value_network``); default True.
        gamma: the discount (shortcut for ``make_value_estimator("td0", gamma=...)``).

    Returns (from ``forward``): ``loss_actor``, ``loss_value``, and the diagnostics
    ``pred_value``, ``target_value``, ``pred_value_max``, ``target_value_max``, ``td_error``.
    """

    @dataclasses.dataclass
    class _AcceptedKeys(OffPolicyLoss._AcceptedKeys):
        """Keys of :class:`DDPGLoss` (plus those of every off-policy loss).

        Attributes:
            action: the action (stored, and written by the actor).
            state_action_value: the critic's output.
        """

        action: NestedKey = "action"
        state_action_value: NestedKey = "state_action_value"

    def __init__(self, actor_network, value_network, *, loss_function: str = "l2", delay_actor: bool = False,
                 delay_value: bool = True, gamma: float | None = None) -> None:
        super().__init__(gamma=gamma)
        owner = type(self).__name__
        self.actor_network = actor_network
        self.value_network = value_network
        self.loss_function = check_loss_function(loss_function, owner)
        self.delay_actor, self.delay_value = bool(delay_actor), bool(delay_value)
        self._actor = ModuleRunner(actor_network, f"{owner}.actor_network")
        self._value = ModuleRunner(value_network, f"{owner}.value_network")
        self._target_actor = self._actor
        self._target_value = self._value
        if self.delay_actor:
            self._target_actor = ModuleRunner(self.make_target("actor_network"), f"{owner}.target_actor_network")
        if self.delay_value:
            self._target_value = ModuleRunner(self.make_target("value_network"), f"{owner}.target_value_network")

    def _build_in_keys(self) -> list[NestedKey]:
        action = self.tensor_keys.action
        return [
            *self._actor.in_keys, *self._value.in_keys,
            *self._network_keys(self._actor, now=False, nxt=True),
            *self._network_keys(self._value, now=False, nxt=True, skip=(action,)), *self._step_keys(),
        ]

    def _q(self, runner: ModuleRunner, source, batch_shape, *, nxt: bool = False, action=None) -> torch.Tensor:
        key = self.tensor_keys.state_action_value
        overrides = None if action is None else {self.tensor_keys.action: action}
        value = runner.outputs(source, nxt=nxt, overrides=overrides, batch_shape=batch_shape, stop_at=key).get(key)
        if value is None:
            raise SpecError(
                f"{runner.name} writes {runner.out_keys}, not {key!r}; use set_keys(state_action_value=...)"
            )
        return value

    def _loss(self, source, batch_shape: torch.Size) -> dict[str, torch.Tensor]:
        action_key = self.tensor_keys.action
        # actor: through the critic with detached parameters
        action = deterministic_action(self._actor, action_key, source, nxt=False, batch_shape=batch_shape)
        critic_view = self.detached_runners("value_network")[0]
        q_actor = self._q(critic_view, source, batch_shape, action=action)
        weights = self._weights(source, q_actor)
        loss_actor = self._mean(-q_actor, weights)
        with torch.no_grad():
            next_action = deterministic_action(self._target_actor, action_key, source, nxt=True,
                                               batch_shape=batch_shape)
            next_value = self._q(self._target_value, source, batch_shape, nxt=True, action=next_action)
            target = self._bootstrap(source, next_value)
        pred = self._q(self._value, source, batch_shape)
        loss_value = self._mean(distance_loss(pred, target, self.loss_function), weights)
        with torch.no_grad():
            td_error = (pred - target).abs()
            self._write_priority(source, td_error.squeeze(-1))
            pred = pred.detach()
            return_terms = {
                "pred_value": pred.mean(), "target_value": target.mean(),
                "pred_value_max": pred.max(), "target_value_max": target.max(), "td_error": td_error.mean(),
            }
        return {"loss_actor": loss_actor, "loss_value": loss_value, **return_terms}
