"""ObservationNorm, VecNorm (shared across real processes), RewardScaling, RewardClipping."""

from __future__ import annotations

import functools
import multiprocessing
import queue

import pytest
import torch
from tensordict import TensorDict
from transforms_vecnorm_worker import cartpole_worker, normalized_cartpole, run_and_record

from rlkernel.envs import check_env_specs
from rlkernel.envs.batched import ParallelEnv
from rlkernel.specs import Bounded, Unbounded
from rlkernel.testing import CartPoleEnv, CountingEnv
from rlkernel.transforms import (
    Compose,
    ObservationNorm,
    RewardClipping,
    RewardScaling,
    RewardSum,
    StepCounter,
    TransformedEnv,
    TransformError,
    VecNorm,
)
from rlkernel.transforms.file_lock import FileLock


def const(value: float):
    def policy(td: TensorDict) -> TensorDict:
        return td.set("action", torch.full((*td.batch_size, 1), value))

    return policy


class TestObservationNorm:
    def test_both_formulas_and_inverse(self) -> None:
        t = ObservationNorm(loc=1.0, scale=2.0, in_keys=["x"], standard_normal=True)
        td = TensorDict({"x": torch.tensor([3.0]), "next": {"x": torch.tensor([5.0])}}, [])
        t(td)
        assert td["x"].item() == 1.0 and td["next", "x"].item() == 2.0
        affine = ObservationNorm(loc=1.0, scale=2.0, in_keys=["x"])
        assert affine(TensorDict({"x": torch.tensor([3.0])}, []))["x"].item() == 7.0
        assert affine._inv_apply_transform(torch.tensor([7.0])).item() == 3.0

    def test_init_stats_on_cartpole_standardises(self) -> None:
        env = TransformedEnv(CartPoleEnv(), ObservationNorm(in_keys=["observation"], standard_normal=True))
        with pytest.raises(TransformError, match="init_stats"):
            env.reset()
        env.set_seed(0)
        torch.manual_seed(0)
        env.transform.init_stats(300)
        # the same random rollout of the bare env gives the statistics init_stats estimated
        raw = CartPoleEnv()
        raw.set_seed(0)
        torch.manual_seed(0)
        data = raw.rollout(300, break_when_any_done=False)["observation"]
        torch.testing.assert_close(env.transform.loc, data.mean(0))
        torch.testing.assert_close(env.transform.scale, data.std(0))
        normalized = env.transform(TensorDict({"observation": data}, [300]))["observation"]
        torch.testing.assert_close(normalized.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
        torch.testing.assert_close(normalized.std(0), torch.ones(4))
        check_env_specs(env)

    def test_init_stats_on_batched_env_and_keep_dims(self) -> None:
        env = TransformedEnv(CartPoleEnv(num_envs=2), ObservationNorm(in_keys=["observation"]))
        env.transform.init_stats(20, reduce_dim=(0, 1), cat_dim=1, keep_dims=(0,))
        assert env.transform.loc.shape == (1, 4)
        check_env_specs(env)

    def test_bounded_spec_follows_the_affine_map(self) -> None:
        env = TransformedEnv(CartPoleEnv(), ObservationNorm(loc=0.0, scale=-0.5))
        spec = env.observation_spec["observation"]
        assert isinstance(spec, Bounded)
        half = torch.tensor(CartPoleEnv.OBSERVATION_HIGH) / 2  # bounds (-high, high), scaled by -0.5: swapped
        torch.testing.assert_close(spec.low, -half)
        torch.testing.assert_close(spec.high, half)
        check_env_specs(env)

    def test_uninitialised_spec_is_unbounded_then_refreshed(self) -> None:
        env = TransformedEnv(CartPoleEnv(), ObservationNorm(standard_normal=True))
        assert isinstance(env.observation_spec["observation"], Unbounded)
        env.transform.init_stats(30)
        assert isinstance(env.observation_spec["observation"], Bounded)
        check_env_specs(env)

    def test_inverse_on_actions(self) -> None:
        env = TransformedEnv(
            CountingEnv(), ObservationNorm(loc=0.5, scale=0.5, in_keys=[], in_keys_inv=["action"], standard_normal=True)
        )
        assert env.action_spec == Bounded(-1.0, 1.0, shape=(1,))
        out = env.step(env.reset().set("action", torch.tensor([1.0])))
        assert out["next", "observation"].item() == 1.0 and out["action"].item() == 1.0
        check_env_specs(env)

    def test_bad_arguments(self) -> None:
        with pytest.raises(TransformError, match="both"):
            ObservationNorm(loc=1.0)
        with pytest.raises(TransformError, match="> 0"):
            ObservationNorm(loc=0.0, scale=-1.0, standard_normal=True)
        with pytest.raises(TransformError, match="inside a TransformedEnv"):
            ObservationNorm().init_stats(10)
        env = TransformedEnv(CountingEnv(), ObservationNorm(loc=0.0, scale=1.0))
        with pytest.raises(TransformError, match="already set"):
            env.transform.init_stats(10)


class TestVecNorm:
    def test_running_statistics_are_exact_with_decay_one(self) -> None:
        vn = VecNorm(out_keys=["normalized"], decay=1.0)
        env = TransformedEnv(CountingEnv(max_count=1e9), vn)
        env.rollout(3, const(1.0))
        # seen: 0 (reset), 1, 2, 3
        mean, std = vn.loc_scale()
        assert mean.item() == 1.5 and std.item() == pytest.approx(1.25**0.5)
        td = env.step(const(1.0)(env.reset()))  # reset adds 0, step adds 1 -> seen 0,1,2,3,0,1
        expected_mean = 7 / 6
        expected_std = (15 / 6 - expected_mean**2) ** 0.5
        assert td["next", "normalized"].item() == pytest.approx((1 - expected_mean) / expected_std, rel=1e-5)
        assert env.observation_spec["normalized"] == Unbounded(shape=(1,))
        check_env_specs(env)

    def test_decay_forgets_and_freeze_stops_updates(self) -> None:
        vn = VecNorm(decay=0.5)
        env = TransformedEnv(CountingEnv(max_count=1e9), vn)
        env.rollout(2, const(1.0))
        count = vn.shared_data["observation", "count"].item()
        assert count == pytest.approx(1 * 0.25 + 0.5 + 1)  # three updates, each after halving
        vn.freeze()
        env.rollout(2, const(1.0))
        assert vn.shared_data["observation", "count"].item() == count
        vn.unfreeze()
        env.eval()  # eval mode also stops updates
        env.rollout(2, const(1.0))
        assert vn.shared_data["observation", "count"].item() == count

    def test_partial_reset_updates_only_reset_envs(self) -> None:
        vn = VecNorm(decay=1.0)
        env = TransformedEnv(CountingEnv(max_count=1e9, batch_size=(3,)), vn)
        td = env.step(const(1.0)(env.reset()))["next"].exclude("reward")
        assert vn.shared_data["observation", "count"].item() == 6
        td.set("_reset", torch.tensor([[True], [False], [False]]))
        env.reset(td)
        assert vn.shared_data["observation", "count"].item() == 7

    def test_forward_normalises_without_updating(self) -> None:
        vn = VecNorm(decay=1.0)
        env = TransformedEnv(CountingEnv(max_count=1e9), vn)
        env.rollout(3, const(1.0))
        count = vn.shared_data["observation", "count"].item()
        sample = TensorDict({"observation": torch.tensor([[1.5]]), "next": {"observation": torch.tensor([[1.5]])}}, [1])
        out = vn(sample)
        assert out["observation"].abs().item() < 1e-6 and out["next", "observation"].abs().item() < 1e-6
        assert vn.shared_data["observation", "count"].item() == count

    def test_shared_memory_across_a_spawned_process(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        lock, results = ctx.Lock(), ctx.Queue()
        here = VecNorm(out_keys=["normalized"], decay=1.0, lock=lock)
        env = TransformedEnv(CartPoleEnv(), here)
        shared = here.share_memory_()
        assert shared["observation", "sum"].is_shared()
        steps = 40
        worker = ctx.Process(target=cartpole_worker, args=(shared, lock, steps, 1, results))
        worker.start()
        try:
            env.set_seed(2)  # this process updates the same statistics too
            mine = run_and_record(env, steps)
            count, total, squares = results.get(timeout=120)
        except queue.Empty:
            pytest.fail(f"the VecNorm worker did not report (exit code {worker.exitcode})")
        finally:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
        assert worker.exitcode == 0
        assert shared["observation", "count"].item() == count + mine.shape[0]
        torch.testing.assert_close(shared["observation", "sum"], torch.tensor(total).double() + mine.sum(0))
        torch.testing.assert_close(shared["observation", "ssq"], torch.tensor(squares).double() + mine.square().sum(0))
        # both processes' observations shape what this process normalises with now
        mean, _ = here.loc_scale()
        torch.testing.assert_close(mean, shared["observation", "sum"] / (count + mine.shape[0]))

    def test_shared_by_parallel_env_workers_through_memory_mapped_files(self, tmp_path) -> None:
        shared = VecNorm.build_shared_data(CartPoleEnv(), path=str(tmp_path))
        lock = FileLock(tmp_path / "stats.lock")  # travels through ParallelEnv's cloudpickle
        factory = functools.partial(normalized_cartpole, shared_data=shared, lock=lock)
        workers = ParallelEnv(2, factory, mp_context=multiprocessing.get_context("forkserver"))
        env = TransformedEnv(workers, Compose(StepCounter(max_steps=8), RewardSum()))  # and transforms outside
        try:
            env.set_seed(0)
            seen = run_and_record(env, 30)
            # every observation of both workers went into the statistics this process holds
            assert shared["observation", "count"].item() == seen.shape[0]
            torch.testing.assert_close(shared["observation", "sum"], seen.sum(0))
            torch.testing.assert_close(shared["observation", "ssq"], seen.square().sum(0))
            roll = env.rollout(30, break_when_any_done=False)
            counts = roll["next", "step_count"][..., 0]
            assert int(counts.max()) == 8 and (counts[:, 1:][roll["next", "done"][:, :-1, 0]] == 1).all()
            torch.testing.assert_close(roll["next", "episode_reward"][..., 0], counts.float())
            check_env_specs(env)
        finally:
            env.close()
        assert workers.is_closed

    def test_statistics_travel_with_state_dict(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=1e9), VecNorm(decay=1.0))
        env.rollout(3, const(1.0))
        state = env.state_dict()
        other = TransformedEnv(CountingEnv(max_count=1e9), VecNorm(decay=1.0))
        kept = other.transform.shared_data["observation", "sum"]
        other.load_state_dict(state)
        assert other.transform.shared_data["observation", "count"].item() == 4
        assert other.transform.shared_data["observation", "sum"] is kept  # loaded in place
        torch.testing.assert_close(other.transform.loc_scale()[0], env.transform.loc_scale()[0])

    def test_build_shared_data_and_errors(self) -> None:
        env = CartPoleEnv()
        shared = VecNorm.build_shared_data(env)
        assert shared["observation", "sum"].shape == (4,) and shared["observation", "count"].is_shared()
        with pytest.raises(TransformError, match="'pixels' is not in the observation spec"):
            VecNorm.build_shared_data(env, ["pixels"])
        with pytest.raises(TransformError, match="shared_data has no statistics for 'observation'"):
            TransformedEnv(CountingEnv(), VecNorm(shared_data=TensorDict({}, [])))
        with pytest.raises(TransformError, match="shape"):
            TransformedEnv(CountingEnv(), VecNorm(shared_data=shared))
        with pytest.raises(TransformError, match="decay"):
            VecNorm(decay=0.0)


class TestRewardTransforms:
    def test_reward_scaling_values_and_spec(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=100), RewardScaling(loc=1.0, scale=2.0))
        roll = env.rollout(2, const(0.5))
        assert roll["next", "reward"].flatten().tolist() == [2.0, 2.0]
        assert roll["next", "observation"].flatten().tolist() == [0.5, 1.0]  # observations untouched
        check_env_specs(env)
        std = RewardScaling(loc=1.0, scale=2.0, standard_normal=True)
        assert std(TensorDict({"next": {"reward": torch.tensor([3.0])}}, []))["next", "reward"].item() == 1.0
        with pytest.raises(TransformError, match="non-zero"):
            RewardScaling(scale=0.0)

    def test_reward_clipping_on_cartpole(self) -> None:
        env = TransformedEnv(CartPoleEnv(), RewardClipping(-0.5, 0.5))
        assert env.reward_spec == Bounded(-0.5, 0.5, shape=(1,))
        roll = env.rollout(5)
        assert (roll["next", "reward"] == 0.5).all()  # CartPole pays 1 per step
        check_env_specs(env)
        with pytest.raises(TransformError, match="clamp_min"):
            RewardClipping(1.0, 0.0)
