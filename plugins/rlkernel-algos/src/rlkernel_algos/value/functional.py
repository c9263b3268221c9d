"""Vectorised returns and advantages: TD(0), TD(1), TD(lambda), GAE, V-trace.

All functions take tensors shaped ``[*batch, time, *features]`` (``time_dim=-2`` by
default, as in TorchRL: ``[*B, T, 1]``) and run in a handful of whole-tensor operations:
each recursion is one call of :func:`~rlkernel_algos.value.scan.reverse_discounted_cumsum`
(a log-depth scan), never a Python loop over time.

Episode ends:

* ``terminated`` (the MDP reached a terminal state): the next state has value 0, nothing
  is bootstrapped. ``terminated`` defaults to ``done`` when not given.
* ``done`` but not ``terminated`` (truncation, e.g. a time limit): the target bootstraps
  from ``next_state_value``.
* in both cases the recursion of TD(lambda), TD(1), GAE and V-trace stops at ``done``: no
  trace crosses an episode boundary, so trajectories may be laid end to end along time.
  The last step of the time dim is a boundary as well (TD(lambda) and TD(1) bootstrap
  from its ``next_state_value``).

``gamma`` and ``lmbda`` are numbers, or tensors broadcastable to the inputs' shape (one
value per step: the recursion uses the one of the step it is at, TorchRL's
``rolling_gamma=True``).
"""

from __future__ import annotations

import torch

from rlkernel.errors import SpecError
from rlkernel_algos.value._checks import Scalar, check_coefficient, check_tensors, time_last_flag
from rlkernel_algos.value.scan import reverse_discounted_cumsum

__all__ = [
    "generalized_advantage_estimate",
    "reward2go",
    "td0_advantage_estimate",
    "td0_return_estimate",
    "td1_advantage_estimate",
    "td1_return_estimate",
    "td_lambda_advantage_estimate",
    "td_lambda_return_estimate",
    "vec_generalized_advantage_estimate",
    "vec_td1_advantage_estimate",
    "vec_td1_return_estimate",
    "vec_td_lambda_advantage_estimate",
    "vec_td_lambda_return_estimate",
    "vtrace_advantage_estimate",
]


def _coef(value: Scalar, like: torch.Tensor, name: str, owner: str) -> Scalar:
    """A number as is, a tensor moved to ``like``'s device and checked to broadcast."""
    if not isinstance(value, torch.Tensor):
        return float(value)
    try:
        torch.broadcast_shapes(value.shape, like.shape)
    except RuntimeError:
        raise SpecError(
            f"{owner}: {name} of shape {list(value.shape)} does not broadcast to the inputs' shape "
            f"{list(like.shape)}"
        ) from None
    return value.to(like.device)


def _check_rolling(rolling_gamma: bool | None, owner: str) -> None:
    if rolling_gamma is False:
        raise SpecError(
            f"{owner}: rolling_gamma=False (each start step discounting its whole future with its "
            "own gamma) is not supported; give one gamma per step (rolling_gamma=None or True)"
        )


def _masked_next(next_state_value: torch.Tensor, terminated: torch.Tensor) -> torch.Tensor:
    # where, not a product: a NaN or inf value stored for a terminal state must not leak.
    return torch.where(terminated, 0.0, next_state_value)


