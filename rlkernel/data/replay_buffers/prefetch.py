"""Background sampling: a daemon thread keeps a few batches ready.

Consistency rules (why a prefetched batch is never wrong):

* a batch is drawn under the buffer's lock, so it never sees half a write, and its rows
  are copied out at that moment;
* every write (``extend``, ``add``, ``empty``, ``load_state_dict``) discards the batches
  not yet handed out, so no batch older than the last write is ever returned (its indices
  would name overwritten rows), and rolls a finite sampler (e.g. without replacement)
  back to where it was before the discarded batches were drawn, so no row is skipped;
* batches are handed out in the order they were drawn.

Batches are still drawn with the priorities in force when they were drawn: at most
``depth`` batches earlier than an ``update_priority`` call.

The thread holds no reference to the buffer between draws, is a daemon, and stops on
:meth:`Prefetcher.close`, when the buffer is garbage collected, or at interpreter exit.
"""

from __future__ import annotations

import collections
import threading
import weakref
from typing import Any

from rlkernel.data.errors import BufferError

__all__ = ["Prefetcher"]


class _Batch:
    """One batch drawn ahead: finished (``done``) once its transform has run."""

    __slots__ = ("data", "done", "error", "info", "ran_out", "snapshot")

    def __init__(self, snapshot: Any) -> None:
        self.snapshot = snapshot
        self.data: Any = None
        self.info: dict[Any, Any] = {}
        self.ran_out = False
        self.error: BaseException | None = None
        self.done = False


class Prefetcher:
    """Keeps up to ``depth`` batches of ``batch_size`` rows drawn from ``buffer``.

    Built by the replay buffer for ``prefetch=depth``; not meant to be used alone.
    """

    def __init__(self, buffer: Any, depth: int, batch_size: int) -> None:
        self.depth = depth
        self.batch_size = batch_size
        self._buffer = weakref.ref(buffer)
        self._cond = threading.Condition()
        self._ready: collections.deque[_Batch] = collections.deque()
        self._closed = False
        self._wanted = True
        self._thread = threading.Thread(target=self._run, name="rlkernel-prefetch", daemon=True)
        # Close when the buffer goes away or the interpreter exits (atexit=True by default).
        self._finalizer = weakref.finalize(buffer, Prefetcher._stop, self._cond, self)
        self._thread.start()

    # -- the thread --------------------------------------------------------------------
    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._closed and (len(self._ready) >= self.depth or not self._wanted):
                    cond.wait()
                if self._closed:
                    return
            buffer = self._buffer()
            if buffer is None:
                return
            batch = self._draw_ahead(buffer)
            if batch is not None and batch.error is None:
                try:
                    batch.data = buffer._finish(batch.data, batch.info)
                except Exception as err:  # handed to the consumer, raised by its sample()
                    batch.error = err
            del buffer
            if batch is not None:
                with cond:
                    batch.done = True
                    cond.notify_all()

    def _draw_ahead(self, buffer: Any) -> _Batch | None:
        with buffer._lock:
            with self._cond:
                if self._closed or len(self._ready) >= self.depth:
                    return None
                if not len(buffer):
                    self._wanted = False  # wait for a write
                    return None
            batch = _Batch(buffer._sampler._snapshot())
            try:
                batch.data, batch.info, batch.ran_out = buffer._draw(self.batch_size)
            except Exception as err:  # handed to the consumer, raised by its sample()
                batch.error = err
                batch.done = True
            with self._cond:
                self._ready.append(batch)
            return batch

    # -- the consumer ------------------------------------------------------------------
    def get(self, buffer: Any) -> tuple[Any, dict[Any, Any], bool]:
        """The oldest batch ready (waiting for its transform if need be), or one drawn
        now when none is ready. Call without holding the buffer's lock."""
        with buffer._lock:
            with self._cond:
                batch = self._ready.popleft() if self._ready else None
                self._cond.notify_all()
            if batch is None:
                data, info, ran_out = buffer._draw(self.batch_size)
        if batch is None:
            return buffer._finish(data, info), info, ran_out
        with self._cond:
            while not batch.done:
                if not self._thread.is_alive():
                    raise BufferError("the prefetch thread stopped while preparing a batch")
                self._cond.wait(0.1)
        if batch.error is not None:
            raise batch.error
        return batch.data, batch.info, batch.ran_out

    def invalidate(self, sampler: Any) -> None:
        """Discard the batches not handed out and roll ``sampler`` back to before them.
        Call while holding the buffer's lock."""
        with self._cond:
            if self._ready:
                sampler._restore(self._ready[0].snapshot)
                self._ready.clear()
            self._wanted = True
            self._cond.notify_all()

    # -- stopping ----------------------------------------------------------------------
    @staticmethod
    def _stop(cond: threading.Condition, prefetcher: Prefetcher) -> None:
        with cond:
            prefetcher._closed = True
            prefetcher._ready.clear()
            cond.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (waits up to ``timeout`` seconds for a draw in progress)."""
        self._finalizer.detach()
        Prefetcher._stop(self._cond, self)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the thread is running."""
        return self._thread.is_alive()
