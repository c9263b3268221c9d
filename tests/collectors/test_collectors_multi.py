"""Multi-process collectors with real worker processes over the core's cart-pole.

The first test uses the default ``"spawn"`` context. The others use a ``"forkserver"``
context whose server preloads torch, tensordict, rlkernel and the helpers, so
that each worker starts in a fraction of a second instead of importing torch again.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from functools import partial

import pytest
import torch
from collectors_testing import (
    CrashingCartPole,
    cartpole,
    check_trajectories,
    failing_factory,
    greedy_policy,
    hang_guard,
)

from rlkernel.collectors import (
    TRAJ_IDS_KEY,
    CollectorError,
    MultiaSyncDataCollector,
    MultiSyncDataCollector,
)
from rlkernel.collectors.multi import WORKER_KEY
from rlkernel.errors import WorkerError

GUARD_S = 90  # hang guards: generous, only there so that a regression fails instead of hanging


def set_last_layer(policy, bias):
    """Zero the last layer's weight and set its bias: the greedy policy then always picks argmax(bias)."""
    with torch.no_grad():
        last = policy.module[0][-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor(bias))


@pytest.fixture(scope="module")
def fast_ctx():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "tensordict", "rlkernel.testing", "collectors_testing",
                                "rlkernel.collectors.worker", "rlkernel.collectors.sync"])
    return ctx


def test_multisync_frames_traj_ids_and_weight_updates():
    policy = greedy_policy()
    with hang_guard(GUARD_S), MultiSyncDataCollector(
        partial(cartpole, 2), policy, num_workers=2, frames_per_batch=200, total_frames=800, seed=0
    ) as collector:
        assert len(collector) == 4
        iterator = iter(collector)
        first, second = next(iterator), next(iterator)
        for batch in (first, second):
            assert tuple(batch.batch_size) == (2, 2, 50) and batch.numel() == 200
            assert batch[WORKER_KEY][:, 0, 0].tolist() == [0, 1]
        both = torch.cat([first, second], -1)
        check_trajectories(both)
        ids = both[TRAJ_IDS_KEY]
        assert not set(ids[0].flatten().tolist()) & set(ids[1].flatten().tolist())
        assert set(ids[0].flatten().tolist()) <= {i for i in range(0, 1000, 2)}  # worker 0: even ids

        set_last_layer(policy, [0.0, 1.0])  # the learner changes its weights ...
        collector.update_policy_weights_()  # ... and pushes them to the workers' shared tensors
        assert bool(next(iterator)["action"].all())
        set_last_layer(policy, [1.0, 0.0])
        collector.update_policy_weights_()
        assert not bool(next(iterator)["action"].any())
        with pytest.raises(StopIteration):
            next(iterator)
        assert collector.frames == 800
        state = collector.state_dict()
        assert state["frames"] == 800 and len(state["traj_next_local"]) == 2
        assert torch.equal(state["policy_state_dict"]["module.0.4.bias"], torch.tensor([1.0, 0.0]))


def test_multiasync_hands_out_each_worker_batch(fast_ctx):
    policy = greedy_policy()
    with hang_guard(GUARD_S), MultiaSyncDataCollector(
        [partial(cartpole, 2), partial(cartpole, 2)], policy, frames_per_batch=60, total_frames=600,
        mp_start_method=fast_ctx,
    ) as collector:
        # resume as if two batches had been collected, trajectory ids 0..9 already used
        collector.load_state_dict({"frames": 120, "iteration": 2, "traj_next_local": [5, 5]})
        workers, shapes = [], set()
        switched = False
        for batch in collector:
            assert int(batch[TRAJ_IDS_KEY].min()) >= 10
            shapes.add(tuple(batch.batch_size))
            assert bool((batch[WORKER_KEY] == collector.last_worker).all())
            workers.append(collector.last_worker)
            if len(workers) == 2:
                set_last_layer(policy, [0.0, 1.0])
                collector.update_policy_weights_()
            elif len(workers) > 2 and bool(batch["action"].all()):
                switched = True
        assert shapes == {(2, 30)} and len(workers) == 8 and set(workers) == {0, 1}
        assert switched  # batches collected after the update use the new weights
        assert collector.frames == 600


