"""Small networks and batches shared by the objectives tests (imported by them; no tests here)."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn

from rlkernel.specs import Bounded
from rlkernel_algos.modules import MLP, Actor, OneHotCategorical, ProbabilisticActor, TanhNormal, ValueOperator

OBS, ACT, N_ACTIONS = 3, 2, 3


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors on a shared machine: one intra-op thread is many times faster than two
    threads competing with other processes (restored after each test)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def continuous_actor(obs: int = OBS, act: int = ACT, *, spec: bool = True) -> ProbabilisticActor:
    """A TanhNormal actor in [-1, 1] writing action and action_log_prob."""
    net = TensorDictModule(
        nn.Sequential(MLP(in_features=obs, out_features=2 * act, num_cells=[16]), NormalParamExtractor()),
        in_keys=["observation"], out_keys=["loc", "scale"],
    )
    return ProbabilisticActor(
        net, in_keys=["loc", "scale"], distribution_class=TanhNormal, return_log_prob=True,
        spec=Bounded(-1.0, 1.0, shape=(act,)) if spec else None,
    )


def discrete_actor(obs: int = OBS, n: int = N_ACTIONS) -> ProbabilisticActor:
    """A one-hot categorical actor writing logits, action and action_log_prob."""
    net = TensorDictModule(MLP(in_features=obs, out_features=n, num_cells=[16]), ["observation"], ["logits"])
    return ProbabilisticActor(net, in_keys=["logits"], distribution_class=OneHotCategorical, return_log_prob=True)


def state_critic(obs: int = OBS) -> ValueOperator:
    return ValueOperator(MLP(in_features=obs, out_features=1, num_cells=[16]), in_keys=["observation"])


def q_critic(obs: int = OBS, act: int = ACT) -> ValueOperator:
    """Q(s, a): MLP on the concatenation of observation and action."""
    return ValueOperator(MLP(in_features=obs + act, out_features=1, num_cells=[16]), in_keys=["observation", "action"])


def action_values(obs: int = OBS, n: int = N_ACTIONS) -> TensorDictModule:
    return TensorDictModule(MLP(in_features=obs, out_features=n, num_cells=[16]), ["observation"], ["action_value"])


def deterministic_actor(obs: int = OBS, act: int = ACT) -> Actor:
    return Actor(nn.Sequential(MLP(in_features=obs, out_features=act, num_cells=[16]), nn.Tanh()))


def transitions(batch: int = 8, *, obs: int = OBS, act: int | None = ACT, discrete: int | None = None,
                seed: int = 0) -> TensorDict:
    """A batch of transitions: half terminated, a quarter truncated."""
    g = torch.Generator().manual_seed(seed)
    if discrete is not None:
        action = torch.nn.functional.one_hot(torch.randint(discrete, (batch,), generator=g), discrete).bool()
    else:
        action = torch.rand(batch, act, generator=g) * 1.8 - 0.9
    terminated = (torch.arange(batch) % 2 == 0).unsqueeze(-1)
    truncated = (torch.arange(batch) % 4 == 1).unsqueeze(-1)
    return TensorDict(
        {
            "observation": torch.randn(batch, obs, generator=g),
            "action": action,
            "next": {
                "observation": torch.randn(batch, obs, generator=g),
                "reward": torch.randn(batch, 1, generator=g),
                "terminated": terminated,
                "truncated": truncated,
                "done": terminated | truncated,
            },
        },
        batch_size=[batch],
    )


def as_keywords(td: TensorDict) -> dict[str, torch.Tensor]:
    """The TensorDict-free spelling of a batch: ``("next", "x")`` -> ``next_x``."""
    return {"_".join(k) if isinstance(k, tuple) else k: v for k, v in td.items(True, True)}


def grads(module: nn.Module) -> list[bool]:
    """For each parameter: does it have a non-zero gradient."""
    return [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters()]


def zero_grads(*modules: nn.Module) -> None:
    for module in modules:
        for p in module.parameters():
            p.grad = None
