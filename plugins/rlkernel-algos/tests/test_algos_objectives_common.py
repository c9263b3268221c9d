"""The machinery every loss shares: the module runner, keys, keyword calls, targets, updaters."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import (
    NormalParamExtractor,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    TensorDictModuleBase,
    TensorDictSequential,
)
from test_algos_objectives_nets import (
    action_values,
    as_keywords,
    continuous_actor,
    deterministic_actor,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    q_critic,
    transitions,
)
from torch import nn

from rlkernel.errors import RLKernelError, SpecError
from rlkernel.specs import Bounded
from rlkernel_algos.modules import Actor
from rlkernel_algos.objectives import (
    DDPGLoss,
    DQNLoss,
    HardUpdate,
    LossKeyError,
    ReturnEstimator,
    SACLoss,
    SoftUpdate,
    TD3Loss,
)
from rlkernel_algos.objectives._runner import ModuleRunner


# ---------------------------------------------------------------------------- module runner
class Doubler(TensorDictModuleBase):
    """A module with its own forward: run through a TensorDict (the runner's fallback)."""

    in_keys, out_keys = ["hidden"], ["doubled"]

    def forward(self, td):
        td.set("doubled", 2 * td.get("hidden"))
        return td


def test_runner_matches_the_tensordict_call_of_a_sequence():
    net = TensorDictSequential(
        TensorDictModule(nn.Linear(3, 4), ["observation"], ["hidden"]),
        Doubler(),
        TensorDictModule(lambda x, y: x + y.sum(-1, keepdim=True), ["doubled", "extra"], ["out"]),
    )
    runner = ModuleRunner(net, "net")
    assert runner.in_keys == ["observation", "extra"]
    td = TensorDict(observation=torch.randn(5, 3), extra=torch.randn(5, 2), batch_size=[5])
    got = runner.outputs(td, batch_shape=td.batch_size)
    want = net(td.clone())
    for key in ("hidden", "doubled", "out"):
        torch.testing.assert_close(got[key], want[key])
    assert "hidden" not in td.keys()  # the input is not written


def test_runner_reads_next_entries_and_overrides_and_kwarg_modules():
    net = TensorDictModule(lambda obs, act: obs.sum(-1, keepdim=True) * act, in_keys={"obs": "observation",
                                                                                     "act": "action"}, out_keys=["q"])
    runner = ModuleRunner(net, "q")
    td = TensorDict(observation=torch.ones(2, 3), action=torch.ones(2, 1),
                    next=TensorDict(observation=2 * torch.ones(2, 3), batch_size=[2]), batch_size=[2])
    assert runner.outputs(td)["q"].tolist() == [[3.0], [3.0]]
    got = runner.outputs(td, nxt=True, overrides={"action": torch.full((2, 1), 0.5)})
    assert got["q"].tolist() == [[3.0], [3.0]]


def test_runner_distribution_equals_get_dist_for_a_probabilistic_actor():
    actor = continuous_actor()
    runner = ModuleRunner(actor, "actor")
    assert runner.probabilistic and runner.in_keys == ["observation"]
    td = TensorDict(observation=torch.randn(4, 3), batch_size=[4])
    mine, theirs = runner.dist(td), actor.get_dist(td.clone())
    torch.testing.assert_close(mine.loc, theirs.loc)
    torch.testing.assert_close(mine.scale, theirs.scale)


def test_runner_applies_the_spec_fit_of_rlkernel_actors():
    spec = Bounded(-0.5, 0.5, shape=(2,))
    actor = Actor(nn.Linear(3, 2), spec=spec, safe=True)
    with torch.no_grad():
        actor.module.weight.fill_(10.0)
    td = TensorDict(observation=torch.ones(4, 3), batch_size=[4])
    got = ModuleRunner(actor, "actor").outputs(td)["action"]
    torch.testing.assert_close(got, actor(td.clone())["action"])
    assert got.max() <= 0.5
    stopped = ModuleRunner(actor, "actor").outputs(td, stop_at="action")["action"]  # waits for the cast
    torch.testing.assert_close(stopped, got)


def test_runner_falls_back_on_tensordict_for_custom_probabilistic_modules():
    class CustomDist(ProbabilisticTensorDictSequential):
        def forward(self, td, *args, **kwargs):  # an overridden forward: not taken apart
            return super().forward(td, *args, **kwargs)

    module = CustomDist(
        TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()), ["observation"], ["loc", "scale"]),
        ProbabilisticTensorDictModule(["loc", "scale"], ["action"], distribution_class=torch.distributions.Normal),
    )
    runner = ModuleRunner(module, "custom")
    td = TensorDict(observation=torch.randn(4, 3), batch_size=[4])
    torch.testing.assert_close(runner.dist(td, batch_shape=td.batch_size).loc, module.get_dist(td.clone()).loc)


