"""rlkernel.tensor_call with rlkernel-algos' actors: the collectors and the losses compute
through it exactly what the actors' TensorDict call computes (same draws, same values)."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, set_skip_existing
from test_algos_objectives_nets import continuous_actor, discrete_actor, q_critic, state_critic, transitions
from torch import nn

import rlkernel.collectors.policy as policy_module
import rlkernel.tensor_call as tensor_call
from rlkernel.collectors import SyncDataCollector
from rlkernel.collectors.policy import PolicyCaller
from rlkernel.exploration import ExplorationType, set_exploration_type
from rlkernel.specs import Bounded
from rlkernel.tensor_call import MapStep, TensorCall, TensorDictStep, steps_as
from rlkernel_algos.modules import Actor, ProbabilisticActor
from rlkernel_algos.objectives import ClipPPOLoss, SACLoss
from rlkernel_algos.recipes.envs import make_env
from rlkernel_algos.recipes.networks import categorical_actor, tanh_normal_actor

MODES = [None, ExplorationType.RANDOM, ExplorationType.DETERMINISTIC, ExplorationType.MODE]


def _actor(kind: str, env):
    return categorical_actor(env, [16]) if kind == "categorical" else tanh_normal_actor(env, [16])


def _env(kind: str):
    return make_env("testing:cartpole" if kind == "categorical" else "testing:cartpole-continuous", num_envs=3, seed=0)


def _exploring(mode):
    return set_exploration_type(mode) if mode is not None else torch.no_grad()


def _spec_actor() -> Actor:
    actor = Actor(nn.Linear(3, 2), spec=Bounded(-0.5, 0.5, shape=(2,)), safe=True)
    with torch.no_grad():
        actor.module.weight.fill_(10.0)
    return actor


# ---------------------------------------------------------------------- the tensor call
@pytest.mark.parametrize("kind", ["categorical", "tanh_normal"])
@pytest.mark.parametrize("mode", MODES)
def test_the_tensor_call_writes_what_forward_writes(kind, mode):
    env = _env(kind)
    actor = _actor(kind, env)
    call = TensorCall(actor)
    assert call.exact and call.in_keys == ["observation"]
    root = env.reset()
    with torch.no_grad(), _exploring(mode):
        torch.manual_seed(1)
        expected = actor(root.clone())
        torch.manual_seed(1)
        got = call(*(root.get(key) for key in call.in_keys))
    assert set(call.out_keys) == set(expected.keys(True, True)) - set(root.keys(True, True))
    for key, value in zip(call.out_keys, got):
        assert value.dtype == expected.get(key).dtype and torch.equal(value, expected.get(key)), key
    env.close()


def test_the_spec_fit_of_actors_is_a_declared_step():
    actor = _spec_actor()
    call = TensorCall(actor)
    assert call.exact and isinstance(call.steps[-1], MapStep)
    obs = torch.ones(4, 3)
    (got,) = call(obs)
    torch.testing.assert_close(got, actor(TensorDict(observation=obs, batch_size=[4]))["action"])
    assert got.max() <= 0.5


def test_a_subclass_changing_forward_is_called_through_its_tensordict_forward():
    class Doubling(ProbabilisticActor):
        def forward(self, tensordict, *args, **kwargs):
            out = super().forward(tensordict, *args, **kwargs)
            out.set("action", out.get("action") * 2)
            return out

    class DeclaresToo(Doubling):
        def tensor_call_steps(self):
            steps = steps_as(self, ProbabilisticActor)
            return [*steps, MapStep(lambda a: a * 2, ["action"], ["action"])]

    net = TensorDictModule(nn.Linear(3, 2), ["observation"], ["logits"])
    kwargs = {"in_keys": ["logits"], "distribution_class": torch.distributions.Categorical}
    doubling, declared = Doubling(net, **kwargs), DeclaresToo(net, **kwargs)
    doubling_call, declared_call = TensorCall(doubling), TensorCall(declared)
    assert not doubling_call.exact and isinstance(doubling_call.steps[0], TensorDictStep)
    assert declared_call.exact
    td = TensorDict(observation=torch.randn(5, 3), batch_size=[5])
    for module, call in ((doubling, doubling_call), (declared, declared_call)):
        with set_exploration_type(ExplorationType.RANDOM):
            torch.manual_seed(4)
            want = module(td.clone())["action"]
            torch.manual_seed(4)
            got = call(td["observation"], batch_size=td.batch_size)[call.out_keys.index("action")]
        assert torch.equal(got, want)


def test_actors_whose_forward_writes_something_else_are_not_taken_apart():
    env = _env("categorical")
    net = TensorDictModule(nn.Linear(4, 2), ["observation"], ["logits"])
    with_samples = ProbabilisticActor(net, in_keys=["logits"], distribution_class=torch.distributions.Categorical,
                                      num_samples=2)
    hooked = _actor("categorical", env)
    hooked.register_forward_hook(lambda *args: None)
    selected = _actor("categorical", env)
    selected.select_out_keys("action")  # forward writes only the action
    writes_action = ProbabilisticActor(
        TensorDictModule(nn.Linear(4, 2), ["observation"], ["action"]),  # the parameter net writes the action
        in_keys={"logits": "action"}, out_keys=["action"], distribution_class=torch.distributions.Categorical,
    )
    for module in (with_samples, hooked, selected, writes_action):
        assert not TensorCall(module).exact, module
    for module in (hooked, selected, writes_action):
        assert PolicyCaller(module, torch.device("cpu"), None).fast is None
    compiled = torch.compile(_actor("categorical", env))  # the wrapper must not lend the inner fast path
    assert PolicyCaller(compiled, torch.device("cpu"), None).fast is None
    env.close()


def test_deterministic_exploration_does_not_draw():
    env = _env("categorical")
    call = TensorCall(_actor("categorical", env))
    obs = torch.randn(64, 4)
    action = call.out_keys.index("action")
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        state = torch.random.get_rng_state()
        first = call(obs)[action]
        assert torch.equal(first, call(obs)[action]) and torch.equal(state, torch.random.get_rng_state())
    env.close()


# -------------------------------------------------------------------------- collectors
@pytest.mark.parametrize("kind", ["categorical", "tanh_normal"])
@pytest.mark.parametrize("mode", [ExplorationType.RANDOM, ExplorationType.DETERMINISTIC])
def test_a_collector_collects_the_same_batches_through_the_tensor_call(kind, mode, monkeypatch):
    batches = []
    for fast in (True, False):
        env = _env(kind)
        torch.manual_seed(0)
        actor = _actor(kind, env)
        if not fast:
            monkeypatch.setattr(policy_module, "_tensor_call", lambda policy: None)
        collector = SyncDataCollector(
            env, actor, frames_per_batch=60, total_frames=120, seed=3, exploration_type=mode
        )
        assert (collector._policy.fast is not None) == fast
        torch.manual_seed(5)
        batches.append(list(collector))
        collector.shutdown()
        monkeypatch.undo()
    for a, b in zip(*batches, strict=True):
        assert set(a.keys(True, True)) == set(b.keys(True, True)) and (a == b).all()


def test_skip_existing_falls_back_to_forward():
    env = _env("categorical")
    actor = _actor("categorical", env)
    caller = PolicyCaller(actor, torch.device("cpu"), None)
    assert caller.fast is not None
    root = env.reset()
    root.update({"action": torch.full((3,), 7), "logits": torch.zeros(3, 2), "action_log_prob": torch.ones(3)})
    expected = root.clone()
    with torch.no_grad(), set_skip_existing(True):
        caller(root)
        actor(expected)
    assert (root == expected).all() and (root["action"] == 7).all()  # forward kept the existing entries
    env.close()


class _DictNet(nn.Module):
    def forward(self, obs):
        return {"logits": obs[..., :2] * 3.0}


def test_a_parameter_net_returning_a_mapping_gives_what_forward_gives():
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


# ------------------------------------------------------------------------------ losses
def _through_tensordict(monkeypatch):
    """Make every module a TensorDictStep: the losses then call the modules' TensorDict forward."""
    monkeypatch.setattr(tensor_call, "module_steps", lambda module: [TensorDictStep(module)])


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("mode", [ExplorationType.RANDOM, ExplorationType.DETERMINISTIC])
def test_a_loss_gives_the_same_values_through_the_tensor_call_and_the_tensordict_call(discrete, mode, monkeypatch):
    results = []
    for through_tensordict in (False, True):
        if through_tensordict:
            _through_tensordict(monkeypatch)
        torch.manual_seed(0)
        actor = discrete_actor() if discrete else continuous_actor()
        batch = transitions(16, discrete=3 if discrete else None)
        if discrete:
            loss = ClipPPOLoss(actor, state_critic())
            with torch.no_grad():
                batch.update(actor(batch.select("observation").clone()).select("action_log_prob", "logits"))
        else:
            loss = SACLoss(actor, q_critic())
        assert all(isinstance(s, TensorDictStep) for s in loss._actor.steps) == through_tensordict
        torch.manual_seed(7)
        with set_exploration_type(mode):
            out = loss(batch.clone())
        results.append(out)
        monkeypatch.undo()
    fast, slow = results
    assert set(fast.keys()) == set(slow.keys())
    for key in fast.keys():
        torch.testing.assert_close(fast[key], slow[key], msg=key)


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("mode", [ExplorationType.RANDOM, ExplorationType.DETERMINISTIC])
def test_the_loss_runner_computes_what_the_actor_writes(discrete, mode):
    from rlkernel_algos.objectives._runner import ModuleRunner

    actor = discrete_actor() if discrete else continuous_actor()
    runner = ModuleRunner(actor, "actor")
    td = transitions(8, discrete=3 if discrete else None).select("observation")
    with torch.no_grad(), set_exploration_type(mode):
        torch.manual_seed(3)
        want = actor(td.clone())
        torch.manual_seed(3)
        got = runner.outputs(td, batch_shape=td.batch_size)
    for key in set(want.keys(True, True)) - {"observation"}:
        assert torch.equal(got[key], want[key]), key
