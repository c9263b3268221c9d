"""The storage contract: a fixed number of rows, written by a writer, read by index.

A storage knows its ``max_size``, how many rows hold data (``len``) and the write cursor
(where a round-robin writer writes next). Keeping the cursor in the storage, not in the
writer, means a persistent storage reopens with the cursor it had.

Subclasses implement ``_set`` (write rows at given indices), ``_get`` (read rows),
``_empty``, ``_state`` and ``_load_state``; the public methods validate and keep the
bookkeeping.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from rlkernel.data.errors import BufferIndexError, StorageError

__all__ = ["Storage", "as_index"]


def as_index(index: Any, *, what: str = "index") -> torch.Tensor:
    """Any integer index (int, sequence, tensor) as a 1-D int64 CPU tensor."""
    if type(index) is torch.Tensor and index.dtype is torch.int64 and index.ndim == 1 and index.is_cpu:
        return index  # already one: the common case, no work
    if isinstance(index, torch.Tensor):
        if index.dtype.is_floating_point or index.dtype.is_complex or index.dtype == torch.bool:
            raise BufferIndexError(f"{what} must hold integers, got a tensor of dtype {index.dtype}")
        return index.reshape(-1).to(device="cpu", dtype=torch.long)
    try:
        out = torch.as_tensor(index)
    except (TypeError, ValueError, RuntimeError) as err:
        raise BufferIndexError(f"{what} must be integers, got {type(index).__name__}: {err}") from None
    if out.dtype.is_floating_point or out.dtype == torch.bool:
        raise BufferIndexError(f"{what} must hold integers, got {index!r}")
    return out.reshape(-1).long()


class Storage(ABC):
    """Up to ``max_size`` rows of data, addressed by row index ``0 .. max_size - 1``.

    ``len(storage)`` is the number of rows holding data; ``storage[i]`` reads them.
    """

    def __init__(self, max_size: int) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise StorageError(f"{type(self).__name__}: max_size must be a positive int, got {max_size!r}")
        self.max_size = max_size
        self._len = 0
        self._cursor = 0
        #: Bumped on every write, so that samplers can cache what they derive from the data.
        self.version = 0

    # -- bookkeeping -------------------------------------------------------------------
    def __len__(self) -> int:
        return self._len

    @property
    def cursor(self) -> int:
        """Where a round-robin writer writes next."""
        return self._cursor

    def _mark_written(self, length: int, cursor: int) -> None:
        """Record a write (called by writers once the rows are in place)."""
        self._len = length
        self._cursor = cursor
        self.version += 1
        self._flush()

    def _flush(self) -> None:  # noqa: B027 - a hook; doing nothing is the default
        """Persist the bookkeeping (persistent storages override this)."""

    # -- reading and writing -----------------------------------------------------------
    def set(self, index: Any, data: Any) -> None:
        """Write the rows of ``data`` at the row indices ``index`` (one per row).

        Writers call this through their own ``add``/``extend``; use it directly only to
        overwrite rows. The length grows to cover the highest index written.
        """
        index = as_index(index)
        self._check_range(index, self.max_size, "set")
        rows = self._num_rows(data)
        if rows != index.numel():
            raise StorageError(f"set: {index.numel()} indices for {rows} rows of data")
        if rows == 0:
            return
        self._set(index, data)
        self._mark_written(max(self._len, int(index.max()) + 1), self._cursor)

    def get(self, index: torch.Tensor) -> Any:
        """The rows at ``index`` (a 1-D int64 tensor of valid rows), in one batch."""
        return self._get(index)

    def __getitem__(self, index: Any) -> Any:
        """``storage[i]`` (one row), ``storage[a:b]`` or ``storage[tensor]`` (rows)."""
        if isinstance(index, int) and not isinstance(index, bool):
            if not -self._len <= index < self._len:
                raise BufferIndexError(f"row {index} is out of range for a storage holding {self._len} rows")
            return self._get_one(index % self._len)
        if isinstance(index, slice):
            return self._get(torch.arange(self._len)[index])
        rows = as_index(index)
        self._check_range(rows, self._len, "index")
        return self._get(rows)

    def _check_range(self, index: torch.Tensor, bound: int, what: str) -> None:
        if index.numel() == 0:
            return
        low, high = torch.aminmax(index)
        if int(low) < 0 or int(high) >= bound:
            bad = index[(index < 0) | (index >= bound)][0]
            raise BufferIndexError(f"{what}: row {int(bad)} is out of range [0, {bound})")

    def empty(self) -> None:
        """Forget every row (the memory is kept)."""
        self._empty()
        self._mark_written(0, 0)

    # -- saving ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Contents and bookkeeping: tensors, ints, floats, strings, lists and dicts only."""
        return {"max_size": self.max_size, "len": self._len, "cursor": self._cursor, "data": self._state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (``max_size`` must match)."""
        if int(state["max_size"]) != self.max_size:
            raise StorageError(
                f"{type(self).__name__}: cannot load a state of max_size {state['max_size']} into a "
                f"storage of max_size {self.max_size}"
            )
        self._load_state(state["data"], int(state["len"]))
        self._mark_written(int(state["len"]), int(state["cursor"]))

    # -- for subclasses ----------------------------------------------------------------
    @abstractmethod
    def _num_rows(self, data: Any) -> int:
        """How many rows ``data`` holds (raises :class:`StorageError` for a wrong type)."""

    @abstractmethod
    def _set(self, index: torch.Tensor, data: Any, start: int | None = None) -> None:
        """Write the rows of ``data`` at ``index`` (validated, one index per row).

        ``start`` is a hint from round-robin writers: ``index`` is then the circular
        range ``start, start + 1, ...`` (modulo ``max_size``)."""

    @abstractmethod
    def _get(self, index: torch.Tensor) -> Any:
        """Read the rows at ``index``."""

    def _get_one(self, index: int) -> Any:
        return self._get(torch.tensor([index]))[0]

    @abstractmethod
    def _as_batch(self, item: Any) -> Any:
        """One item as a batch of one row."""

    @abstractmethod
    def _tail(self, data: Any, rows: int) -> Any:
        """The last ``rows`` rows of ``data``."""

    @abstractmethod
    def _empty(self) -> None: ...

    @abstractmethod
    def _state(self) -> Any: ...

    @abstractmethod
    def _load_state(self, data: Any, length: int) -> None: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_size={self.max_size}, len={self._len})"
