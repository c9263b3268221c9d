"""The TensorDict estimators: keys, network calls, gradients, and agreement with the functionals."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule

from rlkernel.errors import SpecError
from rlkernel.exploration import ExplorationType, set_exploration_type
from rlkernel.testing import CountingEnv
from rlkernel_algos.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from rlkernel_algos.value import (
    GAE,
    TD0Estimator,
    TD1Estimator,
    TDLambdaEstimator,
    VTrace,
    td0_return_estimate,
    vec_generalized_advantage_estimate,
    vec_td_lambda_return_estimate,
    vtrace_advantage_estimate,
)


class CountingCritic(torch.nn.Module):
    """A linear critic that counts its calls and the rows it saw."""

    def __init__(self, features: int = 3) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(features, 1)
        self.calls = 0

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.linear(obs)


def make_steps(batch: tuple[int, ...], steps: int, seed: int = 0, features: int = 3) -> TensorDict:
    gen = torch.Generator().manual_seed(seed)
    shape = (*batch, steps)
    done = torch.rand(*shape, 1, generator=gen) < 0.2
    return TensorDict(
        {
            "observation": torch.randn(*shape, features, generator=gen),
            "action": torch.rand(*shape, 2, generator=gen) * 1.8 - 0.9,
            "action_log_prob": torch.randn(*shape, generator=gen),
            "next": {
                "observation": torch.randn(*shape, features, generator=gen),
                "reward": torch.randn(*shape, 1, generator=gen),
                "done": done,
                "terminated": done & (torch.rand(*shape, 1, generator=gen) < 0.5),
            },
        },
        list(shape),
    )


def critic_values(critic: TensorDictModule, td: TensorDict) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return critic(td.select("observation").clone())["state_value"], critic(
            td["next"].select("observation").clone()
        )["state_value"]


def functional_reference(name: str, td: TensorDict, value, next_value):
    nxt = td["next"]
    r, d, term = nxt["reward"], nxt["done"], nxt["terminated"]
    tdim = td.batch_dims - 1
    if name == "gae":
        return vec_generalized_advantage_estimate(0.9, 0.8, value, next_value, r, d, term, time_dim=tdim)
    if name == "td0":
        target = td0_return_estimate(0.9, next_value, r, term)
    elif name == "td1":
        target = vec_td_lambda_return_estimate(0.9, 1.0, next_value, r, d, term, time_dim=tdim)
    else:
        target = vec_td_lambda_return_estimate(0.9, 0.8, next_value, r, d, term, time_dim=tdim)
    return target - value, target


def build(name: str, critic):
    if name == "gae":
        return GAE(gamma=0.9, lmbda=0.8, value_network=critic)
    if name == "td0":
        return TD0Estimator(gamma=0.9, value_network=critic)
    if name == "td1":
        return TD1Estimator(gamma=0.9, value_network=critic)
    return TDLambdaEstimator(gamma=0.9, lmbda=0.8, value_network=critic)


@pytest.mark.parametrize("name", ["gae", "td0", "td1", "tdlambda"])
@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
def test_estimator_matches_functional_and_calls_network_once(name, batch):
    net = CountingCritic()
    critic = ValueOperator(net)
    td = make_steps(batch, 9, seed=len(batch))
    value, next_value = critic_values(critic, td)
    net.calls = 0
    out = build(name, critic)(td)
    assert out is td
    assert net.calls == 1  # root and next in one batched call
    adv, target = functional_reference(name, td, value, next_value)
    torch.testing.assert_close(td["advantage"], adv)
    torch.testing.assert_close(td["value_target"], target)
    torch.testing.assert_close(td["state_value"], value)
    torch.testing.assert_close(td["next", "state_value"], next_value)
    assert not td["value_target"].requires_grad


def test_gae_on_a_real_rollout():
    env = CountingEnv(max_count=4.0, max_steps=7, batch_size=(3,))
    net = TensorDictModule(
        torch.nn.Sequential(MLP(in_features=1, out_features=2, num_cells=[8]), NormalParamExtractor()),
        in_keys=["observation"], out_keys=["loc", "scale"],
    )
    actor = ProbabilisticActor(
        net, in_keys=["loc", "scale"], distribution_class=TanhNormal,
        distribution_kwargs={"low": 0.0, "high": 1.0}, spec=env.action_spec, return_log_prob=True,
    )
    with set_exploration_type(ExplorationType.RANDOM):
        rollout = env.rollout(20, actor, break_when_any_done=False)
    assert rollout.batch_size == (3, 20)
    assert rollout["next", "done"].any() and (rollout["next", "done"] & ~rollout["next", "terminated"]).any()
    critic = ValueOperator(MLP(in_features=1, out_features=1, num_cells=[8]))
    gae = GAE(gamma=0.99, lmbda=0.95, value_network=critic)
    gae(rollout)
    value, next_value = critic_values(critic, rollout)
    nxt = rollout["next"]
    adv, target = vec_generalized_advantage_estimate(
        0.99, 0.95, value, next_value, nxt["reward"], nxt["done"], nxt["terminated"]
    )
    torch.testing.assert_close(rollout["advantage"], adv)
    torch.testing.assert_close(rollout["value_target"], target)


def test_set_keys_and_values_read_from_the_input():
    td = make_steps((2,), 6)
    td.rename_key_(("next", "reward"), ("next", "r"))
    td.set("v", torch.randn(2, 6, 1))
    td.set(("next", "v"), torch.randn(2, 6, 1))
    gae = GAE(gamma=0.9, lmbda=0.8, value_network=None).set_keys(
        reward="r", value="v", advantage="adv", value_target="target"
    )
    gae(td)
    nxt = td["next"]
    adv, target = vec_generalized_advantage_estimate(
        0.9, 0.8, td["v"], nxt["v"], nxt["r"], nxt["done"], nxt["terminated"]
    )
    torch.testing.assert_close(td["adv"], adv)
    torch.testing.assert_close(td["target"], target)
    assert gae.tensor_keys.reward == "r" and "advantage" not in td.keys()


def test_skip_existing_reuses_values():
    net = CountingCritic()
    td = make_steps((2,), 5)
    td.set("state_value", torch.zeros(2, 5, 1))
    td.set(("next", "state_value"), torch.zeros(2, 5, 1))
    GAE(gamma=0.9, lmbda=0.8, value_network=ValueOperator(net), skip_existing=True)(td)
    assert net.calls == 0
    GAE(gamma=0.9, lmbda=0.8, value_network=ValueOperator(net))(td)
    assert net.calls == 1


def test_differentiable_targets_carry_gradients():
    critic = ValueOperator(torch.nn.Linear(3, 1))
    td = make_steps((2,), 5)
    GAE(gamma=0.9, lmbda=0.8, value_network=critic, differentiable=True)(td)
    assert td["value_target"].requires_grad
    td["value_target"].sum().backward()
    assert critic.module.weight.grad is not None


def test_target_params_evaluate_next_values():
    critic = ValueOperator(torch.nn.Linear(3, 1))
    target = TensorDict.from_module(critic).data.clone().zero_()
    td = make_steps((2,), 5)
    TD0Estimator(gamma=0.9, value_network=critic)(td, target_params=target)
    assert (td["next", "state_value"] == 0).all()
    torch.testing.assert_close(td["value_target"], td["next", "reward"])


def test_average_gae_standardizes():
    td = make_steps((4,), 16)
    GAE(gamma=0.9, lmbda=0.8, value_network=ValueOperator(torch.nn.Linear(3, 1)), average_gae=True)(td)
    assert abs(td["advantage"].mean().item()) < 1e-5
    assert abs(td["advantage"].std().item() - 1) < 1e-4


def test_value_estimate_does_not_write():
    td = make_steps((2,), 5)
    est = TDLambdaEstimator(gamma=0.9, lmbda=0.5, value_network=ValueOperator(torch.nn.Linear(3, 1)))
    target = est.value_estimate(td)
    assert target.shape == (2, 5, 1)
    assert "value_target" not in td.keys() and "advantage" not in td.keys()


def test_time_dim_other_than_last():
    td = make_steps((3,), 7)
    critic = ValueOperator(torch.nn.Linear(3, 1))
    GAE(gamma=0.9, lmbda=0.8, value_network=critic)(td)
    swapped = td.exclude("advantage", "value_target").transpose(0, 1)
    GAE(gamma=0.9, lmbda=0.8, value_network=critic, time_dim=0)(swapped)
    torch.testing.assert_close(swapped["advantage"].transpose(0, 1), td["advantage"])


def test_vtrace_matches_functional():
    net = TensorDictModule(
        torch.nn.Sequential(torch.nn.Linear(3, 4), NormalParamExtractor()),
        in_keys=["observation"], out_keys=["loc", "scale"],
    )
    actor = ProbabilisticActor(net, in_keys=["loc", "scale"], distribution_class=TanhNormal)
    critic = ValueOperator(torch.nn.Linear(3, 1))
    td = make_steps((2,), 6)
    VTrace(gamma=0.9, actor_network=actor, value_network=critic, rho_thresh=1.5, c_thresh=0.9)(td)
    with torch.no_grad():
        log_pi = actor.get_dist(td.clone()).log_prob(td["action"]).unsqueeze(-1)
    nxt = td["next"]
    adv, vs = vtrace_advantage_estimate(
        0.9, log_pi, td["action_log_prob"].unsqueeze(-1), td["state_value"], nxt["state_value"], nxt["reward"],
        nxt["done"], nxt["terminated"], 1.5, 0.9,
    )
    torch.testing.assert_close(td["advantage"], adv)
    torch.testing.assert_close(td["value_target"], vs)


def test_gamma_moves_with_the_module_and_is_saved():
    gae = GAE(gamma=0.9, lmbda=0.8, value_network=None)
    assert set(gae.state_dict()) >= {"gamma", "lmbda"}
    assert gae.double().gamma.dtype is torch.float64


# ---------------------------------------------------------------- errors
def test_missing_reward_is_named_with_the_fix():
    td = make_steps((2,), 5).exclude(("next", "reward"))
    with pytest.raises(SpecError, match=r"no entry \('next', 'reward'\).*set_keys\(reward=\.\.\.\)"):
        GAE(gamma=0.9, lmbda=0.8, value_network=ValueOperator(torch.nn.Linear(3, 1)))(td)
    assert "state_value" not in td.keys()  # checked before running the network


def test_missing_network_input_is_named():
    td = make_steps((2,), 5).exclude(("next", "observation"))
    with pytest.raises(SpecError, match=r"reads \['observation'\] but the input's 'next' entries lack"):
        GAE(gamma=0.9, lmbda=0.8, value_network=ValueOperator(torch.nn.Linear(3, 1)))(td)


def test_input_needs_a_time_dim_and_a_next():
    est = TD0Estimator(gamma=0.9, value_network=None)
    with pytest.raises(SpecError, match="needs a time dim"):
        est(make_steps((), 1)[0])
    with pytest.raises(SpecError, match="no 'next' sub-TensorDict"):
        est(make_steps((2,), 3).exclude("next"))
    with pytest.raises(SpecError, match="expected a TensorDict"):
        est(torch.zeros(3))


def test_bad_constructor_arguments():
    with pytest.raises(SpecError, match=r"value_network must be a tensordict\.nn module"):
        GAE(gamma=0.9, lmbda=0.8, value_network=torch.nn.Linear(3, 1))
    with pytest.raises(SpecError, match=r"lmbda must be in \[0.0, 1.0\]"):
        GAE(gamma=0.9, lmbda=2.0, value_network=None)
    with pytest.raises(SpecError, match="unknown key name 'rewards'"):
        GAE(gamma=0.9, lmbda=0.8, value_network=None).set_keys(rewards="r")
    with pytest.raises(SpecError, match="actor_network must build a distribution"):
        VTrace(gamma=0.9, actor_network=torch.nn.Linear(2, 2), value_network=None)


def test_vtrace_missing_behaviour_log_prob():
    actor = ProbabilisticActor(
        TensorDictModule(torch.nn.Sequential(torch.nn.Linear(3, 4), NormalParamExtractor()),
                         in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"], distribution_class=TanhNormal,
    )
    td = make_steps((2,), 4).exclude("action_log_prob")
    with pytest.raises(SpecError, match=r"no entry 'action_log_prob'.*set_keys\(sample_log_prob=\.\.\.\)"):
        VTrace(gamma=0.9, actor_network=actor, value_network=ValueOperator(torch.nn.Linear(3, 1)))(td)


def test_time_dim_found_by_name():
    td = make_steps((3,), 7)
    critic = ValueOperator(torch.nn.Linear(3, 1))
    GAE(gamma=0.9, lmbda=0.8, value_network=critic)(td)
    named = td.exclude("advantage", "value_target").transpose(0, 1)
    named.refine_names("time", "env")
    GAE(gamma=0.9, lmbda=0.8, value_network=critic)(named)
    torch.testing.assert_close(named["advantage"].transpose(0, 1), td["advantage"])
