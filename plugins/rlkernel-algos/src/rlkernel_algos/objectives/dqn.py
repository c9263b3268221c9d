"""Deep Q-learning: :class:`DQNLoss` (with double DQN), and the action-space helpers.

The value network writes ``action_value`` (``[*B, n_actions]``): a plain Q-network, a
dueling head, or a ``QValueActor`` (only the part up to ``action_value`` runs). The stored
action is one-hot (``[*B, n]``) or an index (``[*B]`` or ``[*B, 1]``).

``loss = mean(d(Q(s, a), r + gamma * (1 - terminated) * Q_target(s', a*)))`` where ``a*``
maximises ``Q_target(s', .)``, or, with ``double_dqn=True``, ``Q(s', .)`` (chosen by the
online network, evaluated by the target network; van Hasselt et al. 2016).

Example::

    >>> loss = DQNLoss(qnet, action_space="categorical", double_dqn=True)  # doctest: +SKIP
    >>> updater = HardUpdate(loss, value_network_update_interval=1000)      # doctest: +SKIP
    >>> loss(batch)["loss"].backward(); optim.step(); updater.step()         # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import torch
from tensordict.utils import NestedKey

from rlkernel.errors import SpecError
from rlkernel_algos.objectives._off_policy import OffPolicyLoss
from rlkernel_algos.objectives._returns import check_loss_function, distance_loss
from rlkernel_algos.objectives._runner import ModuleRunner

__all__ = ["DQNLoss", "action_space_kind", "chosen_values"]

_SPACE_NAMES = {"one_hot": "one_hot", "one-hot": "one_hot", "onehot": "one_hot", "categorical": "categorical"}


def action_space_kind(action_space: object, owner: str) -> str | None:
    """``"one_hot"``, ``"categorical"`` or ``None`` (decided from each batch's action).

    Accepts those strings (``"one-hot"`` too) or a spec (``OneHot``, ``Categorical``).
    """
    if action_space is None:
        return None
    if isinstance(action_space, str):
        kind = _SPACE_NAMES.get(action_space.lower())
        if kind is not None:
            return kind
    else:
        name = type(action_space).__name__
        if name in ("OneHot", "OneHotDiscreteTensorSpec"):
            return "one_hot"
        if name in ("Categorical", "DiscreteTensorSpec"):
            return "categorical"
    raise SpecError(
        f"{owner}: action_space must be 'one_hot', 'categorical', a OneHot or a Categorical spec; got {action_space!r}"
    )


def chosen_values(values: torch.Tensor, action: torch.Tensor, kind: str | None) -> torch.Tensor:
    """The values of the taken actions, ``[*B, 1]``, from ``values`` ``[*B, n]``.

    ``kind=None`` reads a one-hot action when it has ``values``' shape and is not an
    integer tensor, an index otherwise.
    """
    if kind is None:
        floating = action.dtype == torch.bool or action.is_floating_point()
        kind = "one_hot" if action.shape == values.shape and floating else "categorical"
    if kind == "one_hot":
        return (values * action.to(values.dtype)).sum(-1, keepdim=True)
    index = action if action.ndim == values.ndim else action.unsqueeze(-1)
    return values.gather(-1, index.long())


class DQNLoss(OffPolicyLoss):
    """The DQN loss (Mnih et al. 2015), optionally double DQN.

    Args:
        value_network: a module writing ``action_value`` (``[*B, n_actions]``).
        loss_function: ``"l2"`` (default), ``"l1"`` or ``"smooth_l1"`` (Huber).
        delay_value: keep a target copy of the network (``target_value_network``), moved by
            :class:`~rlkernel_algos.objectives.HardUpdate` or ``SoftUpdate``. If False, the
            online network (without gradient) gives the targets.
        double_dqn: choose the next action with the online network.
        action_space: ``"one_hot"``, ``"categorical"``, a spec, or ``None`` (per batch).
        gamma: the discount (shortcut for ``make_value_estimator("td0", gamma=...)``).

    Returns (from ``forward``): ``loss``, and the diagnostics ``td_error`` (mean absolute),
    ``pred_value`` and ``target_value`` (means).
    """

    @dataclasses.dataclass
    class _AcceptedKeys(OffPolicyLoss._AcceptedKeys):
        """Keys of :class:`DQNLoss` (plus those of every off-policy loss).

        Attributes:
            action_value: the network's per-action values.
            action: the action taken.
        """

        action_value: NestedKey = "action_value"
        action: NestedKey = "action"

    def __init__(
        self,
        value_network,
        *,
        loss_function: str = "l2",
        delay_value: bool = True,
        double_dqn: bool = False,
        action_space: object = None,
        gamma: float | None = None,
    ) -> None:
        super().__init__(gamma=gamma)
        owner = type(self).__name__
        self.value_network = value_network
        self._value = ModuleRunner(value_network, f"{owner}.value_network")
        self.loss_function = check_loss_function(loss_function, owner)
        self.delay_value = bool(delay_value)
        self.double_dqn = bool(double_dqn)
        self.action_space = action_space_kind(action_space, owner)
        if self.delay_value:
            self.make_target("value_network")
            self._target_value = ModuleRunner(self.target_value_network, f"{owner}.target_value_network")
        else:
            self._target_value = self._value

    def _build_in_keys(self) -> list[NestedKey]:
        return [
            *self._value.in_keys, self.tensor_keys.action,
            *self._network_keys(self._value, now=False, nxt=True), *self._step_keys(),
        ]

    def _action_values(self, runner: ModuleRunner, source, batch_shape, nxt: bool) -> torch.Tensor:
        key = self.tensor_keys.action_value
        values = runner.outputs(source, nxt=nxt, batch_shape=batch_shape, stop_at=key).get(key)
        if values is None:
            raise SpecError(
                f"{type(self).__name__}: the value network writes {runner.out_keys}, not {key!r}; "
                "use set_keys(action_value=...)"
            )
        return values

    def _next_value(self, source, batch_shape) -> torch.Tensor:
        next_target = self._action_values(self._target_value, source, batch_shape, nxt=True)
        if not self.double_dqn:
            return next_target.max(-1, keepdim=True).values
        best = self._action_values(self._value, source, batch_shape, nxt=True).argmax(-1, keepdim=True)
        return next_target.gather(-1, best)

    def _loss(self, source, batch_shape: torch.Size) -> dict[str, torch.Tensor]:
        values = self._action_values(self._value, source, batch_shape, nxt=False)
        pred = chosen_values(values, self._get(source, "action"), self.action_space)
        with torch.no_grad():
            target = self._bootstrap(source, self._next_value(source, batch_shape))
        weights = self._weights(source, pred)
        loss = self._mean(distance_loss(pred, target, self.loss_function), weights)
        with torch.no_grad():
            td_error = (pred - target).abs()
            self._write_priority(source, td_error.squeeze(-1))
        return {
            "loss": loss,
            "td_error": td_error.mean(),
            "pred_value": pred.detach().mean(),
            "target_value": target.mean(),
        }
