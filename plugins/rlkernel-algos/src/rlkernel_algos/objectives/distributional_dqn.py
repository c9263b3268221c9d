"""Categorical (C51) distributional Q-learning: :class:`DistributionalDQNLoss`.

The value network writes ``action_value``: **log**-probabilities over a fixed support of
``n_atoms`` returns, for each action, shaped ``[*B, n_atoms, n_actions]`` and normalised
over the atoms (dim ``-2``), as TorchRL's ``DistributionalQValueActor`` does.

The target distribution (Bellemare et al. 2017) moves each atom ``z_j`` of the next
state's distribution (of the greedy action under its mean) to ``r + gamma * (1 -
terminated) * z_j``, clips it to the support and splits its mass between the two
neighbouring atoms (:func:`project_distribution`). The loss is the cross-entropy of the
predicted distribution of the taken action against it.
"""

from __future__ import annotations

import dataclasses

import torch
from tensordict.utils import NestedKey

from rlkernel.errors import SpecError
from rlkernel_algos.objectives._off_policy import OffPolicyLoss
from rlkernel_algos.objectives._returns import match_shape, not_terminal
from rlkernel_algos.objectives._runner import ModuleRunner
from rlkernel_algos.objectives.dqn import action_space_kind

__all__ = ["DistributionalDQNLoss", "project_distribution"]


def project_distribution(
    probs: torch.Tensor, reward: torch.Tensor, not_done: torch.Tensor, gamma: float, support: torch.Tensor
) -> torch.Tensor:
    """Project ``r + gamma * not_done * z`` weighted by ``probs`` back onto ``support``.

    Args:
        probs: ``[N, n_atoms]`` next-state probabilities (of the chosen action).
        reward, not_done: ``[N, 1]``.
        gamma: the discount.
        support: ``[n_atoms]`` evenly spaced atoms.

    Returns:
        ``[N, n_atoms]`` probabilities on ``support`` (rows sum to the rows of ``probs``).
    """
    n_atoms = support.numel()
    v_min, v_max = support[0].item(), support[-1].item()
    delta = (v_max - v_min) / (n_atoms - 1)
    shifted = (reward + gamma * not_done * support).clamp(v_min, v_max)
    pos = (shifted - v_min) / delta
    low, up = pos.floor().long(), pos.ceil().long()
    # an atom landing exactly on the support keeps all its mass: move one index apart
    low = torch.where((up > 0) & (low == up), low - 1, low)
    up = torch.where((low < n_atoms - 1) & (low == up), up + 1, up)
    out = torch.zeros_like(probs)
    out.scatter_add_(-1, low, probs * (up.to(pos.dtype) - pos))
    out.scatter_add_(-1, up, probs * (pos - low.to(pos.dtype)))
    return out


def _find_support(value_network) -> torch.Tensor | None:
    for module in value_network.modules():
        support = getattr(module, "support", None)
        if isinstance(support, torch.Tensor):
            return support
    return None


