"""Modules, exploration and GAE driving real gymnasium environments (through rlkernel-gym)."""

from __future__ import annotations

import pytest
import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictSequential

import rlkernel
from rlkernel.exploration import ExplorationType, set_exploration_type
from rlkernel_algos.modules import (
    MLP,
    AdditiveGaussianModule,
    EGreedyModule,
    ProbabilisticActor,
    QValueActor,
    TanhNormal,
    ValueOperator,
)
from rlkernel_algos.value import GAE

pytest.importorskip("rlkernel_gym")
pytest.importorskip("gymnasium")


def test_dqn_policy_on_cartpole():
    env = rlkernel.make_env("gym:CartPole-v1")
    env.set_seed(0)
    qnet = QValueActor(MLP(in_features=4, out_features=2, num_cells=[16]), spec=env.action_spec)
    explore = EGreedyModule(env.action_spec, eps_init=0.5, eps_end=0.05, annealing_num_steps=10)
    policy = TensorDictSequential(qnet, explore)
    rollout = env.rollout(60, policy, break_when_any_done=False)  # the env checks every action
    assert rollout.batch_size == (60,) and rollout["action"].dtype is torch.int64
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        greedy = env.rollout(20, policy)
    assert torch.equal(greedy["action"], greedy["action_value"].argmax(-1))


def test_ppo_style_policy_and_gae_on_pendulum():
    env = rlkernel.make_env("gym:Pendulum-v1")
    env.set_seed(0)
    spec = env.action_spec
    params = TensorDictModule(
        torch.nn.Sequential(MLP(in_features=3, out_features=2, num_cells=[16]), NormalParamExtractor()),
        in_keys=["observation"], out_keys=["loc", "scale"],
    )
    actor = ProbabilisticActor(
        params, in_keys=["loc", "scale"], distribution_class=TanhNormal,
        distribution_kwargs={"low": spec.low, "high": spec.high}, spec=spec, return_log_prob=True,
    )
    policy = TensorDictSequential(actor, AdditiveGaussianModule(spec, sigma_init=0.1, sigma_end=0.1))
    rollout = env.rollout(40, policy)
    assert rollout.batch_size == (40,) and (rollout["action"].abs() <= 2.0).all()
    critic = ValueOperator(MLP(in_features=3, out_features=1, num_cells=[16]))
    GAE(gamma=0.99, lmbda=0.95, value_network=critic)(rollout)
    assert rollout["advantage"].shape == (40, 1) and torch.isfinite(rollout["value_target"]).all()
