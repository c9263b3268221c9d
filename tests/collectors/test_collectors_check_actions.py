"""``check_actions`` holds at every step of every collector path, not only the first.

A policy that writes a valid action for the first steps of a batch and ``7.0`` for the
``[0, 1]`` action spec of ``CountingEnv`` later must be refused with an
:class:`~rlkernel.errors.ActionError` naming the key, the spec and the value, wherever in
the batch the bad action comes; nothing of that batch is returned.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch
from collectors_testing import counting_env, hang_guard, late_out_of_bounds_policy

from rlkernel.collectors import MultiSyncDataCollector, SyncDataCollector
from rlkernel.errors import ActionError, WorkerError
from rlkernel.testing import CountingEnv

MESSAGE = r"action 'action' does not fit Bounded\(.*low=0\.0, high=1\.0\).*value 7\.0 is above high 1\.0"


@pytest.mark.parametrize("batch_size", [(), (3,)], ids=["single", "batched"])
@pytest.mark.parametrize("good_steps", [0, 1, 3, 4, 6])
def test_sync_collector_refuses_an_out_of_bounds_action_at_any_step(batch_size, good_steps):
    env = CountingEnv(max_count=1e9, batch_size=batch_size)
    frames = 4 * env.numel  # 4 steps a batch: the bad step is the first, second or last of the first
    # batch, or the first or third of the second; + 1: the collector's dry run of the policy
    collector = SyncDataCollector(
        env, late_out_of_bounds_policy(good_steps + 1), frames_per_batch=frames, total_frames=4 * frames
    )
    batches = []
    with pytest.raises(ActionError, match=MESSAGE):
        for batch in collector:
            batches.append(batch)
    assert len(batches) == good_steps // 4  # the batches before the bad step only
    for batch in batches:
        assert bool((batch["action"] == 0.5).all())
    collector.shutdown()


def test_sync_collector_refuses_an_out_of_bounds_action_after_random_frames():
    env = CountingEnv(max_count=1e9)
    collector = SyncDataCollector(
        env, late_out_of_bounds_policy(2), frames_per_batch=6, total_frames=12, init_random_frames=2
    )  # random, random, 0.5, then 7.0 (the dry run counts one call)
    with pytest.raises(ActionError, match=MESSAGE):
        next(iter(collector))
    collector.shutdown()


def test_sync_collector_records_what_the_policy_wrote_when_checks_are_off():
    env = CountingEnv(max_count=1e9, check_actions=False)
    collector = SyncDataCollector(env, late_out_of_bounds_policy(3), frames_per_batch=4, total_frames=4)
    batch = next(iter(collector))
    assert batch["action"].flatten().tolist() == [0.5, 0.5, 7.0, 7.0]
    collector.shutdown()


def test_rollout_and_collector_agree_on_the_bad_step():
    env = CountingEnv(max_count=1e9)
    with pytest.raises(ActionError, match=MESSAGE):
        env.rollout(6, late_out_of_bounds_policy(3))
    env.set_seed(0)
    assert env.rollout(3, late_out_of_bounds_policy(3))["action"].flatten().tolist() == [0.5, 0.5, 0.5]


def test_multi_sync_collector_refuses_an_out_of_bounds_action_at_a_later_step():
    collector = MultiSyncDataCollector(
        partial(counting_env, (2,)),
        late_out_of_bounds_policy(4),  # the third step of the first batch (after the dry run)
        num_workers=2,
        frames_per_batch=16,
        total_frames=32,
        mp_start_method="fork",
    )
    try:
        with hang_guard(60), pytest.raises(WorkerError) as info:
            next(iter(collector))
        assert isinstance(info.value.__cause__, ActionError)
        assert "action 'action' does not fit Bounded" in str(info.value) and "value 7.0" in str(info.value)
    finally:
        collector.shutdown()


def test_an_out_of_bounds_action_is_not_half_recorded():
    """The step that raised did not reach the environment: its counter stayed where it was."""
    env = CountingEnv(max_count=1e9)
    collector = SyncDataCollector(env, late_out_of_bounds_policy(3), frames_per_batch=4, total_frames=4)
    with pytest.raises(ActionError):
        next(iter(collector))
    assert torch.equal(env.count, torch.tensor([1.0]))  # two steps of 0.5
    collector.shutdown()
