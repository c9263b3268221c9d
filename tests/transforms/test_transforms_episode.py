"""StepCounter, RewardSum and InitTracker: exact values across resets, batched partial
resets, truncation, trajectories outside an env and the core's cart-pole (``rlkernel.testing``)."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from rlkernel.envs import check_env_specs
from rlkernel.specs import Bounded, Categorical, Unbounded
from rlkernel.testing import CartPoleEnv, CountingEnv
from rlkernel.transforms import (
    Compose,
    InitTracker,
    RewardSum,
    StepCounter,
    TransformedEnv,
    TransformError,
    TransformKeyError,
)


def const(value: float):
    def policy(td: TensorDict) -> TensorDict:
        return td.set("action", torch.full((*td.batch_size, 1), value))

    return policy


class TestStepCounter:
    def test_counts_and_restarts_after_reset(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=2), StepCounter())
        roll = env.rollout(7, const(1.0), break_when_any_done=False)
        assert roll["step_count"].flatten().tolist() == [0, 1, 0, 1, 0, 1, 0]
        assert roll["next", "step_count"].flatten().tolist() == [1, 2, 1, 2, 1, 2, 1]
        assert env.observation_spec["step_count"] == Unbounded(shape=(1,), dtype=torch.int64)
        check_env_specs(env)

    def test_max_steps_truncates_and_sets_done(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=100), StepCounter(max_steps=3))
        roll = env.rollout(7, const(1.0), break_when_any_done=False)
        assert roll["next", "truncated"].flatten().tolist() == [False, False, True] * 2 + [False]
        assert roll["next", "done"].flatten().tolist() == [False, False, True] * 2 + [False]
        assert not roll["next", "terminated"].any()
        assert roll["next", "observation"].flatten().tolist() == [1, 2, 3, 1, 2, 3, 1]
        assert env.observation_spec["step_count"] == Bounded(0, 3, shape=(1,), dtype=torch.int64)
        check_env_specs(env)

    def test_batched_partial_reset_keeps_other_counts(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=100, batch_size=(3,)), StepCounter(max_steps=4))
        td = env.reset()
        for _ in range(2):
            td = env.step(const(1.0)(td))
            td = td["next"].exclude("reward")
        td.set("_reset", torch.tensor([[False], [True], [False]]))
        out = env.reset(td)
        assert out["step_count"].flatten().tolist() == [2, 0, 2]
        assert out["observation"].flatten().tolist() == [2.0, 0.0, 2.0]
        check_env_specs(env)

    def test_unbatched_reset_with_false_mask_keeps_state(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=100), Compose(StepCounter(), RewardSum(), InitTracker()))
        td = env.step(const(1.0)(env.reset()))["next"].exclude("reward")
        out = env.reset(td.set("_reset", torch.tensor([False])))
        assert out["step_count"].item() == 1 and out["episode_reward"].item() == 1.0
        assert not out["is_init"].any() and out["observation"].item() == 1.0

    def test_truncation_with_batched_env_through_step_and_maybe_reset(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=100, batch_size=(2,)), StepCounter(max_steps=2))
        roll = env.rollout(5, const(1.0), break_when_any_done=False)
        assert roll["next", "step_count"][..., 0].tolist() == [[1, 2, 1, 2, 1]] * 2
        assert roll["next", "truncated"][..., 0].tolist() == [[False, True, False, True, False]] * 2

    def test_forward_recounts_a_trajectory(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=3, batch_size=(2,)), StepCounter(max_steps=5))
        roll = env.rollout(9, const(1.0), break_when_any_done=False)
        expected_root, expected_next = roll["step_count"].clone(), roll["next", "step_count"].clone()
        stripped = roll.exclude("step_count", ("next", "step_count"))
        out = StepCounter(max_steps=5)(stripped)
        assert torch.equal(out["step_count"], expected_root)
        assert torch.equal(out["next", "step_count"], expected_next)

    def test_forward_continues_a_count_that_started_before_the_slice(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=100), StepCounter())
        roll = env.rollout(6, const(1.0))
        out = StepCounter()(roll[2:].exclude(("next", "step_count")))
        assert out["next", "step_count"].flatten().tolist() == [3, 4, 5, 6]

    def test_bad_arguments_and_missing_count(self) -> None:
        with pytest.raises(TransformError, match="max_steps"):
            StepCounter(max_steps=0)
        env = TransformedEnv(CountingEnv(), StepCounter())
        with pytest.raises(TransformKeyError, match=r"'step_count'.*reset\(\)"):
            env.step(TensorDict({"action": torch.ones(1)}, []))

    def test_cartpole_episode_counts_and_truncation(self) -> None:
        env = TransformedEnv(CartPoleEnv(), StepCounter(max_steps=10))
        env.set_seed(0)
        roll = env.rollout(40, break_when_any_done=False)
        counts = roll["next", "step_count"].flatten()
        done = roll["next", "done"].flatten()
        # the count restarts exactly after each done and never exceeds max_steps
        assert bool((counts[1:][done[:-1]] == 1).all()) and int(counts.max()) <= 10
        assert bool(roll["next", "truncated"].flatten()[counts == 10].all())
        check_env_specs(env)


class TestRewardSum:
    def test_sums_and_restarts(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=1.0), RewardSum())
        roll = env.rollout(6, const(0.5), break_when_any_done=False)
        assert roll["episode_reward"].flatten().tolist() == [0.0, 0.5, 0.0, 0.5, 0.0, 0.5]
        assert roll["next", "episode_reward"].flatten().tolist() == [0.5, 1.0, 0.5, 1.0, 0.5, 1.0]
        assert env.observation_spec["episode_reward"] == Unbounded(shape=(1,))
        check_env_specs(env)

    def test_batched_partial_reset(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=1.0, batch_size=(2,)), RewardSum())
        td = env.reset()
        td.set("action", torch.tensor([[1.0], [0.25]]))
        td, root = env.step_and_maybe_reset(td)
        assert td["next", "episode_reward"].flatten().tolist() == [1.0, 0.25]
        assert root["episode_reward"].flatten().tolist() == [0.0, 0.25]  # env 0 was reset
        check_env_specs(env)

    def test_forward_matches_env_values(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=2.0, batch_size=(2,)), RewardSum())
        roll = env.rollout(9, break_when_any_done=False)
        out = RewardSum()(roll.exclude("episode_reward", ("next", "episode_reward")))
        torch.testing.assert_close(out["next", "episode_reward"], roll["next", "episode_reward"])
        torch.testing.assert_close(out["episode_reward"], roll["episode_reward"])

    def test_forward_carries_a_return_from_before_the_slice(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=100), RewardSum())
        roll = env.rollout(5, const(1.0))
        out = RewardSum()(roll[2:].exclude(("next", "episode_reward")))
        assert out["next", "episode_reward"].flatten().tolist() == [3.0, 4.0, 5.0]

    def test_unknown_reward_key(self) -> None:
        with pytest.raises(TransformKeyError, match=r"'r'.*reward keys: \['reward'\]"):
            TransformedEnv(CountingEnv(), RewardSum(in_keys=["r"]))

    def test_cartpole_return_equals_episode_length(self) -> None:
        env = TransformedEnv(CartPoleEnv(num_envs=2), Compose(StepCounter(), RewardSum()))
        env.set_seed(1)
        roll = env.rollout(60, break_when_any_done=False)
        assert torch.equal(roll["next", "episode_reward"], roll["next", "step_count"].float())
        check_env_specs(env)


class TestInitTracker:
    def test_flags_first_steps(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=2), InitTracker())
        roll = env.rollout(5, const(1.0), break_when_any_done=False)
        assert roll["is_init"].flatten().tolist() == [True, False, True, False, True]
        assert not roll["next", "is_init"].any()
        assert env.observation_spec["is_init"] == Categorical(2, shape=(1,), dtype=torch.bool)
        check_env_specs(env)

    def test_partial_reset_flags_only_reset_envs(self) -> None:
        env = TransformedEnv(CountingEnv(batch_size=(3,)), InitTracker())
        td = env.step(const(1.0)(env.reset()))["next"].exclude("reward")
        td.set("_reset", torch.tensor([[True], [False], [True]]))
        assert env.reset(td)["is_init"].flatten().tolist() == [True, False, True]

    def test_forward_marks_episode_starts(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=2, batch_size=(2,)), InitTracker())
        roll = env.rollout(6, break_when_any_done=False)
        out = InitTracker()(roll.exclude("is_init", ("next", "is_init")))
        assert torch.equal(out["is_init"], roll["is_init"])
