"""The main loop of a :class:`~rlkernel.envs.batched.ParallelEnv` worker process.

Start-up: build the environment with the (cloud)pickled factory, send its specs on the
reply pipe (:data:`~rlkernel.envs.batched.protocol.READY`), receive the shared buffer and
its layout on the command pipe, answer :data:`~rlkernel.envs.batched.protocol.OK`. Then
serve one command byte at a time through a
:class:`~rlkernel.envs.batched.runner.SubEnvRunner`, signalling completion as
:mod:`~rlkernel.envs.batched.protocol` describes. A worker outlives an exception raised by
its environment (the parent decides what to do); it exits on ``CLOSE`` or when the
parent's end of the command pipe closes.

The worker ignores SIGINT (Ctrl-C reaches the whole process group; the parent handles it
and closes the workers) and runs torch on one thread.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from rlkernel.envs.batched import protocol


@dataclass
class WorkerChannels:
    """A worker's ends of the pipes, the countdown lock and the shared status array."""

    index: int
    commands: Connection  # read end
    replies: Connection  # write end
    done: Connection  # write end, shared by every worker
    lock: Any
    num_workers: int
    status: Any  # ctypes int array: [countdown, failed_0.., failed_{N-1}, served_0.., served_{N-1}]
    inherited_fds: tuple[int, ...] = ()  # parent-side fds a forked worker must close

    def report(self, exc: BaseException, during: str) -> None:
        """Flag the failure, wake the parent, then send the report."""
        report = protocol.FailureReport.from_exception(exc, during)
        self.status[1 + self.index] = 1
        os.write(self.done.fileno(), protocol.FAILED)
        self.replies.send_bytes(pickle.dumps(report))


def worker_main(channels: WorkerChannels, payload: bytes) -> None:
    """Run one worker: build the env, then serve commands until ``CLOSE`` or EOF.

    Once done, the process exits at once (``os._exit``) instead of finalizing the
    interpreter, which with torch loaded can take a second: the environment is closed
    by then and there is nothing left to clean up.
    """
    for fd in channels.inherited_fds:  # under "fork": the parent's ends of every pipe
        try:
            os.close(fd)
        except OSError:
            pass
    try:
        _run(channels, payload)
    except OSError:  # the parent is gone (a broken pipe): nobody to report to
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(0)


def _run(channels: WorkerChannels, payload: bytes) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(1)
    from rlkernel.envs.batched.runner import SubEnvRunner
    from rlkernel.envs.batched.subspecs import SubEnvSpecs

    replies = channels.replies
    try:
        factory, kwargs = pickle.loads(payload)
        env = factory(**kwargs)
        blob = pickle.dumps(SubEnvSpecs.of(env))
    except BaseException as exc:
        channels.report(exc, "create_env_fn")
        return
    os.write(replies.fileno(), protocol.READY)
    replies.send_bytes(blob)
    try:
        message = channels.commands.recv()
    except (EOFError, OSError):
        message = None
    if message is None:  # the parent gave up (another worker failed) or is gone
        _quiet_close(env)
        return
    flat, layout = message
    try:
        runner = SubEnvRunner(env, layout, flat, channels.index)
    except BaseException as exc:
        channels.report(exc, "start-up")
        return
    os.write(replies.fileno(), protocol.OK)
    _serve(runner, channels)


def _serve(runner: Any, channels: WorkerChannels) -> None:
    read, write = os.read, os.write
    cmd_fd, done_fd = channels.commands.fileno(), channels.done.fileno()
    lock, status = channels.lock, channels.status
    served = 1 + channels.num_workers + channels.index
    step, ok = protocol.STEP, protocol.OK
    while True:
        try:
            command = read(cmd_fd, 1)
        except OSError:
            command = b""
        if not command or command == protocol.CLOSE:  # asked to stop, or the parent is gone
            _quiet_close(runner.env)
            return
        try:
            if command == step:
                runner.step()
            elif command == protocol.STEP_AND_RESET:
                runner.step_and_maybe_reset()
            elif command == protocol.RESET:
                runner.reset(False)
            elif command == protocol.RESET_PARTIAL:
                runner.reset(True)
            elif command == protocol.SEED:
                runner.set_seed(pickle.loads(channels.commands.recv_bytes()))
            else:
                raise RuntimeError(f"unknown command byte {command!r}")
        except Exception as exc:
            try:
                channels.report(exc, protocol.COMMAND_NAMES.get(command, repr(command)))
            except OSError:
                return
            continue
        status[served] += 1
        with lock:
            status[0] -= 1
            last = status[0] == 0
        if last:
            try:
                write(done_fd, ok)
            except OSError:
                _quiet_close(runner.env)
                return


def _quiet_close(env: Any) -> None:
    try:
        env.close()
    except Exception:
        pass
