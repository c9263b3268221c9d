"""A writer that keeps the rows ranked highest by a key (e.g. the best episodes)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import is_tensor_collection

from rlkernel.data.errors import BufferError, StorageError
from rlkernel.data.storages.layout import key_name
from rlkernel.data.storages.tensor_storage import TensorStorage
from rlkernel.data.writers.base import Writer

__all__ = ["TensorDictMaxValueWriter"]

_REDUCTIONS = {
    "sum": lambda v: v.sum(1),
    "max": lambda v: v.amax(1),
    "min": lambda v: v.amin(1),
    "mean": lambda v: v.mean(1),
    "median": lambda v: v.median(1).values,
}


class TensorDictMaxValueWriter(Writer):
    """Keeps the ``max_size`` rows with the highest rank: the value at ``rank_key``
    (default ``("next", "reward")``), reduced to one number per row with ``reduction``
    (``"sum"``, ``"max"``, ``"min"``, ``"mean"`` or ``"median"``).

    Free rows are filled first; once the storage is full a new row replaces the lowest
    ranked stored row if it ranks strictly higher (ties keep the stored row).
    ``extend`` returns the rows written, in the order of the items kept (items ranked
    too low are not written); ``add`` returns the row, or ``-1`` if the item was not kept.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from rlkernel.data import TensorDictReplayBuffer, LazyTensorStorage
    >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(2), writer=TensorDictMaxValueWriter(rank_key="r"))
    >>> _ = rb.extend(TensorDict({"r": torch.tensor([1.0, 5.0, 3.0])}, [3]))
    >>> sorted(rb[:]["r"].tolist())
    [3.0, 5.0]
    """

    def __init__(self, rank_key: Any = None, reduction: str = "sum") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise BufferError(
                f"TensorDictMaxValueWriter: reduction must be one of {sorted(_REDUCTIONS)}, got {reduction!r}"
            )
        key = ("next", "reward") if rank_key is None else rank_key
        self.rank_key = (key,) if isinstance(key, str) else tuple(key)
        self.reduction = reduction
        self._ranks: torch.Tensor | None = None
        self._seen_version = -1

    def register_storage(self, storage: Any) -> None:
        """Bind to a tensor storage (the ranks are read from its rows)."""
        if not isinstance(storage, TensorStorage):
            raise BufferError(f"TensorDictMaxValueWriter needs a tensor storage, got {type(storage).__name__}")
        super().register_storage(storage)

    def _rank(self, values: torch.Tensor, rows: int) -> torch.Tensor:
        return _REDUCTIONS[self.reduction](values.reshape(rows, -1).double())

    def _stored_ranks(self) -> torch.Tensor:
        """One rank per storage row (-inf where empty), rebuilt from the storage whenever
        it was written by someone else (a reopened file, a loaded state)."""
        storage = self.storage
        assert isinstance(storage, TensorStorage)
        if self._ranks is None or self._seen_version != storage.version:
            ranks = torch.full((storage.max_size,), -torch.inf, dtype=torch.float64)
            if len(storage):
                ranks[: len(storage)] = self._rank(storage.column(self.rank_key)[: len(storage)].cpu(), len(storage))
            self._ranks = ranks
        return self._ranks

    def extend(self, data: Any) -> torch.Tensor:
        """Write the rows that rank high enough; return the rows written."""
        storage = self.storage
        if not is_tensor_collection(data):
            raise StorageError(f"TensorDictMaxValueWriter writes TensorDicts, got {type(data).__name__}")
        n = storage._num_rows(data)
        if n == 0:
            return torch.zeros(0, dtype=torch.long)
        value = data.get(self.rank_key, None)
        if value is None:
            raise StorageError(f"TensorDictMaxValueWriter: the data has no rank key {key_name(self.rank_key)}")
        new = self._rank(value.detach().cpu(), n)
        ranks = self._stored_ranks()
        length, size = len(storage), storage.max_size
        order = torch.argsort(new, descending=True, stable=True)
        free = size - length
        into_free = order[:free].sort().values  # free rows are filled in input order
        items, rows = [into_free], [torch.arange(length, length + into_free.numel())]
        rest = order[free:]
        if rest.numel() and length:
            k = min(rest.numel(), length)
            lowest, lowest_rows = torch.topk(ranks[:length], k, largest=False, sorted=True)
            # rest is sorted down, lowest up: the wins form a prefix.
            count = int((new[rest[:k]] > lowest).sum())
            items.append(rest[:count])
            rows.append(lowest_rows[:count])
        item_index, row_index = torch.cat(items), torch.cat(rows)
        if item_index.numel() == 0:
            return row_index
        item_index, perm = torch.sort(item_index)
        row_index = row_index[perm]
        kept = data if item_index.numel() == n else data[item_index]
        storage._set(row_index, kept)
        ranks[row_index] = new[item_index]
        grown = length + min(free, n)
        storage._mark_written(grown, grown % size)
        self._seen_version = storage.version
        return row_index

    def add(self, item: Any) -> int:
        """Write one item if it ranks high enough; return its row or -1."""
        index = self.extend(self.storage._as_batch(item))
        return int(index[0]) if index.numel() else -1

    def empty(self) -> None:
        """Forget the ranks."""
        self._ranks = None
        self._seen_version = -1

    def __repr__(self) -> str:
        return f"TensorDictMaxValueWriter(rank_key={self.rank_key}, reduction={self.reduction!r})"
