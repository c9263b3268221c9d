"""SerialEnv: batching in process, and the parts it shares with ParallelEnv (layout, checks)."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from rlkernel.envs import check_env_specs, step_mdp
from rlkernel.envs.batched import SerialEnv
from rlkernel.envs.batched.layout import BufferLayout
from rlkernel.envs.batched.subspecs import SubEnvSpecs
from rlkernel.errors import ActionError, EnvError, SpecError
from rlkernel.specs import Composite, Unbounded
from rlkernel.testing import CountingEnv


class OddOutputEnv(CountingEnv):
    """A CountingEnv whose step output breaks its specs in the way ``mode`` says."""

    def __init__(self, mode: str = "", obs_dim: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        if obs_dim != 1:
            self.observation_spec = Composite(observation=Unbounded(shape=(obs_dim,)))

    def _step(self, tensordict):
        out = super()._step(tensordict)
        if self.mode == "dtype":
            out.set("observation", out.get("observation").double())
        elif self.mode == "shape":
            out.set("observation", torch.zeros(3))
        elif self.mode == "missing":
            out.del_("observation")
        elif self.mode == "extra":
            out.set("secret", torch.ones(2))
        elif self.mode == "raise":
            raise KeyError("no such thing")
        return out


def actions(*shape: int, value: float = 1.0) -> torch.Tensor:
    return torch.full((*shape, 1), value)


class TestConstruction:
    def test_batch_size_and_specs_are_expanded(self) -> None:
        env = SerialEnv(3, CountingEnv, {"max_count": 4})
        single = CountingEnv(max_count=4)
        assert env.batch_size == torch.Size([3])
        assert env.full_observation_spec == single.full_observation_spec.expand(3)
        assert env.full_action_spec == single.full_action_spec.expand(3)
        assert env.full_done_spec == single.full_done_spec.expand(3)
        assert env.full_reward_spec == single.full_reward_spec.expand(3)

    def test_batched_sub_envs_add_a_leading_dim(self) -> None:
        env = SerialEnv(2, CountingEnv, {"batch_size": (3,)})
        assert env.batch_size == torch.Size([2, 3])
        assert env.action_spec.shape == torch.Size([2, 3, 1])
        check_env_specs(env)

    def test_check_env_specs_passes(self) -> None:
        check_env_specs(SerialEnv(2, CountingEnv, {"max_count": 2}), num_steps=5)

    def test_one_factory_per_worker(self) -> None:
        env = SerialEnv(2, [lambda: CountingEnv(max_count=1), lambda: CountingEnv(max_count=9)])
        assert [e.max_count for e in env.envs] == [1.0, 9.0]

    def test_kwargs_per_worker(self) -> None:
        env = SerialEnv(2, CountingEnv, [{"max_count": 1}, {"max_count": 2}])
        assert [e.max_count for e in env.envs] == [1.0, 2.0]

    @pytest.mark.parametrize(
        ("args", "match"),
        [
            ((0, CountingEnv), "num_workers"),
            ((True, CountingEnv), "num_workers"),
            ((2, "CountingEnv"), "create_env_fn"),
            ((2, [CountingEnv]), "1 create_env_fn given for 2 workers"),
            ((2, CountingEnv, [{}]), "1 create_env_kwargs given for 2 workers"),
            ((2, CountingEnv, 3), "create_env_kwargs"),
        ],
    )
    def test_bad_arguments_are_named(self, args, match) -> None:
        with pytest.raises(EnvError, match=match):
            SerialEnv(*args)

    def test_factory_must_return_an_env(self) -> None:
        with pytest.raises(EnvError, match="must return an rlkernel EnvBase"):
            SerialEnv(2, lambda: object())

    def test_workers_with_different_specs_are_refused(self) -> None:
        with pytest.raises(SpecError, match=r"worker 1 .*observation spec differs at key 'observation'"):
            SerialEnv(2, OddOutputEnv, [{}, {"obs_dim": 2}])

    def test_workers_with_different_batch_sizes_are_refused(self) -> None:
        with pytest.raises(SpecError, match=r"worker 1 .*different batch sizes"):
            SerialEnv(2, CountingEnv, [{}, {"batch_size": (2,)}])


class TestStepping:
    def test_matches_independent_envs(self) -> None:
        env = SerialEnv(3, CountingEnv, {"max_count": 3})
        singles = [CountingEnv(max_count=3) for _ in range(3)]
        gen = torch.Generator().manual_seed(0)
        acts = torch.rand(6, 3, 1, generator=gen)
        steps = iter(acts)
        roll = env.rollout(6, policy=lambda td: td.set("action", next(steps)), break_when_any_done=False)
        for i, single in enumerate(singles):
            own = iter(acts[:, i])
            ref = single.rollout(6, policy=lambda td, own=own: td.set("action", next(own)), break_when_any_done=False)
            assert (roll[i] == ref).all()

    def test_step_returns_tensors_the_caller_owns(self) -> None:
        env = SerialEnv(2, CountingEnv, {"max_count": 10})
        first = env.step(env.reset().set("action", actions(2)))
        kept = first["next", "observation"].clone()
        env.step(step_mdp(first).set("action", actions(2)))
        assert torch.equal(first["next", "observation"], kept)

    def test_partial_reset_only_resets_selected(self) -> None:
        env = SerialEnv(3, CountingEnv, {"max_count": 10})
        td = env.reset().set("action", actions(3))
        td = step_mdp(env.step(td))
        td.set("_reset", torch.tensor([[True], [False], [True]]))
        out = env.reset(td)
        assert out["observation"].flatten().tolist() == [0.0, 1.0, 0.0]
        assert [e.count.item() for e in env.envs] == [0.0, 1.0, 0.0]

    def test_partial_reset_of_batched_sub_envs(self) -> None:
        env = SerialEnv(2, CountingEnv, {"max_count": 10, "batch_size": (2,)})
        td = step_mdp(env.step(env.reset().set("action", actions(2, 2))))
        td.set("_reset", torch.tensor([[[False], [True]], [[False], [False]]]))
        out = env.reset(td)
        assert out["observation"].flatten().tolist() == [1.0, 0.0, 1.0, 1.0]

    def test_step_and_maybe_reset_resets_done_workers(self) -> None:
        env = SerialEnv(2, CountingEnv, [{"max_count": 1}, {"max_count": 5}])
        td = env.reset().set("action", actions(2))
        stepped, root = env.step_and_maybe_reset(td)
        assert stepped["next", "done"].flatten().tolist() == [True, False]
        assert root["observation"].flatten().tolist() == [0.0, 1.0]

    def test_rollout_stops_at_first_done_or_continues(self) -> None:
        env = SerialEnv(2, CountingEnv, [{"max_count": 2}, {"max_count": 5}])
        ones = lambda td: td.set("action", actions(2))  # noqa: E731
        assert env.rollout(10, policy=ones).batch_size == torch.Size([2, 2])
        roll = env.rollout(10, policy=ones, break_when_any_done=False)
        assert roll.batch_size == torch.Size([2, 10])
        assert roll["next", "done"][0].sum() == 5

    def test_seeds_are_spread_over_workers(self) -> None:
        env = SerialEnv(3, CountingEnv)
        assert env.set_seed(7) == 10
        assert [e.seed for e in env.envs] == [7, 8, 9]
        assert env.set_seed(None) is None

    def test_seed_makes_random_rollouts_reproducible(self) -> None:
        env = SerialEnv(2, CountingEnv, {"max_count": 100})
        env.set_seed(3)
        first = env.rollout(4, break_when_any_done=False)
        env.set_seed(3)
        assert torch.equal(env.rollout(4, break_when_any_done=False)["action"], first["action"])

    def test_seeds_of_batched_sub_envs_do_not_overlap(self) -> None:
        env = SerialEnv(2, CountingEnv, {"batch_size": (4,)})
        assert env.set_seed(0) == 8
        assert [e.seed for e in env.envs] == [0, 4]

    def test_bad_seed_is_refused(self) -> None:
        with pytest.raises(EnvError, match="set_seed expects an int"):
            SerialEnv(2, CountingEnv).set_seed(1.5)


class TestBadInput:
    def test_action_outside_spec(self) -> None:
        env = SerialEnv(2, CountingEnv)
        with pytest.raises(ActionError, match="action"):
            env.step(env.reset().set("action", actions(2, value=3.0)))

    @pytest.mark.parametrize("check_actions", [True, False])
    def test_action_of_wrong_shape_or_dtype(self, check_actions: bool) -> None:
        env = SerialEnv(2, CountingEnv, {"max_count": 10}, check_actions=check_actions)
        td = env.reset()
        with pytest.raises(ActionError, match="action"):
            env.step(td.set("action", torch.ones(2)))
        with pytest.raises(ActionError, match="float64"):
            env.step(td.set("action", torch.ones(2, 1, dtype=torch.float64)))
        assert [e.count.item() for e in env.envs] == [0.0, 0.0]  # nothing was stepped

    def test_missing_action(self) -> None:
        env = SerialEnv(2, CountingEnv, check_actions=False)
        with pytest.raises(ActionError, match="missing"):
            env.step(env.reset())

    def test_bad_reset_mask(self) -> None:
        env = SerialEnv(2, CountingEnv)
        with pytest.raises(EnvError, match=r"'_reset'.* must be a bool tensor of shape .*float32"):
            env.reset(TensorDict({"_reset": torch.ones(2, 1)}, [2]))


class TestOutputChecks:
    @pytest.mark.parametrize(
        ("mode", "match"),
        [
            ("dtype", r"'observation' does not fit its spec: expected Unbounded\(.*float32.*got .*float64"),
            ("shape", r"'observation' does not fit its spec: .*shape \(3,\)"),
            ("missing", r"is missing 'observation'"),
            ("extra", r"keys no spec declares: 'secret'"),
        ],
    )
    def test_mismatch_names_the_key(self, mode: str, match: str) -> None:
        env = SerialEnv(2, OddOutputEnv, [{}, {"mode": mode}])
        td = env.reset().set("action", actions(2))
        with pytest.raises(EnvError, match=match):
            env.step(td)

    def test_sub_env_exception_propagates_with_its_index(self) -> None:
        env = SerialEnv(2, OddOutputEnv, [{}, {"mode": "raise"}])
        with pytest.raises(KeyError, match="no such thing") as info:
            env.step(env.reset().set("action", actions(2)))
        assert "sub-environment 1" in "".join(getattr(info.value, "__notes__", []))


class TestLifeCycle:
    def test_closed_env_refuses_calls(self) -> None:
        env = SerialEnv(2, CountingEnv)
        env.close()
        env.close()
        for call in (env.reset, lambda: env.set_seed(0), lambda: env.rollout(2)):
            with pytest.raises(EnvError, match="closed"):
                call()

    def test_context_manager_closes(self) -> None:
        with SerialEnv(2, CountingEnv) as env:
            env.rollout(2)
        assert env.is_closed


class TestLayout:
    def test_worker_blocks_are_aligned_and_disjoint(self) -> None:
        specs = SubEnvSpecs.of(CountingEnv(batch_size=(3,)))
        layout = BufferLayout(4, specs)
        assert layout.block_nbytes % 64 == 0
        flat = layout.allocate(shared=False)
        for i in range(4):
            for _key, view in layout.worker_views(flat, i, "next"):
                view.fill_(i + 1) if view.dtype != torch.bool else view.fill_(True)
        for key, view in layout.batched_views(flat, "next"):
            if view.dtype != torch.bool:
                assert view.reshape(4, -1)[:, 0].tolist() == [1, 2, 3, 4], key

    def test_slots_hold_the_declared_keys(self) -> None:
        layout = BufferLayout(2, SubEnvSpecs.of(CountingEnv()))
        assert [e.key for e in layout.slot("input")] == ["action"]
        assert {e.key for e in layout.slot("next")} == {"observation", "reward", "done", "terminated", "truncated"}
        assert {e.key for e in layout.slot("root")} == {"observation", "done", "terminated", "truncated"}
        assert layout.slot("reset") == []


class NestedEnv(CountingEnv):
    """A CountingEnv whose observation and reward live under an ``"agents"`` group."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.observation_spec = Composite(agents=Composite(observation=Unbounded(shape=(1,))))
        self.reward_spec = Composite(agents=Composite(reward=Unbounded(shape=(1,))))

    def _reset(self, tensordict):
        out = super()._reset(tensordict)
        return TensorDict({"agents": {"observation": out["observation"]}}, [])

    def _step(self, tensordict):
        out = super()._step(tensordict)
        nested = {"observation": out.pop("observation"), "reward": out.pop("reward")}
        out.set("agents", TensorDict(nested, []))
        return out