def test_runner_rejects_plain_modules_and_reports_missing_inputs():
    with pytest.raises(LossKeyError, match=r"tensordict\.nn module"):
        ModuleRunner(nn.Linear(3, 1), "critic")
    runner = ModuleRunner(action_values(), "qnet")
    with pytest.raises(LossKeyError, match="qnet reads 'observation'"):
        runner.outputs(TensorDict(obs=torch.zeros(2, 3), batch_size=[2]))


# ------------------------------------------------------------------------------------- keys
def test_set_keys_renames_and_rejects_unknown_names():
    loss = DQNLoss(action_values(), action_space="one_hot")
    with pytest.raises(LossKeyError) as info:
        loss.set_keys(rewardd="r")
    message = str(info.value)
    assert "rewardd" in message and "reward" in message and "action_value" in message
    assert isinstance(info.value, RLKernelError) and isinstance(info.value, KeyError)
    with pytest.raises(LossKeyError, match="tuple of strings"):
        loss.set_keys(reward=3)
    loss.set_keys(reward="r", action=("agent", "act"))
    assert loss.tensor_keys.reward == "r"
    assert ("next", "r") in loss.in_keys and ("agent", "act") in loss.in_keys


def test_missing_entry_names_the_key_and_the_rename():
    loss = DQNLoss(action_values(), action_space="one_hot")
    td = transitions(4, discrete=3)
    del td["next", "reward"]
    with pytest.raises(LossKeyError, match=r"\('next', 'reward'\).*set_keys\(reward=") as info:
        loss(td)
    assert "tensor_keys.reward" in str(info.value)


def test_keyword_call_maps_flat_names_and_rejects_unknown_ones():
    loss = SACLoss(continuous_actor(), q_critic(), action_spec=Bounded(-1.0, 1.0, shape=(2,)))
    td = transitions(6)
    words = as_keywords(td)
    torch.manual_seed(3)
    by_td = loss(td.clone())
    torch.manual_seed(3)
    by_words = loss(**words)
    assert by_td.keys() == by_words.keys()
    for key in by_td.keys():
        torch.testing.assert_close(by_td[key], by_words[key])
    # step keys may go without the next_ prefix
    short = {k.removeprefix("next_") if k in ("next_reward", "next_done", "next_terminated") else k: v
             for k, v in words.items()}
    torch.manual_seed(3)
    torch.testing.assert_close(loss(**short)["loss_qvalue"], by_td["loss_qvalue"])
    with pytest.raises(LossKeyError, match=r"unknown keyword 'obs'.*next_observation"):
        loss(obs=td["observation"])
    with pytest.raises(LossKeyError, match="'reward' must be a tensor, got list"):
        loss(**{**short, "reward": [1.0]})
    with pytest.raises(LossKeyError, match="not both"):
        loss(td, reward=td["next", "reward"])
    with pytest.raises(LossKeyError, match="expected a TensorDict"):
        loss({"observation": td["observation"]})


# ----------------------------------------------------------------------------- targets
def test_target_networks_are_buffers_outside_parameters_and_get_no_gradient():
    loss = TD3Loss(deterministic_actor(), q_critic(), action_spec=Bounded(-1.0, 1.0, shape=(2,)))
    params = {id(p) for p in loss.parameters()}
    targets = list(loss.target_parameters())
    assert targets and not any(id(t) in params for t in targets)
    assert not any(t.requires_grad for t in targets)
    assert len(targets) == len(list(loss.actor_network.parameters())) + len(list(loss.qvalue_network.parameters()))
    assert any(k.startswith("target_qvalue_network.") for k in loss.state_dict())
    out = loss(transitions(8))
    (out["loss_actor"] + out["loss_qvalue"]).backward()
    assert all(t.grad is None for t in targets)
    # the twin critics start from different weights
    q0, q1 = (list(q.parameters()) for q in loss.qvalue_network)
    assert not torch.equal(q0[0], q1[0])


def test_soft_update_moves_targets_by_tau_exactly():
    loss = DDPGLoss(deterministic_actor(), q_critic(), delay_actor=True)
    sources, targets = loss.target_pairs()
    with torch.no_grad():
        for s in sources:
            s.add_(1.0)
    before = [t.clone() for t in targets]
    SoftUpdate(loss, tau=0.1).step()
    for s, b, t in zip(sources, before, targets):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * s)
    updater = SoftUpdate(loss, eps=0.75)
    assert updater.tau == pytest.approx(0.25)
    before = [t.clone() for t in targets]
    updater.step()
    for s, b, t in zip(sources, before, targets):
        torch.testing.assert_close(t, 0.75 * b + 0.25 * s)


def test_hard_update_copies_every_interval():
    loss = DQNLoss(action_values(), action_space="one_hot")
    updater = HardUpdate(loss, value_network_update_interval=3)
    sources, targets = loss.target_pairs()
    with torch.no_grad():
        sources[0].add_(1.0)
    updater.step()
    updater.step()
    assert not torch.equal(sources[0], targets[0])
    updater.step()
    assert all(torch.equal(s, t) for s, t in zip(sources, targets))