def test_frames_that_do_not_split_are_refused():
    with pytest.raises(CollectorError, match="not a multiple of the number of workers"):
        MultiSyncDataCollector(partial(cartpole, 2), num_workers=3, frames_per_batch=100)
    with pytest.raises(CollectorError, match="num_workers"):
        MultiSyncDataCollector(partial(cartpole, 2), frames_per_batch=100)
    with pytest.raises(CollectorError, match="mp_start_method"):
        MultiSyncDataCollector(partial(cartpole, 2), num_workers=2, frames_per_batch=100, mp_start_method="nope")


def test_startup_failure_is_reported_with_index_and_cause(fast_ctx):
    start = time.monotonic()
    with hang_guard(GUARD_S), pytest.raises(WorkerError) as info:
        MultiSyncDataCollector(
            [partial(cartpole, 2), failing_factory], frames_per_batch=40, mp_start_method=fast_ctx
        )
    message = str(info.value)
    assert "worker 1" in message and "RuntimeError" in message and "cannot build this environment" in message
    assert info.value.worker_index == 1 and "failing_factory" in info.value.remote_traceback
    assert time.monotonic() - start < GUARD_S


def test_startup_frames_not_divisible_by_env_numel(fast_ctx):
    with hang_guard(GUARD_S), pytest.raises(WorkerError, match=r"not a multiple of env\.numel"):
        MultiSyncDataCollector(partial(cartpole, 4), num_workers=2, frames_per_batch=36, mp_start_method=fast_ctx)


def test_env_error_in_a_worker_is_reported(fast_ctx):
    factories = [CrashingCartPole(after=10**9, crash=False, num_envs=2), CrashingCartPole(after=25, num_envs=2)]
    collector = MultiSyncDataCollector(factories, greedy_policy(), frames_per_batch=40, mp_start_method=fast_ctx)
    try:
        with hang_guard(GUARD_S), pytest.raises(WorkerError) as info:
            for _ in range(5):
                collector.next()
        err = info.value
        assert err.worker_index == 1 and err.exception_type == "ValueError"
        assert "boom after 25 steps" in str(err) and "worker 1" in str(err)
        assert isinstance(err.__cause__, ValueError)
        with pytest.raises(WorkerError, match="unusable"):
            collector.next()
    finally:
        with hang_guard(15):
            collector.shutdown()
            collector.shutdown()


def test_sigkilled_worker_is_reported_and_shutdown_is_prompt(fast_ctx):
    collector = MultiSyncDataCollector(
        partial(cartpole, 2), greedy_policy(), num_workers=2, frames_per_batch=40, mp_start_method=fast_ctx
    )
    try:
        with hang_guard(GUARD_S):
            collector.next()
            os.kill(collector.worker_pids[1], signal.SIGKILL)
            with pytest.raises(WorkerError, match=r"worker 1 .*killed by signal SIGKILL") as info:
                for _ in range(50):
                    collector.next()
            assert info.value.worker_index == 1 and info.value.signal == signal.SIGKILL
    finally:
        start = time.monotonic()
        collector.shutdown()
        collector.shutdown()
        assert time.monotonic() - start < 10
    with pytest.raises(CollectorError, match="shut down"):
        collector.next()


class Unpicklable(torch.nn.Module):
    def __init__(self):
        super().__init__()
        import threading

        self.lock = threading.Lock()

    def forward(self, observation):
        return torch.zeros(observation.shape[:-1], dtype=torch.int64)


def test_a_policy_that_cannot_reach_the_workers_is_refused_before_any_process_starts():
    with pytest.raises(CollectorError, match="cannot be sent to a worker process"):
        MultiSyncDataCollector(partial(cartpole, 2), Unpicklable(), num_workers=2, frames_per_batch=40)
