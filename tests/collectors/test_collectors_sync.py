"""SyncDataCollector on the core's cart-pole and CountingEnv (``rlkernel.testing``)."""

from __future__ import annotations

import io
import itertools

import pytest
import torch
from collectors_testing import (
    cartpole,
    check_trajectories,
    greedy_policy,
    mlp,
    sampling_policy,
    zero_policy,
)
from tensordict import TensorDict
from tensordict.nn import TensorDictModule

from rlkernel.collectors import (
    MASK_KEY,
    TRAJ_IDS_KEY,
    CollectorError,
    CollectorLengthError,
    SyncDataCollector,
    split_trajectories,
)
from rlkernel.errors import RLKernelError
from rlkernel.exploration import ExplorationType, exploration_type
from rlkernel.testing import CountingEnv


# ---------------------------------------------------------------------- frames and shapes
@pytest.mark.parametrize("num_envs", [None, 4])
def test_exact_frames_and_shapes(num_envs):
    collector = SyncDataCollector(
        cartpole(num_envs), sampling_policy(), frames_per_batch=200, total_frames=600, seed=1
    )
    batches = list(collector)
    collector.shutdown()
    expected = (200,) if num_envs is None else (4, 50)
    assert len(collector) == 3 and len(batches) == 3
    assert [tuple(b.batch_size) for b in batches] == [expected] * 3
    assert collector.frames == 600 and sum(b.numel() for b in batches) == 600
    for key in ("observation", "action", ("next", "observation"), ("next", "reward"), ("next", "done"), TRAJ_IDS_KEY):
        assert key in batches[0].keys(include_nested=True)


@pytest.mark.parametrize("num_envs", [None, 4])
def test_traj_ids_follow_done_across_batches(num_envs):
    collector = SyncDataCollector(cartpole(num_envs), sampling_policy(), frames_per_batch=240, total_frames=960)
    batches = list(collector)
    time_dim = batches[0].batch_dims - 1
    whole = torch.cat(batches, time_dim)  # trajectories continue across batches
    check_trajectories(whole)
    assert int(whole["next", "done"].sum()) >= 4  # CartPole episodes end: resets happened


def test_split_trajs_matches_done_flags():
    collector = SyncDataCollector(
        cartpole(4), sampling_policy(), frames_per_batch=400, total_frames=400, split_trajs=True
    )
    (split,) = list(collector)
    mask = split.get(MASK_KEY)
    assert int(mask.sum()) == 400
    lengths = mask.sum(-1)
    for row in range(split.shape[0]):
        n = int(lengths[row])
        assert bool(mask[row, :n].all()) and not bool(mask[row, n:].any())
        ids = split[TRAJ_IDS_KEY][row, :n]
        assert bool((ids == ids[0]).all())
        done = split["next", "done"][row, :n].reshape(-1)
        assert not bool(done[:-1].any())  # only the last step of a trajectory can be done
        assert not bool(split["observation"][row, n:].any())  # zero padding
    assert len(set(split[TRAJ_IDS_KEY][:, 0].tolist())) == split.shape[0]


def test_split_trajectories_unit():
    batch = TensorDict(
        {"x": torch.arange(8).reshape(2, 4), TRAJ_IDS_KEY: torch.tensor([[0, 0, 2, 2], [1, 3, 3, 3]])}, [2, 4]
    )
    out = split_trajectories(batch)
    assert out["x"].tolist() == [[0, 1, 0], [4, 0, 0], [2, 3, 0], [5, 6, 7]]
    assert out[MASK_KEY].sum(-1).tolist() == [2, 1, 2, 3]
    with pytest.raises(CollectorError, match="non-adjacent"):
        split_trajectories(TensorDict({TRAJ_IDS_KEY: torch.tensor([0, 1, 0])}, [3]))


# ---------------------------------------------------------------------- options
def test_init_random_frames_then_policy():
    # numel 4: steps start at frames 0, 4, ..., 200 < 202 are random -> 51 random steps
    collector = SyncDataCollector(
        cartpole(4), zero_policy(), frames_per_batch=160, total_frames=480, init_random_frames=202, seed=3
    )
    actions = torch.cat([b["action"] for b in collector], -1)  # (4, 120)
    random_part, policy_part = actions[:, :51], actions[:, 51:]
    assert not bool(policy_part.any())
    assert 0.3 < random_part.float().mean().item() < 0.7


def test_policy_none_collects_random_actions():
    collector = SyncDataCollector(cartpole(), None, frames_per_batch=300, total_frames=300)
    (batch,) = list(collector)
    assert 0.3 < batch["action"].float().mean().item() < 0.7


@pytest.mark.parametrize("num_envs", [None, 2])
def test_max_frames_per_traj_truncates_and_resets(num_envs):
    collector = SyncDataCollector(
        cartpole(num_envs), zero_policy(), frames_per_batch=120, total_frames=240, max_frames_per_traj=5
    )
    batches = list(collector)
    whole = torch.cat(batches, -1)
    if num_envs is None:
        whole = whole.unsqueeze(0)
    check_trajectories(whole)
    split = split_trajectories(whole)
    lengths = split[MASK_KEY].sum(-1)
    assert int(lengths.max()) <= 5
    for row in range(split.shape[0]):
        n = int(lengths[row])
        last = (row, n - 1)
        if n == 5 and not bool(split["next", "terminated"][last]):
            assert bool(split["next", "truncated"][last]) and bool(split["next", "done"][last])