class StatefulEnv(CountingEnv):
    """Reads a state ``"offset"`` with the action; returns it from a step when ``echo``."""

    def __init__(self, echo: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.echo = echo
        self.state_spec = Composite(offset=Unbounded(shape=(1,)))

    def _reset(self, tensordict):
        return super()._reset(tensordict).set("offset", torch.zeros(1))

    def _step(self, tensordict):
        out = super()._step(tensordict)
        out.set("observation", out["observation"] + tensordict["offset"])
        if self.echo:
            out.set("offset", tensordict["offset"] + 1)
        return out


class InputMutatingEnv(CountingEnv):
    """Overwrites the action in the TensorDict it is given and adds a key to it."""

    def _step(self, tensordict):
        out = super()._step(tensordict)
        tensordict.set("action", torch.zeros_like(tensordict["action"]))
        tensordict.set("scratch", torch.ones(1))
        return out


class TestKeyLayouts:
    def test_an_env_that_changes_its_input_gets_a_clean_one_next_step(self) -> None:
        env = SerialEnv(2, InputMutatingEnv, {"max_count": 10})
        td = env.step(env.reset().set("action", actions(2)))
        td = env.step(step_mdp(td).set("action", actions(2, value=0.5)))
        assert td["next", "observation"].flatten().tolist() == [1.5, 1.5]
        assert "scratch" not in td.keys()

    def test_root_of_step_and_maybe_reset_equals_step_mdp(self) -> None:
        env = SerialEnv(2, CountingEnv, {"max_count": 10})
        td = env.reset().set("action", actions(2)).set("memory", torch.arange(2.0))
        expected = step_mdp(env.step(td.clone()), reward_keys=env.reward_keys, action_keys=env.action_keys)
        env.reset()
        _, root = env.step_and_maybe_reset(td)
        assert set(root.keys()) == set(expected.keys()) == {"observation", "done", "terminated", "truncated", "memory"}
        assert (root == expected).all()

    def test_nested_keys(self) -> None:
        env = SerialEnv(2, NestedEnv, [{"max_count": 1}, {"max_count": 3}])
        check_env_specs(env)
        td = env.reset().set("action", actions(2)).set(("agents", "memory"), torch.ones(2, 1))
        td, root = env.step_and_maybe_reset(td)
        assert td["next", "agents", "reward"].flatten().tolist() == [1.0, 1.0]
        assert root["agents", "observation"].flatten().tolist() == [0.0, 1.0]
        assert ("agents", "memory") in root.keys(include_nested=True)

    def test_states_go_in_and_come_back(self) -> None:
        env = SerialEnv(2, StatefulEnv, {"max_count": 10})
        check_env_specs(env)
        td = env.reset().set("action", actions(2))
        td.set("offset", torch.tensor([[0.0], [5.0]]))
        out = env.step(td)
        assert out["next", "observation"].flatten().tolist() == [1.0, 6.0]
        assert out["next", "offset"].flatten().tolist() == [1.0, 6.0]

    def test_states_a_step_does_not_return_are_left_out(self) -> None:
        env = SerialEnv(2, StatefulEnv, {"echo": False})
        out = env.step(env.reset().set("action", actions(2)))
        assert "offset" not in out["next"].keys()

    def test_states_some_workers_return_are_an_error(self) -> None:
        env = SerialEnv(2, StatefulEnv, [{"echo": True}, {"echo": False}])
        with pytest.raises(EnvError, match=r"state 'offset' came back from the step of sub-environments \[0\]"):
            env.step(env.reset().set("action", actions(2)))

    def test_missing_state_input(self) -> None:
        env = SerialEnv(2, StatefulEnv)
        with pytest.raises(EnvError, match="state 'offset'"):
            env.step(env.reset().exclude("offset").set("action", actions(2)))
