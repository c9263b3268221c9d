"""Distances, bootstrapped targets and value-estimator choice for the losses.

Off-policy losses (DQN, DDPG, TD3, SAC) compute their targets on tensors with a
:class:`ReturnEstimator`: TD(0) by default (``reward + gamma * (1 - terminated) * V'``:
no bootstrap only where the episode *terminated*; a truncated step still bootstraps from
its next observation), TD(1) and TD(lambda) over ``[*B, T]`` batches of trajectories
through :mod:`rlkernel_algos.value`'s vectorised functionals.

On-policy losses (PPO, A2C, REINFORCE) use an estimator module of
:mod:`rlkernel_algos.value` (GAE by default, as in TorchRL) that writes ``advantage`` and
``value_target`` into the batch; :func:`make_advantage_estimator` builds it.
"""

from __future__ import annotations

import enum
import importlib
from typing import Any

import torch
import torch.nn.functional as F

from rlkernel.errors import SpecError

__all__ = [
    "LOSS_FUNCTIONS",
    "ReturnEstimator",
    "ValueEstimators",
    "check_loss_function",
    "distance_loss",
    "make_advantage_estimator",
    "match_shape",
    "not_terminal",
]

LOSS_FUNCTIONS = ("l2", "l1", "smooth_l1")


class ValueEstimators(str, enum.Enum):
    """The value-estimator types (TorchRL's names); plain strings work as well."""

    TD0 = "td0"
    TD1 = "td1"
    TDLambda = "td_lambda"
    GAE = "gae"
    VTrace = "vtrace"


# value type -> class name in rlkernel_algos.value
_ESTIMATOR_CLASSES = {
    "td0": "TD0Estimator",
    "td1": "TD1Estimator",
    "td_lambda": "TDLambdaEstimator",
    "gae": "GAE",
    "vtrace": "VTrace",
}
DEFAULT_GAMMA = 0.99
DEFAULT_LMBDA = 0.95


def value_type_name(value_type: object, owner: str, allowed: tuple[str, ...]) -> str:
    """Normalise a value type (enum or string) and check it is one of ``allowed``."""
    name = value_type.value if isinstance(value_type, enum.Enum) else value_type
    if not isinstance(name, str) or name.lower() not in allowed:
        raise SpecError(f"{owner}.make_value_estimator: unknown value type {value_type!r}; valid: {list(allowed)}")
    return name.lower()


def check_loss_function(name: str, owner: str) -> str:
    """Validate a distance name (``"l2"``, ``"l1"``, ``"smooth_l1"``)."""
    if name not in LOSS_FUNCTIONS:
        raise SpecError(f"{owner}: loss_function must be one of {list(LOSS_FUNCTIONS)}, got {name!r}")
    return name


def distance_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Element-wise distance: ``(pred - target)**2``, ``|pred - target|`` or smooth L1 (Huber, beta 1)."""
    if kind == "l2":
        return (pred - target).square()
    if kind == "l1":
        return (pred - target).abs()
    return F.smooth_l1_loss(pred, target, reduction="none")


def not_terminal(terminated: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``1 - terminated`` in ``like``'s dtype (bool flags accepted)."""
    if terminated.dtype == torch.bool:
        return (~terminated).to(like.dtype)
    return 1.0 - terminated.to(like.dtype)


def match_shape(x: torch.Tensor, like: torch.Tensor, what: str, owner: str) -> torch.Tensor:
    """Reshape ``x`` to ``like``'s shape when they differ only by a trailing dim of 1."""
    if x.shape == like.shape:
        return x
    if x.ndim == like.ndim + 1 and x.shape[-1] == 1 and x.shape[:-1] == like.shape:
        return x.squeeze(-1)
    if like.ndim == x.ndim + 1 and like.shape[-1] == 1 and like.shape[:-1] == x.shape:
        return x.unsqueeze(-1)
    raise SpecError(f"{owner}: {what} has shape {list(x.shape)}, which does not fit {list(like.shape)}")


