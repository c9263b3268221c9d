"""The estimators: TD(0), TD(1), TD(lambda), GAE and V-trace, TensorDict in / TensorDict out.

Example (PPO-style)::

    >>> from tensordict import TensorDict
    >>> from rlkernel_algos.modules import MLP, ValueOperator
    >>> critic = ValueOperator(MLP(in_features=3, out_features=1, num_cells=[16]))
    >>> gae = GAE(gamma=0.99, lmbda=0.95, value_network=critic)
    >>> T = 8
    >>> td = TensorDict({
    ...     "observation": torch.randn(T, 3),
    ...     "next": {"observation": torch.randn(T, 3), "reward": torch.randn(T, 1),
    ...              "done": torch.zeros(T, 1, dtype=torch.bool),
    ...              "terminated": torch.zeros(T, 1, dtype=torch.bool)}}, [T])
    >>> gae(td)["advantage"].shape
    torch.Size([8, 1])
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import Tensor, nn

from rlkernel.errors import SpecError
from rlkernel_algos.value.base import ValueEstimatorBase, get_entry
from rlkernel_algos.value.functional import (
    td0_return_estimate,
    vec_generalized_advantage_estimate,
    vec_td_lambda_return_estimate,
    vtrace_advantage_estimate,
)

__all__ = ["GAE", "TD0Estimator", "TD1Estimator", "TDLambdaEstimator", "VTrace"]

_EPS = 1e-5


def _standardize(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean()) / x.std().clamp_min(_EPS) if x.numel() > 1 else x - x.mean()


class _TDBase(ValueEstimatorBase):
    """TD estimators: ``gamma``, optional reward standardization."""

    def __init__(self, *, gamma: float, value_network: nn.Module | None, average_rewards: bool = False,
                 **kwargs: object) -> None:
        super().__init__(value_network=value_network, **kwargs)  # type: ignore[arg-type]
        self._check_coefs(gamma=gamma)
        self.register_buffer("gamma", torch.tensor(float(gamma)))
        self.average_rewards = bool(average_rewards)

    def _reward(self, reward: torch.Tensor) -> torch.Tensor:
        return _standardize(reward) if self.average_rewards else reward


class TD0Estimator(_TDBase):
    """One-step TD target: ``value_target = r + gamma * (1 - terminated) * V(s')``.

    Args:
        gamma: the discount.
        value_network: the critic (see :class:`ValueEstimatorBase` for the other args).
        average_rewards: standardize the rewards of the batch first.
    """

    def _estimate(self, td: TensorDictBase, value: Tensor, next_value: Tensor, reward: Tensor,
                  done: Tensor, terminated: Tensor, time_dim: int) -> tuple[Tensor, Tensor]:
        target = td0_return_estimate(self.gamma, next_value, self._reward(reward), terminated)
        return target - value, target


class TDLambdaEstimator(_TDBase):
    """TD(lambda) target (see :func:`~rlkernel_algos.value.functional.vec_td_lambda_return_estimate`).

    Args:
        gamma: the discount.
        lmbda: the trace decay, in ``[0, 1]``.
        value_network: the critic (see :class:`ValueEstimatorBase` for the other args).
        average_rewards: standardize the rewards of the batch first.
    """

    def __init__(self, *, gamma: float, lmbda: float, value_network: nn.Module | None, **kwargs: object) -> None:
        super().__init__(gamma=gamma, value_network=value_network, **kwargs)  # type: ignore[arg-type]
        self._check_coefs(lmbda=lmbda)
        self.register_buffer("lmbda", torch.tensor(float(lmbda)))

    def _estimate(self, td: TensorDictBase, value: Tensor, next_value: Tensor, reward: Tensor,
                  done: Tensor, terminated: Tensor, time_dim: int) -> tuple[Tensor, Tensor]:
        target = vec_td_lambda_return_estimate(
            self.gamma, self.lmbda, next_value, self._reward(reward), done, terminated, time_dim=time_dim
        )
        return target - value, target


class TD1Estimator(_TDBase):
    """TD(1) target: discounted rewards to the end of the batch, bootstrapped where it is cut.

    Args:
        gamma: the discount.
        value_network: the critic (see :class:`ValueEstimatorBase` for the other args).
        average_rewards: standardize the rewards of the batch first.
    """

    def _estimate(self, td: TensorDictBase, value: Tensor, next_value: Tensor, reward: Tensor,
                  done: Tensor, terminated: Tensor, time_dim: int) -> tuple[Tensor, Tensor]:
        target = vec_td_lambda_return_estimate(
            self.gamma, 1.0, next_value, self._reward(reward), done, terminated, time_dim=time_dim
        )
        return target - value, target


class GAE(ValueEstimatorBase):
    """Generalized advantage estimation (see
    :func:`~rlkernel_algos.value.functional.vec_generalized_advantage_estimate`).

    Args:
        gamma: the discount.
        lmbda: the trace decay, in ``[0, 1]``.
        value_network: the critic, or ``None`` to read ``state_value`` entries.
        average_gae: standardize the advantage over the batch (the value target is
            computed before that).
        differentiable, skip_existing, time_dim, advantage_key, value_target_key,
        value_key: see :class:`~rlkernel_algos.value.base.ValueEstimatorBase`.
    """

    def __init__(
        self,
        *,
        gamma: float,
        lmbda: float,
        value_network: nn.Module | None,
        average_gae: bool = False,
        **kwargs: object,
    ) -> None:
        super().__init__(value_network=value_network, **kwargs)  # type: ignore[arg-type]
        self._check_coefs(gamma=gamma, lmbda=lmbda)
        self.register_buffer("gamma", torch.tensor(float(gamma)))
        self.register_buffer("lmbda", torch.tensor(float(lmbda)))
        self.average_gae = bool(average_gae)

    def _estimate(self, td: TensorDictBase, value: Tensor, next_value: Tensor, reward: Tensor,
                  done: Tensor, terminated: Tensor, time_dim: int) -> tuple[Tensor, Tensor]:
        advantage, target = vec_generalized_advantage_estimate(
            self.gamma, self.lmbda, value, next_value, reward, done, terminated, time_dim=time_dim
        )
        if self.average_gae:
            advantage = _standardize(advantage)
        return advantage, target


class VTrace(ValueEstimatorBase):
    """V-trace targets for off-policy actor-critic (IMPALA).

    The current policy's log-probability of the taken action is computed with
    ``actor_network.get_dist(td).log_prob(td[action])``; the collecting policy's is read at
    ``sample_log_prob`` (``"action_log_prob"`` by default, what
    :class:`~rlkernel_algos.modules.ProbabilisticActor` writes with ``return_log_prob=True``).

    Args:
        gamma: the discount.
        actor_network: the current policy (a ``ProbabilisticTensorDictSequential``).
        value_network: the critic.
        rho_thresh: clipping of the importance weights in the temporal differences.
        c_thresh: clipping of the importance weights in the trace.
        average_adv: standardize the advantage over the batch.
    """

    def __init__(
        self,
        *,
        gamma: float,
        actor_network: nn.Module,
        value_network: nn.Module | None,
        rho_thresh: float = 1.0,
        c_thresh: float = 1.0,
        average_adv: bool = False,
        **kwargs: object,
    ) -> None:
        super().__init__(value_network=value_network, **kwargs)  # type: ignore[arg-type]
        self._check_coefs(gamma=gamma)
        if not hasattr(actor_network, "get_dist"):
            raise SpecError(
                f"VTrace: actor_network must build a distribution (get_dist), got {type(actor_network).__name__}"
            )
        if not (rho_thresh > 0 and c_thresh > 0):
            raise SpecError(f"VTrace: rho_thresh and c_thresh must be > 0, got {rho_thresh} and {c_thresh}")
        self.actor_network = actor_network
        self.register_buffer("gamma", torch.tensor(float(gamma)))
        self.rho_thresh = float(rho_thresh)
        self.c_thresh = float(c_thresh)
        self.average_adv = bool(average_adv)

    def _log_prob(self, log_prob: torch.Tensor, like: torch.Tensor, what: str) -> torch.Tensor:
        if log_prob.shape == like.shape[:-1]:
            log_prob = log_prob.unsqueeze(-1)
        if log_prob.shape != like.shape:
            raise SpecError(
                f"VTrace: the {what} log-probability has shape {list(log_prob.shape)}, expected "
                f"{list(like.shape)} or {list(like.shape[:-1])} (the reward's shape)"
            )
        return log_prob

    def _estimate(self, td: TensorDictBase, value: Tensor, next_value: Tensor, reward: Tensor,
                  done: Tensor, terminated: Tensor, time_dim: int) -> tuple[Tensor, Tensor]:
        keys = self.tensor_keys
        log_mu = get_entry(td, keys.sample_log_prob, "VTrace", "sample_log_prob")
        action = get_entry(td, keys.action, "VTrace", "action")
        dist = self.actor_network.get_dist(td)
        log_pi = dist.log_prob(action)
        advantage, vs = vtrace_advantage_estimate(
            self.gamma, self._log_prob(log_pi, reward, "current policy's"),
            self._log_prob(log_mu, reward, "collecting policy's"), value, next_value, reward, done,
            terminated, self.rho_thresh, self.c_thresh, time_dim=time_dim,
        )
        if self.average_adv:
            advantage = _standardize(advantage)
        return advantage, vs
