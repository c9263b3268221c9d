"""The networks the recipes share: MLP actors and critics sized from an environment's specs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn

from rlkernel.envs import EnvBase
from rlkernel.specs import Bounded, Categorical
from rlkernel_algos.modules import MLP, Actor, ProbabilisticActor, TanhNormal, ValueOperator
from rlkernel_algos.recipes.config import ConfigError
from rlkernel_algos.recipes.envs import observation_size

__all__ = [
    "action_bounds",
    "action_size",
    "categorical_actor",
    "deterministic_actor",
    "is_discrete",
    "mlp",
    "q_value_critic",
    "state_value_critic",
    "tanh_normal_actor",
]


def mlp(in_features: int, out_features: int, cells: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> MLP:
    """An :class:`~rlkernel_algos.modules.MLP` with hidden sizes ``cells``."""
    return MLP(in_features=in_features, out_features=out_features, num_cells=list(cells), activation_class=activation)


def is_discrete(env: EnvBase) -> bool:
    """Whether the action is a categorical index (``Categorical`` spec)."""
    return isinstance(env.action_spec, Categorical)


def _bounded_spec(env: EnvBase) -> Bounded:
    spec = env.action_spec
    if not isinstance(spec, Bounded) or not spec.dtype.is_floating_point or not spec.shape:
        raise ConfigError(
            f"this recipe needs continuous actions with bounds (a float Bounded action spec); the environment has "
            f"{type(spec).__name__} actions"
        )
    return spec


def action_size(env: EnvBase) -> int:
    """Features of a continuous action (the last dim of its ``Bounded`` action spec)."""
    return int(_bounded_spec(env).shape[-1])


def action_bounds(env: EnvBase) -> dict[str, torch.Tensor]:
    """``{"low": ..., "high": ...}`` of a ``Bounded`` action spec, one value per action feature."""
    spec = _bounded_spec(env)
    n = action_size(env)
    low, high = (bound.expand(spec.shape).reshape(-1, n)[0].clone() for bound in (spec.low, spec.high))
    return {"low": low, "high": high}


def categorical_actor(env: EnvBase, cells: Sequence[int], activation: type[nn.Module] = nn.Tanh) -> ProbabilisticActor:
    """``observation -> logits -> Categorical`` writing ``action`` (an index) and ``action_log_prob``."""
    net = mlp(observation_size(env), int(env.action_spec.n), cells, activation)
    module = TensorDictModule(net, in_keys=["observation"], out_keys=["logits"])
    # validate_args=False: the logits come from the network and the actions from the actor or
    # the collected batch (checked against the action spec by the env): torch's per-call
    # argument checks would double the cost of building the distribution.
    return ProbabilisticActor(module, in_keys=["logits"], distribution_class=torch.distributions.Categorical,
                              distribution_kwargs={"validate_args": False}, return_log_prob=True,
                              spec=env.action_spec)


def tanh_normal_actor(env: EnvBase, cells: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> ProbabilisticActor:
    """``observation -> (loc, scale) -> TanhNormal`` within the action bounds (state-dependent scale)."""
    net = nn.Sequential(mlp(observation_size(env), 2 * action_size(env), cells, activation), NormalParamExtractor())
    module = TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"])
    return ProbabilisticActor(module, in_keys=["loc", "scale"], distribution_class=TanhNormal,
                              distribution_kwargs=action_bounds(env), return_log_prob=True, spec=env.action_spec)


class _Rescale(nn.Module):
    """``tanh(x)`` mapped onto ``[low, high]``."""

    def __init__(self, low: torch.Tensor, high: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mid", (high + low) / 2)
        self.register_buffer("half_range", (high - low) / 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mid + self.half_range * torch.tanh(x)


def deterministic_actor(env: EnvBase, cells: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> Actor:
    """``observation -> tanh -> [low, high]`` writing ``action`` (DDPG, TD3)."""
    bounds = action_bounds(env)
    net = nn.Sequential(mlp(observation_size(env), action_size(env), cells, activation), _Rescale(**bounds))
    return Actor(net, in_keys=["observation"], spec=env.action_spec)


def q_value_critic(env: EnvBase, cells: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> ValueOperator:
    """``(observation, action) -> state_action_value``."""
    net = mlp(observation_size(env) + action_size(env), 1, cells, activation)
    return ValueOperator(net, in_keys=["observation", "action"])


def state_value_critic(env: EnvBase, cells: Sequence[int], activation: type[nn.Module] = nn.Tanh) -> ValueOperator:
    """``observation -> state_value``."""
    return ValueOperator(mlp(observation_size(env), 1, cells, activation), in_keys=["observation"])
