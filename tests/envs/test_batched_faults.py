"""ParallelEnv faults: every way a worker can fail is reported promptly, never waited for.

Each test builds a small fresh environment (a failure leaves it unusable by design). The
time limits are hang guards, far above what the reports take.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
import time

import pytest
import torch
from tensordict import TensorDict

from rlkernel.envs.batched import ParallelEnv
from rlkernel.envs.batched.protocol import RemoteError
from rlkernel.errors import ActionError, EnvError, SpecError, WorkerError
from rlkernel.specs import Composite, Unbounded
from rlkernel.testing import CountingEnv

HANG_GUARD_S = 5.0


@pytest.fixture(scope="module", autouse=True)
def warm_forkserver():
    """Start the forkserver once, so that the time limits below never include its start-up."""
    ParallelEnv(1, CountingEnv).close()


class FaultyEnv(CountingEnv):
    """A CountingEnv that misbehaves in ``fail_in`` ("step", "reset", "seed") as ``how`` says."""

    def __init__(self, fail_in: str = "", how: str = "raise", obs_dim: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fail_in, self.how = fail_in, how
        if obs_dim != 1:
            self.observation_spec = Composite(observation=Unbounded(shape=(obs_dim,)))

    def _fail(self, where: str) -> None:
        if self.fail_in != where:
            return
        if self.how == "raise":
            raise ValueError(f"broken {where} in pid {os.getpid()}")
        if self.how == "unpicklable":
            class LocalError(Exception):
                pass

            raise LocalError("a local exception class")
        if self.how == "hang":
            time.sleep(120)

    def _reset(self, tensordict):
        self._fail("reset")
        return super()._reset(tensordict)

    def _step(self, tensordict):
        self._fail("step")
        out = super()._step(tensordict)
        if self.fail_in == "output":
            if self.how == "dtype":
                out.set("observation", out.get("observation").double())
            elif self.how == "shape":
                out.set("observation", torch.zeros(2))
            elif self.how == "extra":
                out.set("surprise", torch.zeros(3))
            elif self.how == "missing":
                out.del_("reward")
        return out

    def _set_seed(self, seed):
        self._fail("seed")
        super()._set_seed(seed)


def failing_factory(**kwargs):
    raise RuntimeError("the factory cannot build this environment")


def hanging_factory(**kwargs):
    time.sleep(120)


def make(fail_in: str = "", how: str = "raise", *, worker: int = 1, n: int = 2, **kwargs) -> ParallelEnv:
    """A ParallelEnv of ``n`` FaultyEnvs where only ``worker`` misbehaves."""
    configs = [{"max_count": 100} for _ in range(n)]
    configs[worker].update(fail_in=fail_in, how=how)
    return ParallelEnv(n, FaultyEnv, configs, **kwargs)


def step(env: ParallelEnv) -> TensorDict:
    td = env.reset().set("action", torch.ones(env.num_workers, 1))
    return env.step(td)


def timed(call):
    start = time.monotonic()
    with pytest.raises(WorkerError) as info:
        call()
    elapsed = time.monotonic() - start
    assert elapsed < HANG_GUARD_S, f"took {elapsed:.1f} s"
    return info.value


def assert_closes_promptly(env: ParallelEnv) -> None:
    start = time.monotonic()
    env.close()
    assert time.monotonic() - start < HANG_GUARD_S
    env.close()  # a no-op
    assert env.is_closed
    for pid in env.worker_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


class TestExceptionsInWorkers:
    def test_raise_in_step(self) -> None:
        env = make("step")
        err = timed(lambda: step(env))
        assert err.worker_index == 1
        assert "worker 1" in str(err) and "ValueError" in str(err) and "broken step" in str(err)
        assert isinstance(err.__cause__, ValueError)
        assert err.exception_type == "ValueError"
        assert "in _fail" in err.remote_traceback and "raise ValueError" in err.remote_traceback
        with pytest.raises(WorkerError, match="unusable after an earlier failure"):
            env.reset()
        assert_closes_promptly(env)

    def test_raise_in_reset(self) -> None:
        env = make("reset", worker=0)
        err = timed(env.reset)
        assert err.worker_index == 0 and "during reset" in str(err) and "broken reset" in str(err)
        assert_closes_promptly(env)

    def test_raise_in_set_seed(self) -> None:
        env = make("seed")
        err = timed(lambda: env.set_seed(0))
        assert err.worker_index == 1 and "during set_seed" in str(err)
        assert_closes_promptly(env)

    def test_raise_in_factory_at_start_up(self) -> None:
        before = set(multiprocessing.active_children())
        err = timed(lambda: ParallelEnv(3, [CountingEnv, CountingEnv, failing_factory]))
        assert err.worker_index == 2 and "create_env_fn" in str(err)
        assert isinstance(err.__cause__, RuntimeError)
        assert "cannot build this environment" in str(err)
        time.sleep(0.2)
        assert set(multiprocessing.active_children()) <= before  # no worker left behind

    def test_unpicklable_exception_is_named_by_type(self) -> None:
        env = make("step", "unpicklable")
        err = timed(lambda: step(env))
        assert isinstance(err.__cause__, RemoteError)
        assert "LocalError" in err.__cause__.type_name and "LocalError" in str(err)
        assert "a local exception class" in str(err)
        assert_closes_promptly(env)

    def test_factory_that_returns_something_else(self) -> None:
        err = timed(lambda: ParallelEnv(2, lambda: "not an env"))
        assert "must return an rlkernel EnvBase" in str(err)


class TestDeadAndHungWorkers:
    def test_worker_killed_between_steps(self) -> None:
        env = make()
        step(env)
        os.kill(env.worker_pids[1], signal.SIGKILL)
        err = timed(lambda: step(env))
        assert err.worker_index == 1 and "SIGKILL" in str(err)
        assert_closes_promptly(env)

    def test_worker_killed_during_a_step(self) -> None:
        env = make("step", "hang", worker=0)
        threading.Timer(0.5, os.kill, (env.worker_pids[0], signal.SIGKILL)).start()
        err = timed(lambda: step(env))
        assert err.worker_index == 0 and "SIGKILL" in str(err) and "during step" in str(err)
        assert_closes_promptly(env)

    def test_hung_worker_times_out(self) -> None:
        env = make("step", "hang", timeout=1.0)
        err = timed(lambda: step(env))
        assert "did not finish step within 1.0 s" in str(err) and "[1]" in str(err)
        assert_closes_promptly(env)


    def test_hung_factory_times_out_at_start_up(self) -> None:
        before = set(multiprocessing.active_children())
        err = timed(lambda: ParallelEnv(2, [CountingEnv, hanging_factory], timeout=1.0))
        assert "did not finish start-up" in str(err) and "[1]" in str(err)
        time.sleep(0.2)
        assert set(multiprocessing.active_children()) <= before

    def test_forgotten_env_is_closed_when_collected(self) -> None:
        env = ParallelEnv(2, CountingEnv)
        pids = env.worker_pids
        del env
        gc.collect()
        deadline = time.monotonic() + HANG_GUARD_S
        alive = list(pids)
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in alive if _exists(pid)]
            time.sleep(0.05)
        assert not alive


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class TestOutputMismatch:
    @pytest.mark.parametrize(
        ("how", "expected"),
        [
            ("dtype", ["'observation'", "float32", "float64"]),
            ("shape", ["'observation'", "shape (2,)"]),
            ("extra", ["'surprise'", "no spec declares"]),
            ("missing", ["missing 'reward'"]),
        ],
    )
    def test_mismatch_is_a_worker_error_naming_the_key(self, how: str, expected: list[str]) -> None:
        env = make("output", how)
        err = timed(lambda: step(env))
        assert err.worker_index == 1
        for text in expected:
            assert text in str(err)
        assert_closes_promptly(env)

    def test_workers_with_different_specs(self) -> None:
        with pytest.raises(SpecError, match=r"worker 1 .*differs at key 'observation'.*shape=\[2\]"):
            ParallelEnv(2, FaultyEnv, [{}, {"obs_dim": 2}])


class TestMisuse:
    def test_malformed_action_is_refused_before_sending(self) -> None:
        with ParallelEnv(2, CountingEnv, {"max_count": 100}) as env:
            td = env.reset()
            with pytest.raises(ActionError):
                env.step(td.set("action", torch.full((2, 1), 7.0)))  # outside [0, 1]
            with pytest.raises(ActionError, match="float64"):
                env.step(td.set("action", torch.ones(2, 1, dtype=torch.float64)))
            out = env.step(td.set("action", torch.ones(2, 1)))
            assert out["next", "observation"].flatten().tolist() == [1.0, 1.0]  # nothing ran before

    def test_use_after_close(self) -> None:
        env = ParallelEnv(2, CountingEnv)
        env.close()
        for call in (env.reset, lambda: env.set_seed(1), lambda: env.rollout(2)):
            with pytest.raises(EnvError, match="closed"):
                call()
        env.close()

    def test_unpicklable_kwargs(self) -> None:
        with pytest.raises(EnvError, match="cannot be sent to a worker"):
            ParallelEnv(2, CountingEnv, {"lock": threading.Lock()})

    def test_bad_timeout(self) -> None:
        with pytest.raises(EnvError, match="timeout"):
            ParallelEnv(2, CountingEnv, timeout=-1)
