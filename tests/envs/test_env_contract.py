"""The step contract of ``EnvBase``, on the core's counting environment and small doubles."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from rlkernel.envs import EnvBase, check_env_specs, step_mdp
from rlkernel.errors import ActionError, EnvError, RLKernelError
from rlkernel.specs import Bounded, Categorical, Composite, Unbounded
from rlkernel.testing import CountingEnv


def ones(*shape: int) -> torch.Tensor:
    return torch.ones(*shape, 1)


class TestStep:
    def test_reset_has_observation_and_false_flags(self) -> None:
        td = CountingEnv().reset()
        assert td["observation"].item() == 0.0
        for key in ("done", "terminated", "truncated"):
            assert td[key].dtype == torch.bool and not td[key].any()

    def test_step_writes_next(self) -> None:
        env = CountingEnv(max_count=2)
        td = env.reset().set("action", ones())
        out = env.step(td)
        assert out is td
        assert out["next", "observation"].item() == 1.0
        assert out["next", "reward"].item() == 1.0
        assert not out["next", "done"].any()
        out = env.step(step_mdp(out).set("action", ones()))
        assert out["next", "terminated"].all() and out["next", "done"].all()
        assert not out["next", "truncated"].any()

    def test_truncation_is_kept_apart(self) -> None:
        env = CountingEnv(max_count=100, max_steps=3)
        roll = env.rollout(10, policy=lambda td: td.set("action", ones()))
        assert roll.batch_size == (3,)
        assert roll["next", "truncated"][-1].all() and not roll["next", "terminated"].any()
        assert roll["next", "done"][-1].all()

    def test_rollout_breaks_or_resets(self) -> None:
        env = CountingEnv(max_count=2)
        policy = lambda td: td.set("action", ones())  # noqa: E731
        assert env.rollout(10, policy).batch_size == (2,)
        long = env.rollout(6, policy, break_when_any_done=False)
        assert long.batch_size == (6,)
        assert long["observation"].flatten().tolist() == [0, 1, 0, 1, 0, 1]
        assert long["next", "done"].flatten().tolist() == [False, True] * 3

    def test_batched_rollout_partial_reset(self) -> None:
        env = CountingEnv(max_count=2, batch_size=(2,))
        steps = iter([torch.tensor([[1.0], [0.5]])] * 8)
        roll = env.rollout(4, lambda td: td.set("action", next(steps)), break_when_any_done=False)
        assert roll.batch_size == (2, 4)
        assert roll["observation"][0].flatten().tolist() == [0, 1, 0, 1]
        assert roll["observation"][1].flatten().tolist() == [0, 0.5, 1.0, 1.5]
        assert roll["next", "done"][1].flatten().tolist() == [False, False, False, True]

    def test_random_rollout_uses_the_action_spec(self) -> None:
        torch.manual_seed(0)
        roll = CountingEnv(max_count=1000).rollout(20)
        assert ((roll["action"] >= 0) & (roll["action"] <= 1)).all()
        assert roll["action"].std() > 0

    def test_set_truncated_marks_the_last_step(self) -> None:
        roll = CountingEnv(max_count=100).rollout(3, set_truncated=True)
        assert roll["next", "truncated"].flatten().tolist() == [False, False, True]
        assert roll["next", "done"][-1].all()

    def test_fake_tensordict_matches_specs(self) -> None:
        fake = CountingEnv(batch_size=(3,)).fake_tensordict()
        assert fake.batch_size == (3,)
        assert fake["next", "reward"].shape == (3, 1) and fake["action"].shape == (3, 1)

    def test_closed_env_refuses_work_and_close_is_idempotent(self) -> None:
        with CountingEnv() as env:
            env.reset()
        env.close()
        with pytest.raises(EnvError, match="closed"):
            env.reset()


class TestActionChecks:
    @pytest.fixture
    def env(self) -> CountingEnv:
        env = CountingEnv(batch_size=(2,))
        env.reset()
        return env

    @pytest.mark.parametrize(
        ("action", "fragment"),
        [
            (torch.ones(2, 2), "its shape is (2, 2), expected (2, 1)"),
            (torch.ones(2, 1, dtype=torch.float64), "float64"),
            (torch.full((2, 1), 1.5), "1.5"),
            (torch.tensor([[0.5], [float("nan")]]), "NaN"),
        ],
    )
    def test_bad_action_is_refused_naming_key_and_spec(self, env, action, fragment) -> None:
        td = TensorDict({"observation": torch.zeros(2, 1), "action": action}, [2])
        with pytest.raises(ActionError) as err:
            env.step(td)
        message = str(err.value)
        assert "'action'" in message and "Bounded" in message and fragment in message
        assert isinstance(err.value, RLKernelError)

    def test_missing_action_key(self, env) -> None:
        td = TensorDict({"observation": torch.zeros(2, 1), "actoin": torch.ones(2, 1)}, [2])
        with pytest.raises(ActionError, match=r"action key 'action' is missing.*actoin"):
            env.step(td)

    def test_checks_can_be_switched_off(self) -> None:
        env = CountingEnv(check_actions=False)
        env.reset()
        td = TensorDict({"action": torch.full((1,), 7.0)}, [])
        assert env.step(td)["next", "observation"].item() == 7.0


class OnlyDoneEnv(EnvBase):
    """Reports only ``done``; the base class must derive the other flags."""

    def __init__(self, report: str = "done") -> None:
        super().__init__()
        self.report = report
        self.observation_spec = Composite(observation=Unbounded(shape=(1,)))
        self.action_spec = Categorical(2, shape=(1,))

    def _reset(self, tensordict):
        return TensorDict({"observation": torch.zeros(1)}, [])

    def _step(self, tensordict):
        out = TensorDict({"observation": torch.ones(1), "reward": torch.ones(1)}, [])
        if self.report:
            out.set(self.report, torch.ones(1, dtype=torch.bool))
        return out

    def _set_seed(self, seed):
        pass


class TestDoneFlags:
    def test_done_only_means_terminated(self) -> None:
        env = OnlyDoneEnv("done")
        out = env.rand_step(env.reset())
        assert out["next", "terminated"].all() and not out["next", "truncated"].any()

    def test_terminated_only_gives_done(self) -> None:
        env = OnlyDoneEnv("terminated")
        out = env.rand_step(env.reset())
        assert out["next", "done"].all()

    def test_no_flag_at_all_is_an_error(self) -> None:
        env = OnlyDoneEnv("")
        with pytest.raises(EnvError, match="returned no done flag"):
            env.rand_step(env.reset())

    def test_wrong_batch_size_is_an_error(self) -> None:
        class Wrong(OnlyDoneEnv):
            def _reset(self, tensordict):
                return TensorDict({"observation": torch.zeros(3, 1)}, [3])

        with pytest.raises(EnvError, match=r"batch size \(3,\), expected \(\)"):
            Wrong().reset()


class TestSpecs:
    def test_spec_views(self) -> None:
        env = CountingEnv(batch_size=(4,))
        assert isinstance(env.action_spec, Bounded) and env.action_spec.shape == (4, 1)
        assert env.action_keys == ["action"]
        assert env.reward_key == "reward"
        assert sorted(env.done_keys) == ["done", "terminated", "truncated"]
        assert env.full_done_spec.shape == (4,)

    def test_spec_with_wrong_batch_shape_is_refused(self) -> None:
        env = CountingEnv(batch_size=(4,))
        with pytest.raises(RLKernelError, match=r"batch shape \(\) but the environment's batch_size is \(4,\)"):
            env.observation_spec = Composite(observation=Unbounded(shape=(1,)))

    def test_set_seed_validates(self) -> None:
        with pytest.raises(EnvError, match="int or None"):
            CountingEnv().set_seed("seven")


class DriftingEnv(OnlyDoneEnv):
    """Breaks its own specs in a configurable way."""

    def __init__(self, fault: str) -> None:
        super().__init__("terminated")
        self.fault = fault
        self.observation_spec = Composite(observation=Bounded(-1.0, 1.0, shape=(1,)))

    def _step(self, tensordict):
        out = super()._step(tensordict)
        out.set("terminated", torch.zeros(1, dtype=torch.bool))
        if self.fault == "dtype":
            out.set("observation", torch.zeros(1, dtype=torch.float64))
        elif self.fault == "bounds":
            out.set("observation", torch.full((1,), 3.0))
        elif self.fault == "extra":
            out.set("velocity", torch.zeros(1))
        elif self.fault == "missing":
            del out["observation"]
        else:
            out.set("observation", torch.zeros(1))
        return out


class TestCheckEnvSpecs:
    def test_counting_env_passes(self) -> None:
        check_env_specs(CountingEnv(max_count=3))
        check_env_specs(CountingEnv(max_count=3, batch_size=(2, 3)))

    def test_a_well_behaved_env_passes(self) -> None:
        check_env_specs(DriftingEnv("none"))

    @pytest.mark.parametrize(
        ("fault", "pattern"),
        [
            (
                "dtype",
                r"\('next', 'observation'\): expected Bounded.*float32.*got a tensor of shape \(1,\) "
                r"and dtype torch.float64",
            ),
            ("bounds", r"\('next', 'observation'\) at step 0 is outside Bounded.*3"),
            ("extra", r"keys no spec declares:? \['velocity'\]"),
            ("missing", r"is missing \('next', 'observation'\); expected a value of Bounded"),
        ],
    )
    def test_each_fault_is_named(self, fault: str, pattern: str) -> None:
        with pytest.raises(EnvError, match=pattern):
            check_env_specs(DriftingEnv(fault))


def test_step_mdp_moves_next_to_root_and_keeps_other_entries() -> None:
    td = TensorDict(
        {
            "observation": torch.zeros(2, 1),
            "action": torch.ones(2, 1),
            "hidden": torch.full((2, 3), 5.0),
            "next": {"observation": torch.ones(2, 1), "reward": torch.ones(2, 1), "done": torch.ones(2, 1).bool()},
        },
        [2],
    )
    out = step_mdp(td)
    assert sorted(out.keys()) == ["done", "hidden", "observation"]
    assert (out["observation"] == 1).all() and (out["hidden"] == 5).all()
    assert sorted(step_mdp(td, keep_other=False).keys()) == ["done", "observation"]
    assert "action" in step_mdp(td, exclude_action=False, keep_other=False).keys()
    with pytest.raises(EnvError, match="no 'next' entry"):
        step_mdp(td.exclude("next"))


def test_break_when_all_done_resets_finished_sub_envs_until_all_finished() -> None:
    env = CountingEnv(max_count=2, batch_size=(2,))
    actions = torch.tensor([[1.0], [0.5]])
    roll = env.rollout(10, lambda td: td.set("action", actions), break_when_any_done=False, break_when_all_done=True)
    assert roll.batch_size == (2, 4)
    assert roll["observation"][0].flatten().tolist() == [0, 1, 0, 1]
    assert roll["next", "done"][1].flatten().tolist() == [False, False, False, True]


def test_partial_reset_never_writes_into_stored_steps() -> None:
    class Nested(CountingEnv):
        def __init__(self) -> None:
            super().__init__(max_count=1, batch_size=(2,))
            self.observation_spec = Composite(
                sensors=Composite(count=Unbounded(shape=(2, 1)), shape=(2,)), shape=(2,)
            )

        def _reset(self, tensordict):
            out = super()._reset(tensordict)
            return TensorDict({"sensors": {"count": out["observation"]}}, [2])

        def _step(self, tensordict):
            out = super()._step(tensordict)
            out["sensors", "count"] = out.pop("observation")
            return out

    env = Nested()
    actions = torch.tensor([[1.0], [0.25]])
    roll = env.rollout(3, lambda td: td.set("action", actions), break_when_any_done=False)
    assert roll["next", "sensors", "count"][0].flatten().tolist() == [1, 1, 1]
    assert roll["next", "sensors", "count"][1].flatten().tolist() == [0.25, 0.5, 0.75]


def test_set_seed_makes_random_rollouts_reproducible_whatever_the_global_rng() -> None:
    env = CountingEnv(max_count=1000)
    env.set_seed(3)
    torch.manual_seed(1)
    first = env.rollout(5)["action"]
    env.set_seed(3)
    torch.manual_seed(2)
    assert torch.equal(env.rollout(5)["action"], first)


def test_set_seed_accepts_integral_numbers_only() -> None:
    import numpy as np

    assert CountingEnv().set_seed(np.int64(4)) == 4
    with pytest.raises(EnvError, match="int or None, got bool"):
        CountingEnv().set_seed(True)


@pytest.mark.parametrize(
    "mask",
    [torch.tensor([[1], [0]]), torch.tensor([[True, False]]), [[True], [False]]],
)
def test_a_malformed_reset_mask_is_named(mask) -> None:
    env = CountingEnv(batch_size=(2,))
    td = env.reset()
    td.set_non_tensor("_reset", mask) if isinstance(mask, list) else None
    if isinstance(mask, torch.Tensor):
        td = TensorDict({"observation": td["observation"]}, [2])
        td._tensordict["_reset"] = mask  # bypass the batch-size check, as a raw dict would
    with pytest.raises(EnvError, match="'_reset' mask must be a bool tensor of shape \\(2, 1\\)"):
        env.reset(td)


def test_set_truncated_leaves_terminated_steps_alone() -> None:
    env = CountingEnv(max_count=2)
    roll = env.rollout(5, lambda td: td.set("action", ones()), set_truncated=True)
    assert roll["next", "terminated"].flatten().tolist() == [False, True]
    assert roll["next", "truncated"].flatten().tolist() == [False, False]
