"""ProbabilisticActor.collector_tensor_call: the collectors' fast path writes what forward() writes."""

from __future__ import annotations

import pytest
import torch
from tensordict.nn import TensorDictModule, set_skip_existing
from torch import nn

from rlkernel.collectors import SyncDataCollector
from rlkernel.collectors.policy import PolicyCaller
from rlkernel.exploration import ExplorationType, set_exploration_type
from rlkernel_algos.modules import ProbabilisticActor
from rlkernel_algos.recipes.envs import make_env
from rlkernel_algos.recipes.networks import categorical_actor, tanh_normal_actor


def _actor(kind: str, env):
    return categorical_actor(env, [16]) if kind == "categorical" else tanh_normal_actor(env, [16])


def _env(kind: str):
    return make_env("gym:CartPole-v1" if kind == "categorical" else "gym:Pendulum-v1", num_envs=3, seed=0)


@pytest.mark.parametrize("kind", ["categorical", "tanh_normal"])
@pytest.mark.parametrize("mode", [None, ExplorationType.RANDOM, ExplorationType.DETERMINISTIC, ExplorationType.MODE])
def test_fast_path_writes_what_forward_writes(kind, mode):
    env = _env(kind)
    actor = _actor(kind, env)
    fn, in_keys, out_keys = actor.collector_tensor_call()
    root = env.reset()
    with torch.no_grad(), set_exploration_type(mode) if mode is not None else torch.no_grad():
        torch.manual_seed(1)
        expected = actor(root.clone())
        torch.manual_seed(1)
        got = fn(*(root.get(key) for key in in_keys))
    assert len(got) == len(out_keys) == len(set(expected.keys(True, True)) - set(root.keys(True, True)))
    for key, value in zip(out_keys, got):
        assert value.dtype == expected.get(key).dtype and torch.equal(value, expected.get(key)), key
    env.close()


@pytest.mark.parametrize("kind", ["categorical", "tanh_normal"])
def test_a_collector_with_the_fast_path_collects_the_same_batches(kind, monkeypatch):
    batches = []
    for fast in (True, False):
        env = _env(kind)
        torch.manual_seed(0)
        actor = _actor(kind, env)
        if not fast:
            monkeypatch.setattr(ProbabilisticActor, "collector_tensor_call", lambda self: None)
        collector = SyncDataCollector(env, actor, frames_per_batch=60, total_frames=120, seed=3)
        assert (collector._policy.fast is not None) == fast
        torch.manual_seed(5)
        batches.append(list(collector))
        collector.shutdown()
        monkeypatch.undo()
    for a, b in zip(*batches, strict=True):
        assert set(a.keys(True, True)) == set(b.keys(True, True)) and (a == b).all()


def test_no_fast_path_for_unusual_actors():
    env = _env("categorical")
    net = TensorDictModule(nn.Linear(4, 2), ["observation"], ["logits"])
    with_samples = ProbabilisticActor(net, in_keys=["logits"], distribution_class=torch.distributions.Categorical,
                                      num_samples=2)
    assert with_samples.collector_tensor_call() is None
    hooked = _actor("categorical", env)
    hooked.register_forward_hook(lambda *args: None)
    assert hooked.collector_tensor_call() is None
    env.close()


def test_skip_existing_falls_back_to_forward():
    env = _env("categorical")
    actor = _actor("categorical", env)
    fn, in_keys, _ = actor.collector_tensor_call()
    caller = PolicyCaller(actor, torch.device("cpu"), None)
    root = env.reset()
    root.update({"action": torch.full((3,), 7), "logits": torch.zeros(3, 2), "action_log_prob": torch.ones(3)})
    expected = root.clone()
    with torch.no_grad(), set_skip_existing(True):
        assert fn(*(root.get(key) for key in in_keys)) is NotImplemented
        caller(root)
        actor(expected)
    assert (root == expected).all() and (root["action"] == 7).all()  # forward kept the existing entries
    env.close()


def test_deterministic_fast_path_does_not_draw():
    env = _env("categorical")
    actor = _actor("categorical", env)
    fn, _, _ = actor.collector_tensor_call()
    obs = torch.randn(64, 4)
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        first = fn(obs)[1]
        assert torch.equal(first, fn(obs)[1])  # deterministic: no draw
    env.close()


class _DictNet(nn.Module):
    def forward(self, obs):
        return {"logits": obs[..., :2] * 3.0}


def test_the_fast_path_steps_aside_where_forward_writes_something_else():
    from rlkernel.collectors.policy import _fast_module

    env = _env("categorical")
    selected = _actor("categorical", env)
    selected.select_out_keys("action")  # forward writes only the action
    assert selected.collector_tensor_call() is None
    writes_action = ProbabilisticActor(
        TensorDictModule(nn.Linear(4, 2), ["observation"], ["action"]),  # the parameter net writes the action
        in_keys={"logits": "action"}, out_keys=["action"], distribution_class=torch.distributions.Categorical,
    )
    assert writes_action.collector_tensor_call() is None
    compiled = torch.compile(_actor("categorical", env))  # the wrapper must not lend the inner fast path
    assert _fast_module(compiled) is None
    env.close()


def test_a_parameter_net_returning_a_mapping_falls_back_to_forward():
    env = _env("categorical")
    actor = ProbabilisticActor(TensorDictModule(_DictNet(), ["observation"], ["logits"]), in_keys=["logits"],
                               distribution_class=torch.distributions.Categorical, return_log_prob=True)
    caller = PolicyCaller(actor, torch.device("cpu"), None)
    assert caller.fast is not None
    root = env.reset()
    expected = root.clone()
    with torch.no_grad():
        torch.manual_seed(2)
        caller(root)
        torch.manual_seed(2)
        actor(expected)
    assert set(root.keys(True, True)) == set(expected.keys(True, True)) and (root == expected).all()
    env.close()