def _alive(flag: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``1 - flag`` in ``like``'s dtype."""
    return (~flag).to(like.dtype)


def vec_generalized_advantage_estimate(
    gamma: Scalar,
    lmbda: Scalar,
    state_value: torch.Tensor,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor | None = None,
    *,
    time_dim: int = -2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimate (Schulman et al., 2016): ``(advantage, value_target)``.

    ``delta[t] = reward[t] + gamma * (1 - terminated[t]) * next_state_value[t] - state_value[t]``
    and ``advantage[t] = delta[t] + gamma * lmbda * (1 - done[t]) * advantage[t + 1]``;
    ``value_target = advantage + state_value``.

    Example::

        >>> T = 5
        >>> value, next_value = torch.zeros(T, 1), torch.zeros(T, 1)
        >>> reward, done = torch.ones(T, 1), torch.zeros(T, 1, dtype=torch.bool)
        >>> adv, target = vec_generalized_advantage_estimate(0.5, 1.0, value, next_value, reward, done)
        >>> adv.squeeze(-1)
        tensor([1.9375, 1.8750, 1.7500, 1.5000, 1.0000])
    """
    owner = "generalized_advantage_estimate"
    check_coefficient(gamma, "gamma", owner)
    check_coefficient(lmbda, "lmbda", owner)
    check_tensors(
        owner, time_dim, state_value=state_value, next_state_value=next_state_value, reward=reward,
        done=done, terminated=terminated,
    )
    if terminated is None:
        terminated = done
    gamma = _coef(gamma, reward, "gamma", owner)
    lmbda = _coef(lmbda, reward, "lmbda", owner)
    delta = reward + gamma * _masked_next(next_state_value, terminated) - state_value
    discount = (gamma * lmbda) * _alive(done, reward)
    advantage = reverse_discounted_cumsum(delta, discount, time_dim=time_dim)
    return advantage, advantage + state_value


#: Same function as :func:`vec_generalized_advantage_estimate` (kept under TorchRL's name:
#: there is no slower loop version in the library).
generalized_advantage_estimate = vec_generalized_advantage_estimate


def td0_return_estimate(
    gamma: Scalar,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    terminated: torch.Tensor | None = None,
    *,
    done: torch.Tensor | None = None,
) -> torch.Tensor:
    """One-step bootstrapped return ``reward + gamma * (1 - terminated) * next_state_value``.

    ``done`` is accepted for TorchRL compatibility and only used when ``terminated`` is
    missing (TD(0) never looks past one step, so truncation needs no special care).
    """
    owner = "td0_return_estimate"
    check_coefficient(gamma, "gamma", owner)
    if terminated is None:
        terminated = done
    if terminated is None:
        raise SpecError(f"{owner}: give terminated (or done) to know where not to bootstrap")
    check_tensors(owner, -1, next_state_value=next_state_value, reward=reward, terminated=terminated)
    gamma = _coef(gamma, reward, "gamma", owner)
    return reward + gamma * _masked_next(next_state_value, terminated)


def td0_advantage_estimate(
    gamma: Scalar,
    state_value: torch.Tensor,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor | None = None,
) -> torch.Tensor:
    """TD(0) advantage: :func:`td0_return_estimate` minus ``state_value``."""
    check_tensors("td0_advantage_estimate", -1, state_value=state_value, done=done, reward=reward)
    terminated = done if terminated is None else terminated
    return td0_return_estimate(gamma, next_state_value, reward, terminated) - state_value


def vec_td_lambda_return_estimate(
    gamma: Scalar,
    lmbda: Scalar,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor | None = None,
    rolling_gamma: bool | None = None,
    *,
    time_dim: int = -2,
) -> torch.Tensor:
    """TD(lambda) return: ``G[t] = r[t] + gamma * ((1 - lmbda) * V'[t] + lmbda * G[t + 1])``.

    ``V'[t]`` is ``next_state_value`` (zero where ``terminated``); ``G[t + 1]`` is replaced
    by ``V'[t]`` where ``done`` (and at the last step), so the trace stops at episode ends.
    """
    owner = "td_lambda_return_estimate"
    check_coefficient(gamma, "gamma", owner)
    check_coefficient(lmbda, "lmbda", owner)
    _check_rolling(rolling_gamma, owner)
    check_tensors(
        owner, time_dim, next_state_value=next_state_value, reward=reward, done=done, terminated=terminated
    )
    if terminated is None:
        terminated = done
    gamma = _coef(gamma, reward, "gamma", owner)
    lmbda = _coef(lmbda, reward, "lmbda", owner)
    cut = time_last_flag(done, time_dim)
    # Unrolled: G[t] = x[t] + c[t] G[t+1], with the bootstrap folded into x where the trace stops.
    bootstrap_weight = torch.where(cut, 1.0, 1.0 - lmbda) if isinstance(lmbda, torch.Tensor) else (
        cut.to(reward.dtype) * lmbda + (1.0 - lmbda)
    )
    x = reward + gamma * bootstrap_weight * _masked_next(next_state_value, terminated)
    discount = (gamma * lmbda) * _alive(cut, reward)
    return reverse_discounted_cumsum(x, discount, time_dim=time_dim)


td_lambda_return_estimate = vec_td_lambda_return_estimate


def vec_td_lambda_advantage_estimate(
    gamma: Scalar,
    lmbda: Scalar,
    state_value: torch.Tensor,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor | None = None,
    rolling_gamma: bool | None = None,
    time_dim: int = -2,
) -> torch.Tensor:
    """TD(lambda) advantage: :func:`vec_td_lambda_return_estimate` minus ``state_value``."""
    check_tensors("td_lambda_advantage_estimate", time_dim, state_value=state_value, reward=reward)
    returns = vec_td_lambda_return_estimate(
        gamma, lmbda, next_state_value, reward, done, terminated, rolling_gamma, time_dim=time_dim
    )
    return returns - state_value


td_lambda_advantage_estimate = vec_td_lambda_advantage_estimate


def vec_td1_return_estimate(
    gamma: Scalar,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor | None = None,
    rolling_gamma: bool | None = None,
    *,
    time_dim: int = -2,
) -> torch.Tensor:
    """TD(1) (Monte-Carlo, bootstrapped at episode cuts) return: TD(lambda) with ``lmbda=1``."""
    return vec_td_lambda_return_estimate(
        gamma, 1.0, next_state_value, reward, done, terminated, rolling_gamma, time_dim=time_dim
    )


td1_return_estimate = vec_td1_return_estimate


def vec_td1_advantage_estimate(
    gamma: Scalar,
    state_value: torch.Tensor,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor | None = None,
    rolling_gamma: bool | None = None,
    time_dim: int = -2,
) -> torch.Tensor:
    """TD(1) advantage: :func:`vec_td1_return_estimate` minus ``state_value``."""
    check_tensors("td1_advantage_estimate", time_dim, state_value=state_value, reward=reward)
    returns = vec_td1_return_estimate(
        gamma, next_state_value, reward, done, terminated, rolling_gamma, time_dim=time_dim
    )
    return returns - state_value


td1_advantage_estimate = vec_td1_advantage_estimate


def vtrace_advantage_estimate(
    gamma: Scalar,
    log_pi: torch.Tensor,
    log_mu: torch.Tensor,
    state_value: torch.Tensor,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor | None = None,
    rho_thresh: Scalar = 1.0,
    c_thresh: Scalar = 1.0,
    time_dim: int = -2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """V-trace targets (Espeholt et al., 2018): ``(advantage, vs)``.

    ``log_pi`` is the log-probability of the actions under the policy being learned,
    ``log_mu`` under the policy that collected them; ``rho = exp(log_pi - log_mu)`` is
    clipped at ``rho_thresh`` in the temporal differences and at ``c_thresh`` in the trace:

    ``vs[t] - V[t] = delta[t] + gamma * (1 - done[t]) * c[t] * (vs[t + 1] - V[t + 1])`` with
    ``delta[t] = rho[t] * (r[t] + gamma * (1 - terminated[t]) * V'[t] - V[t])``, and the
    advantage ``rho[t] * (r[t] + gamma * (1 - terminated[t]) * vs'[t] - V[t])`` where ``vs'[t]``
    is ``vs[t + 1]``, or ``V'[t]`` at an episode cut and at the last step.
    """
    owner = "vtrace_advantage_estimate"
    check_coefficient(gamma, "gamma", owner)
    check_coefficient(rho_thresh, "rho_thresh", owner, high=float("inf"))
    check_coefficient(c_thresh, "c_thresh", owner, high=float("inf"))
    check_tensors(
        owner, time_dim, log_pi=log_pi, log_mu=log_mu, state_value=state_value,
        next_state_value=next_state_value, reward=reward, done=done, terminated=terminated,
    )
    if terminated is None:
        terminated = done
    gamma = _coef(gamma, reward, "gamma", owner)
    rho = (log_pi - log_mu).exp()
    clipped_rho = rho.clamp(max=rho_thresh) if not isinstance(rho_thresh, torch.Tensor) else (
        torch.minimum(rho, rho_thresh.to(rho.device))
    )
    clipped_c = rho.clamp(max=c_thresh) if not isinstance(c_thresh, torch.Tensor) else (
        torch.minimum(rho, c_thresh.to(rho.device))
    )
    next_value = _masked_next(next_state_value, terminated)
    deltas = clipped_rho * (reward + gamma * next_value - state_value)
    vs_minus_v = reverse_discounted_cumsum(deltas, gamma * _alive(done, reward) * clipped_c, time_dim=time_dim)
    vs = vs_minus_v + state_value
    # vs of the next step: shifted along time, V' at the cuts and at the last step.
    last = time_last_flag(done, time_dim)
    vs_next = torch.cat([vs.narrow(time_dim, 1, vs.shape[time_dim] - 1), vs.narrow(time_dim, 0, 1)], time_dim)
    vs_next = torch.where(last, next_state_value, vs_next)
    vs_next = _masked_next(vs_next, terminated)
    advantage = clipped_rho * (reward + gamma * vs_next - state_value)
    return advantage, vs


def reward2go(reward: torch.Tensor, done: torch.Tensor, gamma: Scalar = 1.0, *, time_dim: int = -2) -> torch.Tensor:
    """Discounted sum of the rewards to come within each episode (``done`` ends an episode).

    Example::

        >>> reward = torch.ones(4, 1)
        >>> done = torch.tensor([[False], [True], [False], [False]])
        >>> reward2go(reward, done, 1.0).squeeze(-1)
        tensor([2., 1., 2., 1.])
    """
    owner = "reward2go"
    check_coefficient(gamma, "gamma", owner)
    check_tensors(owner, time_dim, reward=reward, done=done)
    gamma = _coef(gamma, reward, "gamma", owner)
    return reverse_discounted_cumsum(reward, gamma * _alive(done, reward), time_dim=time_dim)