class DistributionalDQNLoss(OffPolicyLoss):
    """The C51 loss.

    Args:
        value_network: a module writing ``action_value`` (log-probabilities,
            ``[*B, n_atoms, n_actions]``).
        gamma: the discount.
        support: the ``n_atoms`` returns (evenly spaced, increasing); default: the
            ``support`` attribute of the network (or one of its sub-modules).
        delay_value: keep a target copy of the network.
        double_dqn: choose the next action with the online network.
        action_space: ``"one_hot"``, ``"categorical"``, a spec, or ``None`` (per batch).

    Returns (from ``forward``): ``loss`` (mean cross-entropy), and the diagnostic
    ``td_error`` (the mean per-sample cross-entropy, also written as the priority).
    """

    @dataclasses.dataclass
    class _AcceptedKeys(OffPolicyLoss._AcceptedKeys):
        """Keys of :class:`DistributionalDQNLoss` (plus those of every off-policy loss)."""

        action_value: NestedKey = "action_value"
        action: NestedKey = "action"

    def __init__(self, value_network, gamma: float = 0.99, *, support: torch.Tensor | None = None,
                 delay_value: bool = True, double_dqn: bool = False, action_space: object = None) -> None:
        super().__init__(gamma=gamma)
        owner = type(self).__name__
        support = _find_support(value_network) if support is None else torch.as_tensor(support)
        if support is None or support.ndim != 1 or support.numel() < 2:
            raise SpecError(f"{owner}: give support, a 1-d tensor of at least 2 atoms (got {support!r})")
        gaps = support.diff()
        if not bool((gaps > 0).all()) or not torch.allclose(gaps, gaps[0].expand_as(gaps), rtol=1e-4, atol=1e-6):
            raise SpecError(f"{owner}: support must be evenly spaced and increasing, got {support.tolist()}")
        self.register_buffer("support", support.detach().clone().float())
        self.value_network = value_network
        self._value = ModuleRunner(value_network, f"{owner}.value_network")
        self.double_dqn = bool(double_dqn)
        self.delay_value = bool(delay_value)
        self.action_space = action_space_kind(action_space, owner)
        if self.delay_value:
            self.make_target("value_network")
            self._target_value = ModuleRunner(self.target_value_network, f"{owner}.target_value_network")
        else:
            self._target_value = self._value

    def make_value_estimator(self, value_type=None, **hyperparams):
        """Only one-step targets (``"td0"``) are projected; ``gamma`` may be changed."""
        estimator = super().make_value_estimator(value_type, **hyperparams)
        if estimator.value_type != "td0":
            raise SpecError(f"{type(self).__name__}: only 'td0' targets are supported, got {value_type!r}")
        return estimator

    def _build_in_keys(self) -> list[NestedKey]:
        return [
            *self._value.in_keys, self.tensor_keys.action,
            *self._network_keys(self._value, now=False, nxt=True), *self._step_keys(),
        ]

    def _log_probs(self, runner: ModuleRunner, source, batch_shape, nxt: bool) -> torch.Tensor:
        key = self.tensor_keys.action_value
        values = runner.outputs(source, nxt=nxt, batch_shape=batch_shape, stop_at=key).get(key)
        if values is None or values.ndim < 2 or values.shape[-2] != self.support.numel():
            got = None if values is None else list(values.shape)
            raise SpecError(
                f"{type(self).__name__}: expected {key!r} of shape [*B, {self.support.numel()} atoms, n_actions] "
                f"from the value network, got {got}"
            )
        return values

    @staticmethod
    def _select(dist: torch.Tensor, action: torch.Tensor, kind: str | None) -> torch.Tensor:
        """``dist[..., a]`` for each sample: ``[*B, n_atoms]``."""
        if kind is None:
            floating = action.dtype == torch.bool or action.is_floating_point()
            kind = "one_hot" if action.shape[-1:] == dist.shape[-1:] and floating and action.ndim == dist.ndim - 1 \
                else "categorical"
        if kind == "one_hot":
            return (dist * action.unsqueeze(-2).to(dist.dtype)).sum(-1)
        index = action if action.ndim == dist.ndim - 1 else action.unsqueeze(-1)
        index = index.long().unsqueeze(-2).expand(*dist.shape[:-1], 1)
        return dist.gather(-1, index).squeeze(-1)

    def _loss(self, source, batch_shape: torch.Size) -> dict[str, torch.Tensor]:
        owner = type(self).__name__
        log_probs = self._select(self._log_probs(self._value, source, batch_shape, nxt=False),
                                 self._get(source, "action"), self.action_space)
        with torch.no_grad():
            next_probs = self._log_probs(self._target_value, source, batch_shape, nxt=True).exp()
            chooser = next_probs if not self.double_dqn else \
                self._log_probs(self._value, source, batch_shape, nxt=True).exp()
            best = (chooser * self.support.unsqueeze(-1)).sum(-2).argmax(-1)
            best_probs = self._select(next_probs, best, "categorical")
            flat = best_probs.reshape(-1, self.support.numel())
            reward = self._get(source, "reward", nxt=True)
            terminated = self._get(source, "terminated", nxt=True, required=False)
            if terminated is None:
                terminated = self._get(source, "done", nxt=True)
            column = flat[:, :1]
            reward = match_shape(reward, best_probs[..., :1], "('next', reward)", owner).reshape(-1, 1)
            alive = not_terminal(match_shape(terminated, best_probs[..., :1], "('next', terminated)", owner),
                                 column).reshape(-1, 1)
            target = project_distribution(flat, reward.to(flat.dtype), alive, self.value_estimator.gamma,
                                          self.support).reshape(best_probs.shape)
        cross_entropy = -(target * log_probs).sum(-1)
        weights = self._weights(source, cross_entropy)
        with torch.no_grad():
            self._write_priority(source, cross_entropy.detach())
        return {"loss": self._mean(cross_entropy, weights), "td_error": cross_entropy.detach().mean()}