class ReturnEstimator:
    """Bootstrapped targets for off-policy losses, on tensors.

    Args:
        value_type: ``"td0"`` (default), ``"td1"`` or ``"td_lambda"``.
        gamma: the discount.
        lmbda: the TD(lambda) mixing coefficient.
        owner: the loss's name, for error messages.

    TD(1) and TD(lambda) need batches shaped ``[*B, T]`` (time last) of consecutive steps.
    """

    def __init__(self, value_type: str = "td0", *, gamma: float = DEFAULT_GAMMA, lmbda: float = DEFAULT_LMBDA,
                 owner: str = "loss") -> None:
        self.value_type = value_type_name(value_type, owner, ("td0", "td1", "td_lambda"))
        if not 0.0 <= float(gamma) <= 1.0:
            raise SpecError(f"{owner}: gamma must be in [0, 1], got {gamma}")
        if not 0.0 <= float(lmbda) <= 1.0:
            raise SpecError(f"{owner}: lmbda must be in [0, 1], got {lmbda}")
        self.gamma = float(gamma)
        self.lmbda = float(lmbda)

    def __repr__(self) -> str:
        return f"ReturnEstimator({self.value_type!r}, gamma={self.gamma}, lmbda={self.lmbda})"

    def __call__(self, reward: torch.Tensor, next_value: torch.Tensor, terminated: torch.Tensor,
                 done: torch.Tensor | None = None) -> torch.Tensor:
        """The target for each step; ``reward``, ``next_value`` and the flags share a shape."""
        if self.value_type == "td0":
            return reward + self.gamma * not_terminal(terminated, next_value) * next_value
        functional = importlib.import_module("rlkernel_algos.value.functional")
        done = terminated if done is None else done
        # the functionals take [*B, T, F] (time_dim=-2): add a feature dim when missing
        squeeze = reward.ndim == 1 or reward.shape[-1] != 1
        if squeeze:
            reward, next_value, terminated, done = (t.unsqueeze(-1) for t in (reward, next_value, terminated, done))
        if self.value_type == "td1":
            out = functional.vec_td1_return_estimate(self.gamma, next_value, reward, done, terminated)
        else:
            out = functional.vec_td_lambda_return_estimate(self.gamma, self.lmbda, next_value, reward, done, terminated)
        return out.squeeze(-1) if squeeze else out


def make_advantage_estimator(value_type: object, value_network: Any, keys: Any, hyperparams: dict,
                             owner: str, actor_network: Any = None) -> Any:
    """Build an estimator module of :mod:`rlkernel_algos.value` whose keys match ``keys``.

    ``keys`` is the loss's ``tensor_keys`` (advantage, value_target, value, reward, done,
    terminated and, for V-trace, sample_log_prob and action).
    """
    name = value_type_name(value_type, owner, tuple(_ESTIMATOR_CLASSES))
    try:
        module = importlib.import_module("rlkernel_algos.value")
        cls = getattr(module, _ESTIMATOR_CLASSES[name])
    except (ImportError, AttributeError) as err:
        raise SpecError(
            f"{owner}: the {name!r} estimator needs rlkernel_algos.value.{_ESTIMATOR_CLASSES[name]}, "
            f"which could not be imported ({err})"
        ) from err
    kwargs = {"gamma": DEFAULT_GAMMA, **({"lmbda": DEFAULT_LMBDA} if name in ("gae", "td_lambda") else {})}
    if name == "vtrace":
        kwargs["actor_network"] = actor_network
    kwargs.update(hyperparams)
    estimator = cls(value_network=value_network, **kwargs)
    renames = {}
    for field in ("advantage", "value_target", "value", "reward", "done", "terminated", "sample_log_prob", "action"):
        key = getattr(keys, field, None)
        if key is not None and hasattr(estimator.tensor_keys, field):
            renames[field] = key
    estimator.set_keys(**renames)
    return estimator
