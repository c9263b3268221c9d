"""The per-step path of ``GymWrapper`` (``step``, ``reset``, ``step_and_maybe_reset``).

It builds its TensorDicts without the constructor's checks, tries actions with a quick test
before the spec's own, skips ``_complete`` for its own outputs and uses ``EnvBase``'s fast
``step_mdp``: these tests pin down that the results are what gymnasium says and what the
general code paths give.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import rlkernel_gym_testenvs as testenvs
import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.envs import EnvBase
from rlkernel.envs.step import step_mdp
from rlkernel.errors import ActionError, EnvError
from rlkernel.specs import Categorical
from rlkernel_gym import GymEnv
from rlkernel_gym.spaces import Layout

FLAGS = ("done", "terminated", "truncated")
REPO_ROOT = Path(__file__).resolve().parents[3]


def _mdp(env: EnvBase, td: TensorDictBase) -> TensorDictBase:
    return step_mdp(td, reward_keys=env.reward_keys, done_keys=env.done_keys, action_keys=env.action_keys)


def _assert_same(a: TensorDictBase, b: TensorDictBase) -> None:
    """Same type, batch size, device, names, keys in the same order, and the same tensors."""
    assert type(a) is type(b)
    assert (a.batch_size, a.device, a._has_names()) == (b.batch_size, b.device, b._has_names())
    assert list(a.keys(include_nested=True)) == list(b.keys(include_nested=True))
    for key in a.keys(include_nested=True, leaves_only=True):
        assert a.get(key) is b.get(key), key


# ---------------------------------------------------------------------------- values
@pytest.mark.parametrize("check_actions", [True, False])
def test_step_and_maybe_reset_match_plain_gymnasium(check_actions: bool) -> None:
    env = GymEnv("CartPole-v1", check_actions=check_actions, max_episode_steps=15)
    plain = gymnasium.make("CartPole-v1", max_episode_steps=15)
    env.set_seed(3)
    root = env.reset()
    obs, _ = plain.reset(seed=3)
    assert list(root.keys()) == ["observation", "terminated", "truncated", "done"]
    assert torch.equal(root["observation"], torch.from_numpy(obs))
    assert not any(root[flag].item() for flag in FLAGS)
    actions = torch.randint(0, 2, (80,), generator=torch.Generator().manual_seed(0))
    episodes = 0
    for action in actions:
        root.set("action", action)
        td, root = env.step_and_maybe_reset(root)
        obs, reward, terminated, truncated, _ = plain.step(int(action))
        nxt = td["next"]
        assert nxt["observation"].dtype == torch.float32 and nxt["observation"].shape == (4,)
        assert torch.equal(nxt["observation"], torch.from_numpy(obs))
        assert nxt["reward"].dtype == torch.float32 and nxt["reward"].tolist() == [reward]
        assert nxt["terminated"].tolist() == [terminated] and nxt["truncated"].tolist() == [truncated]
        assert nxt["done"].tolist() == [terminated or truncated]
        assert all(nxt[f].dtype == torch.bool and nxt[f].shape == (1,) for f in FLAGS)
        if terminated or truncated:
            episodes += 1
            obs, _ = plain.reset()
            assert not root["done"].item()
        assert torch.equal(root["observation"], torch.from_numpy(obs))
        assert "action" not in root.keys() and "reward" not in root.keys()
    assert episodes >= 2  # both the reset and the carry-on branches ran


def test_returned_tensors_are_never_reused() -> None:
    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    td = env.reset()
    steps = []
    for _ in range(5):
        td = env.rand_step(td)
        steps.append(td["next"].clone())
        kept = td["next"]
        td = _mdp(env, td)
        td = env.rand_step(td)
        for key in kept.keys():  # the next step wrote into new tensors, not into these
            assert torch.equal(kept[key], steps[-1][key]), key
            assert kept[key].data_ptr() != td["next", key].data_ptr(), key
        td = _mdp(env, td)


def test_nested_dict_observations_info_and_discrete_start() -> None:
    env = GymEnv(testenvs.DICT_ID, info_keys=["distance", "steps"])
    env.set_seed(1)
    td = env.reset()
    assert td["steps"].item() == 0  # steps-only info entry: zero after a reset
    td.set("action", torch.tensor(2))  # 0-based: gymnasium gets 1
    td = env.step(td)
    nxt = td["next"]
    assert set(nxt.keys(include_nested=True, leaves_only=True)) >= {
        "position",
        ("sensors", "velocity"),
        ("sensors", "mode"),
        "distance",
        "steps",
        *FLAGS,
        "reward",
    }
    assert nxt["sensors"].batch_size == torch.Size([]) and isinstance(nxt["sensors"], TensorDict)
    assert nxt["sensors", "velocity"].dtype == torch.float64
    assert 0 <= nxt["sensors", "mode"].item() < 3  # 0-based
    assert nxt["steps"].item() == 1


def test_vector_env_step_path_keeps_the_last_observation_and_resets_masked() -> None:
    env = GymEnv("CartPole-v1", num_envs=3, max_episode_steps=4)
    env.set_seed(0)
    root = env.reset()
    for _ in range(4):
        root.set("action", torch.zeros(3, dtype=torch.int64))
        td, root = env.step_and_maybe_reset(root)
    assert td["next", "truncated"].all() and td["next", "done"].shape == (3, 1)
    assert not root["done"].any()
    root.set("action", torch.zeros(3, dtype=torch.int64))
    assert env.step(root)["next", "reward"].shape == (3, 1)


def test_stepping_a_finished_episode_is_still_an_error() -> None:
    env = GymEnv("CartPole-v1", max_episode_steps=1)
    td = env.reset()
    td.set("action", torch.tensor(0))
    env.step(td)
    with pytest.raises(EnvError, match="reset"):
        env.step(td)


# ---------------------------------------------------------------------------- check_action
NAN, INF = float("nan"), float("inf")
CHECK_CASES = [
    # (env id, valid actions, invalid actions)
    (
        "CartPole-v1",
        [torch.tensor(0), torch.tensor(1)],
        [torch.tensor(2), torch.tensor(-1), torch.tensor(1, dtype=torch.int32), torch.tensor([1]), torch.tensor(0.0)],
    ),
    (
        "Pendulum-v1",
        [torch.tensor([2.0]), torch.tensor([-2.0]), torch.tensor([0.5])],
        [
            torch.tensor([2.01]),
            torch.tensor([NAN]),
            torch.tensor([INF]),
            torch.tensor([0.5], dtype=torch.float64),
            torch.tensor(0.5),
        ],
    ),
    (testenvs.TUPLE_ID, [], []),  # MultiDiscrete and MultiBinary leaves: the spec decides
]


@pytest.mark.parametrize(("env_id", "valid", "invalid"), CHECK_CASES)
def test_check_action_agrees_with_the_spec(env_id: str, valid: list, invalid: list) -> None:
    env = GymEnv(env_id)
    for _ in range(20):
        env.check_action(env.rand_action())  # random actions are always accepted
    for action in valid:
        env.check_action(TensorDict({"action": action}, []))
    for action in invalid:
        td = TensorDict({"action": action}, [])
        with pytest.raises(ActionError, match=r"action 'action' does not fit"):
            env.check_action(td)
    with pytest.raises(ActionError, match="missing"):
        env.check_action(TensorDict({}, []))


def test_check_action_follows_a_leaf_spec_replaced_in_place() -> None:
    env = GymEnv("CartPole-v1")
    td = TensorDict({"action": torch.tensor(1)}, [])
    env.check_action(td)
    env.full_action_spec["action"] = Categorical(1)
    with pytest.raises(ActionError, match="outside"):
        env.check_action(td)


def test_check_action_of_a_grad_tensor_goes_through_the_spec() -> None:
    env = GymEnv("Pendulum-v1")
    env.check_action(TensorDict({"action": torch.zeros(1, requires_grad=True)}, []))
    with pytest.raises(ActionError):
        env.check_action(TensorDict({"action": torch.full((1,), 3.0, requires_grad=True)}, []))


# ---------------------------------------------------------------------------- EnvBase pieces
def _stepped_cartpole() -> tuple[GymEnv, TensorDictBase]:
    env = GymEnv("CartPole-v1")
    td = env.reset()
    td.set("action", torch.tensor(1))
    return env, env.step(td)


def test_fast_step_mdp_equals_step_mdp() -> None:
    env, td = _stepped_cartpole()
    _assert_same(env._step_mdp(td), _mdp(env, td))
    td.set("hidden", torch.ones(3))  # a policy's entry: carried over
    td.set("reward", torch.zeros(1))  # a root reward: dropped
    fast = env._step_mdp(td)
    _assert_same(fast, _mdp(env, td))
    assert fast["hidden"] is td["hidden"] and "reward" not in fast.keys()
    td.set(("policy", "state"), torch.ones(2))  # nested root entries: the general path
    _assert_same(env._step_mdp(td), _mdp(env, td))
    named = TensorDict({"obs": torch.zeros(2, 1), "next": {"obs": torch.ones(2, 1)}}, [2], names=["env"])
    vector = GymEnv("CartPole-v1", num_envs=2)
    _assert_same(vector._step_mdp(named), _mdp(vector, named))
    assert vector._step_mdp(named).names == ["env"]


def test_fast_step_mdp_result_is_independent_of_next() -> None:
    env, td = _stepped_cartpole()
    root = env._step_mdp(td)
    root.set("action", torch.tensor(0))
    assert "action" not in td["next"].keys()
    with pytest.raises(EnvError, match="next"):
        env._step_mdp(TensorDict({"observation": torch.zeros(4)}, []))


def test_complete_still_fills_flags_of_other_tensordicts() -> None:
    env, _ = _stepped_cartpole()
    done_only = TensorDict({"observation": torch.zeros(4), "done": torch.ones(1, dtype=torch.bool)}, [])
    out = env._complete(done_only, "_step")
    assert out["terminated"].item() and not out["truncated"].item()
    with pytest.raises(EnvError, match="batch size"):
        env._complete(TensorDict({}, [3]), "_step")
    with pytest.raises(EnvError, match="no done flag"):
        env._complete(TensorDict({"observation": torch.zeros(4)}, []), "_step")


class _DropsTruncated(GymEnv):
    """A subclass whose ``_step`` leaves a flag out: ``EnvBase._complete`` must fill it."""

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        out = super()._step(tensordict)
        del out["truncated"]
        return out


def test_complete_runs_for_a_subclass_that_changes_step() -> None:
    env = _DropsTruncated("CartPole-v1")
    td = env.reset().set("action", torch.tensor(0))
    assert env.step(td)["next", "truncated"].tolist() == [False]


def test_maybe_reset_of_a_single_env_keeps_policy_entries() -> None:
    env, td = _stepped_cartpole()
    root = env._step_mdp(td)
    assert env.maybe_reset(root) is root  # not done: untouched
    root.set("done", torch.ones(1, dtype=torch.bool))
    root.set("hidden", torch.full((2,), 7.0))
    fresh = env.maybe_reset(root)
    assert fresh is not root and not fresh["done"].item() and torch.equal(fresh["hidden"], root["hidden"])
    root.exclude("hidden", inplace=True)
    fresh = env.maybe_reset(root)
    assert list(fresh.keys()) == ["observation", "terminated", "truncated", "done"]


def test_layout_source_equals_tensors_for_nested_spaces() -> None:
    space = gymnasium.spaces.Dict(
        {"a": gymnasium.spaces.Box(-1, 1, (2,)), "b": gymnasium.spaces.Tuple((gymnasium.spaces.Discrete(3, start=2),))}
    )
    layout = Layout(space, None, (), None)
    value = space.sample()
    flat = layout.tensors(value)
    source = layout.source(value, {})
    assert torch.equal(source["a"], flat[("a",)]) and torch.equal(source["b"]["0"], flat[("b", "0")])
    assert 0 <= source["b"]["0"].item() < 3
    single = Layout(gymnasium.spaces.Box(0, 1, (3,), dtype=np.float64), None, (), None)
    obs = np.array([0.1, 0.2, 0.3])
    tensor = single.source(obs, {})["observation"]
    obs[0] = 5.0  # gymnasium may reuse its array: the tensor has its own memory
    assert tensor.tolist() == [0.1, 0.2, 0.3] and tensor.dtype == torch.float64


def test_bench_gym_step_quick_reports_every_scenario() -> None:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    result = importlib.import_module("benchmarks.bench_gym_step").main(["--quick"])
    for name in ("step_checked", "step_unchecked", "step_and_maybe_reset"):
        entry = result[name]
        assert entry["rlkernel_us_per_step"] > 0 and entry["gymnasium_us_per_step"] > 0
        assert entry["ratio"] > 0 and entry["bar_overhead_us"] == 15.0