def test_reset_at_each_iter_starts_new_trajectories():
    collector = SyncDataCollector(
        CountingEnv(max_count=100, batch_size=(3,)), None, frames_per_batch=12, total_frames=36, reset_at_each_iter=True
    )
    batches = list(collector)
    for previous, batch in itertools.pairwise(batches):
        assert not set(batch[TRAJ_IDS_KEY][:, 0].tolist()) & set(previous[TRAJ_IDS_KEY][:, -1].tolist())
    for batch in batches:
        assert not bool(batch["observation"][:, 0].any())  # the counter restarted at 0


def test_exploration_type_is_set_around_the_policy():
    seen = []

    def policy(td):
        seen.append(exploration_type())
        return td.set("action", torch.zeros((), dtype=torch.int64))

    collector = SyncDataCollector(
        cartpole(), policy, frames_per_batch=10, total_frames=10, exploration_type=ExplorationType.DETERMINISTIC
    )
    list(collector)
    assert seen and all(value == ExplorationType.DETERMINISTIC for value in seen)
    assert exploration_type() == ExplorationType.RANDOM  # restored outside


def test_plain_module_policy_is_wrapped_and_postproc_applied():
    def postproc(batch):
        return batch.set("seen", torch.ones(batch.batch_size, dtype=torch.bool))

    net = torch.nn.Sequential(mlp(), type(greedy_policy().module[1])())
    collector = SyncDataCollector(cartpole(3), net, frames_per_batch=30, total_frames=30, postproc=postproc)
    (batch,) = list(collector)
    assert batch["action"].shape == (3, 10) and bool(batch["seen"].all())


def test_return_same_td_reuses_the_buffer():
    collector = SyncDataCollector(cartpole(), None, frames_per_batch=20, total_frames=40, return_same_td=True)
    first, second = list(collector)
    assert first is second
    fresh = SyncDataCollector(cartpole(), None, frames_per_batch=20, total_frames=40)
    a, b = list(fresh)
    assert a is not b and a["observation"].data_ptr() != b["observation"].data_ptr()


# ---------------------------------------------------------------------- weights and state
def test_update_policy_weights_changes_actions():
    policy = greedy_policy()
    collector = SyncDataCollector(cartpole(4), policy, frames_per_batch=80)
    learner = greedy_policy(seed=5)
    with torch.no_grad():
        learner.module[0][-1].weight.zero_()
        learner.module[0][-1].bias.copy_(torch.tensor([0.0, 1.0]))  # always action 1
    collector.update_policy_weights_(TensorDict.from_module(learner))
    assert bool(collector.next()["action"].all())
    with torch.no_grad():
        learner.module[0][-1].bias.copy_(torch.tensor([1.0, 0.0]))  # always action 0
    collector.update_policy_weights_(learner.state_dict())
    assert not bool(collector.next()["action"].any())
    collector.shutdown()


