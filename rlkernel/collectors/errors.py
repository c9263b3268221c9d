"""Errors raised by the data collectors.

:class:`CollectorError` is raised on bad arguments and broken contracts (a policy that does
not write the action, a ``frames_per_batch`` that does not split evenly)::

    >>> from rlkernel.collectors.errors import CollectorError
    >>> from rlkernel.errors import RLKernelError
    >>> issubclass(CollectorError, RLKernelError) and issubclass(CollectorError, ValueError)
    True

A worker process (or a distributed collector rank) that raises, dies or hangs is reported
as :class:`rlkernel.errors.WorkerError`, with the attributes the batched environments use
too: ``worker_index``; for an exception, ``exception_type`` (qualified name) and
``remote_traceback`` (the worker's traceback text), the original exception (rebuilt, or a
stand-in) being the ``__cause__``; for a death, ``exitcode`` and ``signal`` (``None``
unless a signal killed it).
"""

from __future__ import annotations

from rlkernel.errors import RLKernelError

__all__ = ["CollectorError", "CollectorLengthError"]


class CollectorError(RLKernelError, ValueError):
    """A collector got an argument it cannot use, or a policy/env broke the step contract."""


class CollectorLengthError(RLKernelError, TypeError):
    """``len()`` of a collector that runs forever (``total_frames=-1``).

    A ``TypeError`` so that ``list()`` and ``operator.length_hint`` treat the collector as a
    plain iterable of unknown length.
    """
