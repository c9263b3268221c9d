"""The writer contract and the round-robin writer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from rlkernel.data.errors import BufferError
from rlkernel.data.storages.base import Storage

__all__ = ["RoundRobinWriter", "Writer"]


class Writer(ABC):
    """Decides where new rows go in the storage and writes them.

    ``extend(data) -> index`` (a 1-D int64 tensor of the rows written) and
    ``add(item) -> int``. A writer is bound to one storage by the buffer
    (:meth:`register_storage`).
    """

    def __init__(self) -> None:
        self._storage: Storage | None = None

    def register_storage(self, storage: Storage) -> None:
        """Bind this writer to ``storage`` (done by the replay buffer)."""
        self._storage = storage

    @property
    def storage(self) -> Storage:
        """The storage this writer writes to (set by the buffer)."""
        if self._storage is None:
            raise BufferError(f"{type(self).__name__} has no storage: pass it to a replay buffer first")
        return self._storage

    @abstractmethod
    def extend(self, data: Any) -> torch.Tensor:
        """Write a batch of rows; return the row index of each."""

    def add(self, item: Any) -> int:
        """Write one item; return its row index."""
        return int(self.extend(self.storage._as_batch(item))[0])

    def empty(self) -> None:  # noqa: B027 - a hook; doing nothing is the default
        """The storage was emptied."""

    def state_dict(self) -> dict[str, Any]:
        """Writer state beyond the storage's cursor (tensors, numbers, strings, lists, dicts)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - a no-op hook
        """Restore what :meth:`state_dict` returned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RoundRobinWriter(Writer):
    """Writes rows in a circle: from the storage's cursor on, wrapping past ``max_size``.

    A batch larger than the storage keeps only its last ``max_size`` rows (the earlier
    ones would be overwritten at once); the index returned still has one entry per row.

    >>> import torch
    >>> from rlkernel.data import ReplayBuffer, LazyTensorStorage
    >>> rb = ReplayBuffer(storage=LazyTensorStorage(4), writer=RoundRobinWriter())
    >>> rb.extend(torch.arange(3)).tolist(), rb.extend(torch.arange(3)).tolist()
    ([0, 1, 2], [3, 0, 1])
    """

    def extend(self, data: Any) -> torch.Tensor:
        """Write the rows from the cursor on; return their indices."""
        storage = self.storage
        rows = storage._num_rows(data)
        if rows == 0:
            return torch.zeros(0, dtype=torch.long)
        size, cursor = storage.max_size, storage.cursor
        end = cursor + rows
        index = torch.arange(cursor, end)
        if end > size:
            index.remainder_(size)
        if rows > size:
            storage._set(index[-size:], storage._tail(data, size), start=(end - size) % size)
        else:
            storage._set(index, data, start=cursor)
        storage._mark_written(size if end >= size else max(len(storage), end), end % size)
        return index