def test_state_dict_round_trip_with_weights_only_load():
    collector = SyncDataCollector(cartpole(2), greedy_policy(), frames_per_batch=40, total_frames=160)
    iterator = iter(collector)
    seen_ids = set()
    for _ in range(2):
        seen_ids |= set(next(iterator)[TRAJ_IDS_KEY].flatten().tolist())
    buffer = io.BytesIO()
    torch.save(collector.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["frames"] == 80 and state["iteration"] == 2
    restored = SyncDataCollector(cartpole(2), greedy_policy(seed=9), frames_per_batch=40, total_frames=160)
    restored.load_state_dict(state)
    assert torch.equal(restored.policy.module[0][0].weight, collector.policy.module[0][0].weight)
    rest = list(restored)
    assert len(rest) == 2 and restored.frames == 160
    new_ids = set(torch.cat(rest, -1)[TRAJ_IDS_KEY].flatten().tolist())
    assert min(new_ids) >= state["traj_next_local"]  # fresh ids never collide with saved ones
    assert not new_ids & seen_ids


# ---------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frames_per_batch": 10}, r"frames_per_batch=10 is not a multiple of env.numel"),
        ({"frames_per_batch": 0}, r"frames_per_batch must be > 0"),
        ({"frames_per_batch": -8}, r"frames_per_batch must be > 0"),
        ({"frames_per_batch": 8, "total_frames": 20}, r"total_frames=20 is not a multiple of frames_per_batch=8"),
        ({"frames_per_batch": 8, "total_frames": 0}, r"total_frames must be -1"),
        ({"frames_per_batch": 8, "init_random_frames": -1}, r"init_random_frames must be >= 0"),
        ({"frames_per_batch": 8, "max_frames_per_traj": 0}, r"max_frames_per_traj must be > 0"),
        ({"frames_per_batch": 8.0}, r"frames_per_batch must be an int"),
        ({"frames_per_batch": 8, "exploration_type": "random"}, r"exploration_type must be"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(CollectorError, match=match) as info:
        SyncDataCollector(cartpole(4), None, **kwargs)
    assert isinstance(info.value, RLKernelError)


def test_policy_that_does_not_write_the_action_key():
    policy = TensorDictModule(mlp(), ["observation"], ["logits"])
    with pytest.raises(CollectorError, match=r"did not write the action key\(s\) \['action'\].*'logits'"):
        SyncDataCollector(cartpole(), policy, frames_per_batch=10)


def test_bad_env_factories():
    with pytest.raises(CollectorError, match="returned int, expected an rlkernel EnvBase"):
        SyncDataCollector(lambda: 3, frames_per_batch=10)
    with pytest.raises(CollectorError, match="must be an EnvBase or a callable"):
        SyncDataCollector("CartPole-v1", frames_per_batch=10)


def test_len_of_an_endless_collector_and_shutdown():
    collector = SyncDataCollector(CountingEnv(), frames_per_batch=5)
    with pytest.raises(CollectorLengthError, match="total_frames=-1"):
        len(collector)
    assert isinstance(CollectorLengthError("x"), TypeError)
    collector.shutdown()
    collector.shutdown()  # idempotent
    with pytest.raises(CollectorError, match="shut down"):
        collector.next()


def test_context_manager_closes_owned_env_only():
    given = CountingEnv()
    with SyncDataCollector(given, frames_per_batch=5, total_frames=5) as collector:
        list(collector)
    assert not given.is_closed
    with SyncDataCollector(lambda: CountingEnv(), frames_per_batch=5, total_frames=5) as collector:
        list(collector)
    assert collector.env.is_closed


# ---------------------------------------------------------------------- the less common paths
class ShiftObservation(torch.nn.Module):
    """A policy that rewrites the observation it reads (obs + 1) and takes action 0."""

    def forward(self, observation):
        return observation + 1, torch.zeros(observation.shape[:-1], dtype=torch.int64)


def test_policy_rewriting_a_carried_key_is_recorded_as_written():
    policy = TensorDictModule(ShiftObservation(), ["observation"], ["observation", "action"])
    collector = SyncDataCollector(cartpole(2), policy, frames_per_batch=100, total_frames=200)
    whole = torch.cat(list(collector), -1)
    done = whole["next", "done"].squeeze(-1)
    same_episode = ~done[:, :-1]
    expected = whole["next", "observation"][:, :-1] + 1
    assert torch.equal(whole["observation"][:, 1:][same_episode], expected[same_episode])


def test_function_policy_and_overridden_step_keep_trajectories_right():
    class SteppedEnv(CountingEnv):
        def step(self, tensordict):  # an env overriding step: the collector calls it as is
            return super().step(tensordict)

    def policy(td):
        return td.set("action", torch.full((3, 1), 0.7))

    collector = SyncDataCollector(
        SteppedEnv(max_count=2, batch_size=(3,)), policy, frames_per_batch=30, total_frames=60
    )
    whole = torch.cat(list(collector), -1)
    check_trajectories(whole)
    assert bool(whole["next", "done"].any())


def test_a_key_that_disappears_mid_run_is_named():
    class Forgetful(CountingEnv):
        calls = 0

        def _step(self, tensordict):
            out = super()._step(tensordict)
            self.calls += 1
            return out.exclude("reward") if self.calls > 3 else out

    collector = SyncDataCollector(Forgetful(max_count=100), frames_per_batch=10)
    with pytest.raises(CollectorError, match=r"missing \[\('next', 'reward'\)\]"):
        collector.next()


def test_seeded_collection_is_reproducible():
    def run():
        torch.manual_seed(0)  # the policy samples from torch's global generator
        collector = SyncDataCollector(cartpole(2), sampling_policy(seed=1), frames_per_batch=100, seed=3)
        batch = collector.next()
        collector.shutdown()
        return batch

    first, second = run(), run()
    assert (first == second).all()
    assert not torch.equal(first["observation"][0], first["observation"][1])  # sub-envs seeded apart


def test_an_env_that_reuses_its_output_tensors_is_recorded_correctly():
    class Reusing(CountingEnv):
        """Returns its own counter tensor (no copy), updated in place by the next step."""

        def _reset(self, tensordict):
            self.count.zero_()
            return TensorDict({"observation": self.count}, self.batch_size)

        def _step(self, tensordict):
            self.count += tensordict.get("action")
            done = self.count >= self.max_count
            return TensorDict(
                {"observation": self.count, "reward": tensordict.get("action").clone(), "done": done},
                self.batch_size,
            )

    def policy(td):  # a plain callable: every root leaf is written at every step
        return td.set("action", torch.full((1,), 0.5))

    for pol in (None, policy):
        collector = SyncDataCollector(Reusing(max_count=2.0), pol, frames_per_batch=12, total_frames=24)
        whole = torch.cat(list(collector), 0)
        step = whole["next", "observation"] - whole["observation"]
        assert torch.allclose(step, whole["action"]), (pol, whole["observation"], whole["next", "observation"])
