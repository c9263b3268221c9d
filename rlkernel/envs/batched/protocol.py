"""The wire protocol between a :class:`~rlkernel.envs.batched.ParallelEnv` and its workers.

Each worker has two pipes of its own: *commands* (parent to worker) and *replies* (worker
to parent, for the rare messages that carry data). All workers share a third, *done*
pipe, and a small shared array: ``[countdown, failed_0, ..., failed_{N-1}]``.

A call (step, reset, seed) is: the parent sets the countdown to the number of workers
involved and writes one command byte to each of them; each worker does the work through
the shared buffer (see :mod:`~rlkernel.envs.batched.layout`), then decrements the
countdown under a lock; the one that brings it to zero writes :data:`OK` to the done
pipe. So the parent wakes up once per call, whatever the number of workers. A worker
that fails sets its ``failed`` flag, writes :data:`FAILED` to the done pipe at once, then
a :class:`FailureReport` to its reply pipe.

Larger messages (the specs at start-up, a seed, the shared buffer) are framed
``Connection.send_bytes`` messages.

A failure is raised in the parent as a :class:`~rlkernel.errors.WorkerError` chained to
the original exception (or to a :class:`RemoteError` standing in for it), itself chained
to a :class:`RemoteTraceback` holding the worker's traceback text.
"""

from __future__ import annotations

import pickle
import traceback
from dataclasses import dataclass

from rlkernel.errors import WorkerError

# parent -> worker (command pipe)
STEP = b"s"
STEP_AND_RESET = b"a"  # step, then reset where the step ended an episode
RESET = b"r"  # reset every sub-environment of the worker
RESET_PARTIAL = b"p"  # reset those its slice of the "_reset" mask selects
SEED = b"S"  # followed by a framed pickled seed (int or None)
CLOSE = b"c"
# worker -> parent (done pipe; READY and OK also on the reply pipe at start-up)
OK = b"k"
READY = b"R"  # on the reply pipe, followed by the framed pickled specs, once
FAILED = b"E"

COMMAND_NAMES = {
    STEP: "step",
    STEP_AND_RESET: "step_and_maybe_reset",
    RESET: "reset",     RESET_PARTIAL: "reset",
    SEED: "set_seed",
    CLOSE: "close",
}
MAX_TRACEBACK_CHARS = 20_000


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in a worker process (shown as the cause)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text.rstrip()}\n"""'


class RemoteError(Exception):
    """Stands in for a worker's exception that could not be sent back as itself.

    ``type_name`` is the original exception's qualified type name (``"module.Class"``).
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


@dataclass
class FailureReport:
    """What a worker sends back when something raised in it."""

    during: str
    type_name: str
    message: str
    traceback_text: str
    exception_bytes: bytes | None

    @classmethod
    def from_exception(cls, exc: BaseException, during: str) -> FailureReport:
        """Describe ``exc`` (raised while doing ``during``) in picklable terms."""
        kind = type(exc)
        module = kind.__module__
        type_name = kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
        text = "".join(traceback.format_exception(kind, exc, exc.__traceback__))
        if len(text) > MAX_TRACEBACK_CHARS:
            text = "[...]\n" + text[-MAX_TRACEBACK_CHARS:]
        try:
            blob: bytes | None = pickle.dumps(exc)
            pickle.loads(blob)  # some exceptions pickle but cannot be rebuilt
        except Exception:
            blob = None
        return cls(during, type_name, str(exc), text, blob)

    def original(self) -> BaseException:
        """The worker's exception rebuilt here, or a :class:`RemoteError` standing in for it."""
        exc: BaseException | None = None
        if self.exception_bytes is not None:
            try:
                exc = pickle.loads(self.exception_bytes)
            except Exception:
                exc = None
        if not isinstance(exc, BaseException):
            exc = RemoteError(self.type_name, self.message)
        exc.__cause__ = RemoteTraceback(self.traceback_text)
        return exc


def worker_error(owner: str, index: int, pid: int | None, report: FailureReport) -> WorkerError:
    """The :class:`WorkerError` for ``report``; its ``__cause__`` is the original exception.

    Attributes: ``worker_index``, ``exception_type`` (qualified name of the original type)
    and ``remote_traceback`` (its traceback text in the worker).
    """
    err = WorkerError(
        f"{owner} worker {index} (pid {pid}) raised {report.type_name} during {report.during}: "
        f"{report.message}\n--- remote traceback (worker {index}) ---\n{report.traceback_text.rstrip()}"
    )
    err.worker_index = index  # type: ignore[attr-defined]
    err.exception_type = report.type_name  # type: ignore[attr-defined]
    err.remote_traceback = report.traceback_text  # type: ignore[attr-defined]
    err.__cause__ = report.original()
    return err
