"""The parent's side of the collector workers: start, command, wait, shut down.

Every wait watches the workers' pipes together with their process sentinels
(``multiprocessing.connection.wait``) in bounded slices, so a worker that raises is
reported as soon as its report arrives, one that dies (even by SIGKILL) as soon as its
sentinel fires, and one that hangs once ``timeout`` seconds have passed. After a failure
the group is *broken*: every later call raises. :meth:`WorkerGroup.close` always returns
within a few seconds: it asks the workers to exit, then terminates and kills stragglers.

Workers are started from an explicit multiprocessing context (``"spawn"`` by default);
the global start method is never touched.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import time
import weakref
from collections.abc import Sequence
from multiprocessing.context import BaseContext
from typing import Any

from rlkernel.collectors.errors import CollectorError
from rlkernel.collectors.worker import WorkerSpec, worker_main
from rlkernel.envs.batched.pool import describe_exit
from rlkernel.envs.batched.protocol import FailureReport, worker_error
from rlkernel.errors import WorkerError

__all__ = ["WorkerGroup", "get_context"]

POLL_S = 0.25  # the longest a wait sleeps before it re-checks deadlines and sentinels
CLOSE_GRACE_S = 1.0  # how long workers may take to exit when asked
KILL_GRACE_S = 0.5  # how long SIGTERM gets before SIGKILL


def get_context(mp_start_method: str | BaseContext, owner: str) -> BaseContext:
    """The multiprocessing context named ``mp_start_method`` (or given), never the global one."""
    if isinstance(mp_start_method, BaseContext):
        return mp_start_method
    methods = multiprocessing.get_all_start_methods()
    if mp_start_method not in methods:
        raise CollectorError(f"{owner}: mp_start_method {mp_start_method!r} is not available; choose one of {methods}")
    return multiprocessing.get_context(mp_start_method)


def _pickle_spec(spec: WorkerSpec, owner: str) -> bytes:
    import cloudpickle

    try:
        return cloudpickle.dumps(spec)
    except Exception as exc:
        raise CollectorError(
            f"{owner}: the environment factory, its kwargs or the policy of worker {spec.index} cannot be "
            f"sent to a worker process ({type(exc).__name__}: {exc})"
        ) from exc


def _stop(processes: list[Any], conns: list[Any]) -> None:
    """Ask, then terminate, then kill; close the pipes. Safe to call twice."""
    for process, conn in zip(processes, conns):
        if process.exitcode is None:
            try:
                conn.send(("close",))
            except (OSError, ValueError):
                pass
    for grace, action in ((CLOSE_GRACE_S, "terminate"), (KILL_GRACE_S, "kill")):
        deadline = time.monotonic() + grace
        alive = [p for p in processes if p.exitcode is None]
        while alive and time.monotonic() < deadline:
            multiprocessing.connection.wait([p.sentinel for p in alive], deadline - time.monotonic())
            alive = [p for p in alive if p.exitcode is None]
        for process in alive:
            getattr(process, action)()
    for process in processes:
        process.join(timeout=KILL_GRACE_S)
    for conn in conns:
        conn.close()


class WorkerGroup:
    """The collector worker processes and a pipe to each.

    Args:
        owner: how messages name the collector.
        ctx: the multiprocessing context.
        specs: one :class:`~rlkernel.collectors.worker.WorkerSpec` per worker.
        weights: the shared-memory policy weights (a TensorDict) or ``None``.
        timeout: seconds a wait may last before the silent workers are reported as hung
            (``None``: no limit; dead workers are reported either way).
    """

    def __init__(
        self, owner: str, ctx: BaseContext, specs: Sequence[WorkerSpec], weights: Any, timeout: float | None
    ) -> None:
        self.owner = owner
        self.timeout = timeout
        self.num_workers = len(specs)
        self.processes: list[Any] = []
        self.conns: list[Any] = []
        self.broken: WorkerError | None = None
        self.closed = False
        payloads = [_pickle_spec(spec, owner) for spec in specs]
        self._finalizer = weakref.finalize(self, _stop, self.processes, self.conns)
        for index, payload in enumerate(payloads):
            parent_end, child_end = ctx.Pipe(duplex=True)
            process = ctx.Process(
                target=worker_main, args=(child_end, payload, weights), name=f"{owner}-worker-{index}"
            )
            try:
                process.start()
            except BaseException:
                parent_end.close()
                raise
            finally:
                child_end.close()
            self.processes.append(process)
            self.conns.append(parent_end)

    @property
    def pids(self) -> list[int | None]:
        """The worker process ids."""
        return [process.pid for process in self.processes]

    # ------------------------------------------------------------------ messages
    def send(self, index: int, message: tuple) -> None:
        """Send ``message`` to worker ``index``; a closed pipe is reported as its death."""
        self._check_usable()
        try:
            self.conns[index].send(message)
        except (OSError, ValueError):
            raise self._fail(self._death(index, message[0])) from None

    def wait_all(self, indices: Sequence[int], expect: str, what: str) -> dict[int, Any]:
        """Wait for ``(expect, payload)`` from each worker in ``indices``; return the payloads."""
        pending = set(indices)
        found: dict[int, Any] = {}
        while pending:
            for index, payload in self._wait(pending, expect, what):
                found[index] = payload
                pending.discard(index)
        return found

    def wait_any(self, indices: Sequence[int], expect: str, what: str) -> list[tuple[int, Any]]:
        """Wait until at least one worker in ``indices`` answers; return ``[(index, payload)]``."""
        return self._wait(set(indices), expect, what)

    def _wait(self, pending: set[int], expect: str, what: str) -> list[tuple[int, Any]]:
        self._check_usable()
        if not pending:
            raise CollectorError(f"{self.owner}: no worker has a request outstanding ({what})")
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        try:
            while True:
                waitables = {self.conns[i]: i for i in pending}
                sentinels = {self.processes[i].sentinel: i for i in pending}
                left = POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic()))
                ready = multiprocessing.connection.wait([*waitables, *sentinels], left)
                answers = [self._receive(waitables[c], expect, what) for c in ready if c in waitables]
                if answers:
                    return answers
                for sentinel in ready:
                    index = sentinels[sentinel]
                    if self.conns[index].poll():
                        return [self._receive(index, expect, what)]
                    raise self._death(index, what)
                if deadline is not None and time.monotonic() >= deadline:
                    raise self._hung(sorted(pending), what)
        except WorkerError as err:
            raise self._fail(err) from err.__cause__
        except BaseException:
            self.broken = WorkerError(f"{self.owner}: a wait for the workers was interrupted ({what})")
            raise

    def _receive(self, index: int, expect: str, what: str) -> tuple[int, Any]:
        try:
            kind, payload = self.conns[index].recv()
        except (EOFError, OSError):
            raise self._death(index, what) from None
        if kind == "error":
            report: FailureReport = payload
            raise worker_error(self.owner, index, self.processes[index].pid, report)
        if kind != expect:
            raise WorkerError(f"{self.owner} worker {index} answered {kind!r} to {what}, expected {expect!r}")
        return index, payload

    # ------------------------------------------------------------------ errors
    def _death(self, index: int, what: str) -> WorkerError:
        process = self.processes[index]
        process.join(timeout=1.0)
        code = process.exitcode
        err = WorkerError(f"{self.owner} worker {index} (pid {process.pid}) {describe_exit(code)} during {what}")
        err.worker_index = index  # type: ignore[attr-defined]
        err.exitcode = code  # type: ignore[attr-defined]
        err.signal = -code if code is not None and code < 0 else None  # type: ignore[attr-defined]
        return err

    def _hung(self, indices: list[int], what: str) -> WorkerError:
        err = WorkerError(
            f"{self.owner} worker(s) {indices} (pids {[self.processes[i].pid for i in indices]}) did not "
            f"finish {what} within the {self.timeout} s timeout; they may be hung"
        )
        err.worker_index = indices[0]  # type: ignore[attr-defined]
        return err

    def _fail(self, err: WorkerError) -> WorkerError:
        self.broken = err
        return err

    def _check_usable(self) -> None:
        if self.closed:
            raise CollectorError(f"{self.owner} is shut down")
        if self.broken is not None:
            first = str(self.broken).split("\n", 1)[0]
            err = WorkerError(f"{self.owner} is unusable after an earlier failure ({first}); shut it down")
            err.worker_index = getattr(self.broken, "worker_index", None)  # type: ignore[attr-defined]
            raise err

    # ------------------------------------------------------------------ shut-down
    def close(self) -> None:
        """Stop every worker; returns within about two seconds. Calling it twice is harmless."""
        if self.closed:
            return
        self.closed = True
        self._finalizer()

