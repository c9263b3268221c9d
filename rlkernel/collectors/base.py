"""What every collector shares: argument checks, iteration, ``len``, the context manager.

A collector is an iterable of TensorDicts of exactly ``frames_per_batch`` frames. It stops
after ``total_frames`` frames (``-1``: never). ``total_frames`` must be a multiple of
``frames_per_batch``: rlkernel refuses to round it (TorchRL rounds up with a warning).
"""

from __future__ import annotations

import abc
import operator
from collections.abc import Iterator
from typing import Any

from tensordict import TensorDictBase

from rlkernel.collectors.errors import CollectorError, CollectorLengthError

__all__ = ["DataCollectorBase", "check_frames", "check_positive_int"]


def check_positive_int(name: str, value: Any, *, owner: str, allow_zero: bool = False) -> int:
    """``value`` as an int (> 0, or >= 0 with ``allow_zero``), else a :class:`CollectorError`."""
    if isinstance(value, bool):
        raise CollectorError(f"{owner}: {name} must be an int, got the bool {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise CollectorError(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}") from None
    if number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise CollectorError(f"{owner}: {name} must be {bound}, got {number}")
    return number


def check_frames(frames_per_batch: Any, total_frames: Any, *, owner: str) -> tuple[int, int]:
    """Validate ``frames_per_batch`` (> 0) and ``total_frames`` (-1, or a positive multiple)."""
    frames_per_batch = check_positive_int("frames_per_batch", frames_per_batch, owner=owner)
    if isinstance(total_frames, bool):
        raise CollectorError(f"{owner}: total_frames must be an int, got the bool {total_frames!r}")
    try:
        total = operator.index(total_frames)
    except TypeError:
        raise CollectorError(
            f"{owner}: total_frames must be an int (-1 for no limit), got {type(total_frames).__name__}"
        ) from None
    if total == -1:
        return frames_per_batch, -1
    if total <= 0:
        raise CollectorError(f"{owner}: total_frames must be -1 (no limit) or > 0, got {total}")
    if total % frames_per_batch:
        low = total - total % frames_per_batch
        raise CollectorError(
            f"{owner}: total_frames={total} is not a multiple of frames_per_batch={frames_per_batch}; "
            f"rlkernel does not round it: use {low or frames_per_batch} or {low + frames_per_batch}"
        )
    return frames_per_batch, total


def split_frames(frames: int, parts: int, what: str, *, owner: str) -> int:
    """``frames // parts``, or a :class:`CollectorError` saying why it does not divide."""
    if frames % parts:
        low = frames - frames % parts
        raise CollectorError(
            f"{owner}: frames_per_batch={frames} is not a multiple of {what} ({parts}); "
            f"the batch would not split evenly: use {low or parts} or {low + parts}"
        )
    return frames // parts


class DataCollectorBase(abc.ABC):
    """Iteration, ``len``, the context manager and frame counting of every collector.

    Subclasses set ``frames_per_batch``, ``total_frames``, ``_frames`` (frames collected so
    far) and ``_iteration``, and implement :meth:`_next_batch` and :meth:`shutdown`.
    """

    frames_per_batch: int
    total_frames: int
    _frames: int = 0
    _iteration: int = 0

    @abc.abstractmethod
    def _next_batch(self) -> TensorDictBase:
        """Collect and return one batch of exactly ``frames_per_batch`` frames."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Release environments and processes. Returns promptly; calling it twice is harmless."""

    @abc.abstractmethod
    def update_policy_weights_(self, weights: Any = None) -> None:
        """Bring the collecting policy's weights up to date (see each collector)."""

    @property
    def frames(self) -> int:
        """Frames collected so far (all workers together)."""
        return self._frames

    @property
    def iteration(self) -> int:
        """Batches produced so far."""
        return self._iteration

    def _exhausted(self) -> bool:
        return 0 <= self.total_frames <= self._frames

    def __iter__(self) -> Iterator[TensorDictBase]:
        while not self._exhausted():
            yield self._next_batch()

    def next(self) -> TensorDictBase:
        """The next batch; ``StopIteration`` once ``total_frames`` frames were collected."""
        if self._exhausted():
            raise StopIteration
        return self._next_batch()

    def __len__(self) -> int:
        """The number of batches when ``total_frames`` is finite."""
        if self.total_frames < 0:
            raise CollectorLengthError(
                f"{type(self).__name__} has no length: total_frames=-1 collects forever"
            )
        return self.total_frames // self.frames_per_batch

    def __enter__(self) -> DataCollectorBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