def test_updaters_follow_the_loss_when_it_moves_and_reject_bad_input():
    loss = DQNLoss(action_values(), action_space="one_hot")
    updater = SoftUpdate(loss, tau=0.5)
    updater.step()
    loss.double()  # buffers are replaced: the updater must re-read them
    sources, targets = loss.target_pairs()
    assert targets[0].dtype == torch.float64
    with torch.no_grad():
        sources[0].fill_(2.0)
        targets[0].fill_(0.0)
    updater.step()
    assert torch.allclose(loss.target_value_network.module[0].weight, torch.ones(()).double())
    with pytest.raises(SpecError, match="no target network"):
        SoftUpdate(DQNLoss(action_values(), action_space="one_hot", delay_value=False), tau=0.1)
    with pytest.raises(SpecError, match="exactly one of tau and eps"):
        SoftUpdate(loss, tau=0.1, eps=0.9)
    with pytest.raises(SpecError, match="tau must be in"):
        SoftUpdate(loss, tau=1.5)
    with pytest.raises(SpecError, match=">= 1"):
        HardUpdate(loss, value_network_update_interval=0)


def test_detached_critic_views_follow_in_place_updates_and_moves():
    loss = DDPGLoss(deterministic_actor(), q_critic())
    view = loss.detached_runners("value_network")[0]
    td = transitions(4)
    with torch.no_grad():
        for p in loss.value_network.parameters():
            p.mul_(2.0)
    torch.testing.assert_close(view.outputs(td)["state_action_value"],
                               loss.value_network(td.clone())["state_action_value"])
    loss.double()
    td64 = td.apply(lambda t: t.double() if t.is_floating_point() else t)
    out = loss(td64)
    assert out["loss_value"].dtype == torch.float64


# ------------------------------------------------------------------------- return estimator
def test_td0_targets_bootstrap_unless_terminated_and_multistep_targets():
    reward = torch.tensor([[1.0], [1.0], [1.0]])
    next_value = torch.tensor([[10.0], [10.0], [10.0]])
    terminated = torch.tensor([[False], [True], [False]])
    done = torch.tensor([[False], [True], [True]])  # the last step is truncated: it still bootstraps
    target = ReturnEstimator(gamma=0.5)(reward, next_value, terminated, done)
    assert target.tolist() == [[6.0], [1.0], [6.0]]
    # TD(1) over a trajectory [B=1, T=3]: 1 + 0.5 * 6 = 4 at t=0 (cut at the terminal step 1)
    td1 = ReturnEstimator("td1", gamma=0.5)(reward.T, next_value.T, terminated.T, done.T)
    assert td1.tolist() == [[1.5, 1.0, 6.0]]
    with pytest.raises(SpecError, match="unknown value type"):
        ReturnEstimator("gae")
    with pytest.raises(SpecError, match="gamma"):
        ReturnEstimator(gamma=1.5)


def test_state_dict_round_trip_keeps_target_networks():
    loss = SACLoss(continuous_actor(), q_critic())
    with torch.no_grad():
        for t in loss.target_parameters():
            t.add_(1.0)
    fresh = SACLoss(continuous_actor(), q_critic())
    fresh.load_state_dict(loss.state_dict())
    for a, b in zip(loss.target_parameters(), fresh.target_parameters()):
        assert torch.equal(a, b)
    assert torch.equal(fresh.log_alpha, loss.log_alpha)


# The registrations for rlkernel_algos/plugin.py (applied there by the plugin's owner).
LOSS_REGISTRATIONS = {
    "ppo": "rlkernel_algos.objectives:ClipPPOLoss",
    "clip_ppo": "rlkernel_algos.objectives:ClipPPOLoss",
    "kl_ppo": "rlkernel_algos.objectives:KLPENPPOLoss",
    "a2c": "rlkernel_algos.objectives:A2CLoss",
    "reinforce": "rlkernel_algos.objectives:ReinforceLoss",
    "dqn": "rlkernel_algos.objectives:DQNLoss",
    "distributional_dqn": "rlkernel_algos.objectives:DistributionalDQNLoss",
    "ddpg": "rlkernel_algos.objectives:DDPGLoss",
    "td3": "rlkernel_algos.objectives:TD3Loss",
    "sac": "rlkernel_algos.objectives:SACLoss",
    "discrete_sac": "rlkernel_algos.objectives:DiscreteSACLoss",
}


def test_loss_registrations_resolve_lazily_to_the_loss_classes():
    import rlkernel_algos.objectives as objectives
    from rlkernel.registries import NamedRegistry

    registry = NamedRegistry("losses")
    for name, target in LOSS_REGISTRATIONS.items():
        registry.register(name, target)
    for name, target in LOSS_REGISTRATIONS.items():
        cls = registry[name]
        assert cls is getattr(objectives, target.split(":")[1])
        assert issubclass(cls, objectives.LossModule)
