"""The parent's side of the worker processes: start, command, wait, shut down.

Waiting never blocks blindly. A selector watches the shared *done* pipe (or, at start-up,
each worker's reply pipe) together with every worker's process sentinel, polled with a
bounded timeout in a loop: a worker that raises is reported as soon as its flag is up,
one that dies (even by SIGKILL) as soon as its sentinel fires, one that hangs after
``timeout`` seconds when a timeout is set. After a failure the pool is *broken*: every
later call raises a :class:`~rlkernel.errors.WorkerError` until :meth:`WorkerPool.close`,
which always returns promptly: it asks the workers to exit, then terminates and finally
kills the stragglers.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import selectors
import signal
import time
from collections.abc import Sequence
from multiprocessing.context import BaseContext
from typing import Any

from rlkernel.envs.batched import protocol
from rlkernel.envs.batched.worker import WorkerChannels, worker_main
from rlkernel.errors import WorkerError

POLL_S = 0.5  # the longest a wait sleeps before it re-checks its deadline and the workers
CLOSE_GRACE_S = 1.0  # how long close() lets workers exit on their own before terminating them
KILL_GRACE_S = 0.5  # then how long SIGTERM gets before SIGKILL
REPORT_WAIT_S = 5.0  # how long a flagged failure report may take to arrive


def describe_exit(exitcode: int | None) -> str:
    """``"was killed by signal SIGKILL"``, ``"exited with code 1"``, ..."""
    if exitcode is None:
        return "stopped answering but has not exited"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by signal {name}"
    return f"exited with code {exitcode}"


class WorkerPool:
    """``num_workers`` processes with their pipes, and the selectors that watch them.

    Args:
        owner: how messages name the batched environment (``"ParallelEnv"``).
        ctx: the multiprocessing context.
        payloads: per worker, the pickled ``(create_env_fn, create_env_kwargs)``.
    """

    def __init__(self, owner: str, ctx: BaseContext, payloads: Sequence[bytes]) -> None:
        self.owner = owner
        self.ctx = ctx
        self.num_workers = n = len(payloads)
        self.processes: list[Any] = []
        self.commands: list[multiprocessing.connection.Connection] = []
        self.replies: list[multiprocessing.connection.Connection] = []
        self.command_fds: list[int] = []
        self.serving = False
        self.broken: WorkerError | None = None
        self.closed = False
        self._payloads = payloads
        self._lock = ctx.Lock()
        # [countdown, failed_0, ..., failed_{n-1}, served_0, ..., served_{n-1}]
        self.status = ctx.RawArray("i", 1 + 2 * n)
        self._sent = [0] * n  # commands sent to each worker; its "served" count catches up
        self._done_reader, self._done_writer = ctx.Pipe(duplex=False)
        self._done_fd = self._done_reader.fileno()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._done_fd, selectors.EVENT_READ, -1)

    @property
    def pids(self) -> list[int | None]:
        """The worker process ids."""
        return [p.pid for p in self.processes]

    # ------------------------------------------------------------------ start-up
    def start(self, timeout: float | None) -> list[Any]:
        """Start the workers; return the specs each reported (unpickled)."""
        try:
            for index, payload in enumerate(self._payloads):
                self._start_one(index, payload)
        finally:
            self._done_writer.close()  # the workers hold their own copies
        blobs = self._handshake(protocol.READY, "start-up (create_env_fn)", timeout)
        return [pickle.loads(blobs[i]) for i in range(self.num_workers)]

    def _start_one(self, index: int, payload: bytes) -> None:
        command_reader, command_writer = self.ctx.Pipe(duplex=False)
        reply_reader, reply_writer = self.ctx.Pipe(duplex=False)
        # A forked worker inherits the parent's ends of the pipes; holding the write end of
        # its own command pipe, it would never see EOF when the parent dies: it closes them.
        inherited = (
            (*self.command_fds, *(r.fileno() for r in self.replies), command_writer.fileno(),
             reply_reader.fileno(), self._done_fd)
            if self.ctx.get_start_method() == "fork" else ()
        )
        channels = WorkerChannels(
            index, command_reader, reply_writer, self._done_writer, self._lock, self.num_workers, self.status,
            inherited,
        )
        process = self.ctx.Process(
            target=worker_main, args=(channels, payload), name=f"{self.owner}-worker-{index}", daemon=True
        )
        try:
            process.start()
        except BaseException:
            command_writer.close()
            reply_reader.close()
            raise
        finally:
            command_reader.close()
            reply_writer.close()
        self.processes.append(process)
        self.commands.append(command_writer)
        self.command_fds.append(command_writer.fileno())
        self.replies.append(reply_reader)
        self._selector.register(process.sentinel, selectors.EVENT_READ, index)

    def share(self, message: Any, timeout: float | None) -> None:
        """Send every worker ``message`` (the shared buffer and its layout) and await OK."""
        for index, conn in enumerate(self.commands):
            try:
                conn.send(message)
            except OSError:
                raise self._fail(self._death(index, "start-up")) from None
        self._handshake(protocol.OK, "start-up (shared buffer)", timeout)
        self.serving = True

    def _handshake(self, expect: bytes, what: str, timeout: float | None) -> dict[int, bytes]:
        """Wait for each worker's ``expect`` byte on its reply pipe (start-up only)."""
        try:
            return self._await_replies(expect, what, timeout)
        except WorkerError as err:
            raise self._fail(err) from err.__cause__
        except BaseException:
            self._interrupted()
            raise

    def _await_replies(self, expect: bytes, what: str, timeout: float | None) -> dict[int, bytes]:
        remaining = set(range(self.num_workers))
        payloads: dict[int, bytes] = {}
        deadline = None if timeout is None else time.monotonic() + timeout
        while remaining:
            self._check_failed(what)
            waitables = [self.replies[i] for i in remaining] + [self._done_reader]
            ready = multiprocessing.connection.wait(
                waitables + [self.processes[i].sentinel for i in remaining], self._poll_time(deadline)
            )
            if not ready and deadline is not None and time.monotonic() >= deadline:
                raise self._timeout(sorted(remaining), what, timeout)
            for index in sorted(remaining):
                conn = self.replies[index]
                if self.status[1 + index]:  # its reply pipe holds a failure report, not a status
                    self._check_failed(what)
                if conn in ready:
                    status = self._read(conn.fileno())
                    if status == expect:
                        remaining.discard(index)
                        if expect == protocol.READY:
                            payloads[index] = conn.recv_bytes()
                        continue
                    if status:
                        raise WorkerError(f"{self.owner} worker {index} answered {status!r} during {what}")
                if self.processes[index].sentinel in ready or conn in ready:
                    self._check_failed(what)
                    raise self._death(index, what)
        return payloads

    # ------------------------------------------------------------------ commands
    def run(self, command: bytes, indices: Sequence[int], what: str, timeout: float | None,
            payloads: Sequence[Any] = ()) -> None:
        """Send ``command`` to the workers ``indices`` and wait until all have done it."""
        if self.broken is not None:
            raise self.unusable()
        self.status[0] = len(indices)
        write, fds, sent = os.write, self.command_fds, self._sent
        for n, index in enumerate(indices):
            sent[index] += 1
            try:
                write(fds[index], command)
                if payloads:
                    self.commands[index].send_bytes(pickle.dumps(payloads[n]))
            except OSError:
                raise self._fail(self._death(index, what)) from None
        try:
            self._await_done(what, timeout)
        except WorkerError as err:
            raise self._fail(err) from err.__cause__
        except BaseException:
            self._interrupted()
            raise

    def _await_done(self, what: str, timeout: float | None) -> None:
        select, fd = self._selector.select, self._done_fd
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            events = select(POLL_S if deadline is None else self._poll_time(deadline))
            if not events:
                if deadline is not None and time.monotonic() >= deadline:
                    raise self._timeout(self._unfinished(), what, timeout)
                self._check_alive(what)
                continue
            dead = None
            for key, _ in events:
                if key.data >= 0:
                    dead = key.data if dead is None else dead
                    continue
                data = self._read(fd, 64)
                if protocol.FAILED in data:
                    self._check_failed(what)
                if protocol.OK in data:
                    return
            if dead is not None:
                self._check_failed(what)
                raise self._death(dead, what)

    def _poll_time(self, deadline: float | None) -> float:
        if deadline is None:
            return POLL_S
        return max(0.0, min(POLL_S, deadline - time.monotonic()))

    @staticmethod
    def _read(fd: int, size: int = 1) -> bytes:
        try:
            return os.read(fd, size)
        except OSError:
            return b""

    def _unfinished(self) -> list[int]:
        served = self.status[1 + self.num_workers :]
        return [i for i, count in enumerate(served) if count != self._sent[i]]

    def _check_alive(self, what: str) -> None:
        for index, process in enumerate(self.processes):
            if process.exitcode is not None:
                self._check_failed(what)
                raise self._death(index, what)

    # ------------------------------------------------------------------ errors
    def _check_failed(self, what: str) -> None:
        """Raise the report of the first worker whose failure flag is up, if any."""
        status = self.status
        for index in range(self.num_workers):
            if status[1 + index]:
                conn = self.replies[index]
                try:
                    if not conn.poll(REPORT_WAIT_S):
                        raise EOFError
                    report: protocol.FailureReport = pickle.loads(conn.recv_bytes())
                except (EOFError, OSError):
                    raise WorkerError(
                        f"{self.owner} worker {index} (pid {self.processes[index].pid}) failed during "
                        f"{what} but its report did not arrive"
                    ) from None
                status[1 + index] = 0
                raise protocol.worker_error(self.owner, index, self.processes[index].pid, report)

    def _death(self, index: int, what: str) -> WorkerError:
        process = self.processes[index]
        process.join(timeout=1.0)
        err = WorkerError(
            f"{self.owner} worker {index} (pid {process.pid}) {describe_exit(process.exitcode)} "
            f"during {what}"
        )
        err.worker_index = index  # type: ignore[attr-defined]
        err.exitcode = process.exitcode  # type: ignore[attr-defined]
        return err

    def _timeout(self, indices: list[int], what: str, timeout: float | None) -> WorkerError:
        pids = [self.processes[i].pid for i in indices]
        err = WorkerError(
            f"{self.owner} worker(s) {indices} (pids {pids}) did not finish {what} within {timeout} s "
            "(the timeout); they may be hung"
        )
        err.worker_index = indices[0] if indices else None  # type: ignore[attr-defined]
        return err

    def _fail(self, err: WorkerError) -> WorkerError:
        self.broken = err
        return err

    def _interrupted(self) -> None:
        self.broken = WorkerError(f"{self.owner}: a call was interrupted while the workers were busy")

    def unusable(self) -> WorkerError:
        """The error every call raises once the pool is broken."""
        first = str(self.broken).split("\n", 1)[0]
        err = WorkerError(f"{self.owner} is unusable after an earlier failure ({first}); close() it")
        err.worker_index = getattr(self.broken, "worker_index", None)  # type: ignore[attr-defined]
        return err

    # ------------------------------------------------------------------ shut-down
    def close(self) -> None:
        """Stop every worker; returns within about two seconds whatever state they are in."""
        if self.closed:
            return
        self.closed = True
        for index, process in enumerate(self.processes):
            if process.exitcode is not None:
                continue
            try:
                if self.serving:
                    os.write(self.command_fds[index], protocol.CLOSE)
                else:
                    self.commands[index].send(None)
            except (OSError, ValueError):
                pass
        self._await_exit(CLOSE_GRACE_S)
        for process in self._alive():
            process.terminate()
        self._await_exit(KILL_GRACE_S)
        for process in self._alive():
            process.kill()
        for process in self.processes:
            process.join(timeout=KILL_GRACE_S)
        self._selector.close()
        for conn in (*self.commands, *self.replies, self._done_reader, self._done_writer):
            conn.close()

    def _alive(self) -> list[Any]:
        return [p for p in self.processes if p.exitcode is None]

    def _await_exit(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        alive = self._alive()
        while alive:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            multiprocessing.connection.wait([p.sentinel for p in alive], timeout=left)
            alive = self._alive()
