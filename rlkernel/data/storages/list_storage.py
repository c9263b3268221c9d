"""A storage of arbitrary Python objects, one per row, in a list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict, is_tensor_collection

from rlkernel.data.errors import StorageError
from rlkernel.data.storages.base import Storage

__all__ = ["ListStorage"]

_SCALARS = (bool, int, float, str, type(None))


def _to_state(item: Any, row: int) -> Any:
    """An item as tensors, numbers, strings, lists and dicts (no pickle needed)."""
    if isinstance(item, (torch.Tensor, *_SCALARS)):
        return item
    if is_tensor_collection(item):
        return {"__tensordict__": item.to_dict(), "batch_size": list(item.batch_size)}
    if isinstance(item, dict) and all(isinstance(k, str) for k in item) and "__tensordict__" not in item:
        return {k: _to_state(v, row) for k, v in item.items()}
    if isinstance(item, list | tuple):
        return [_to_state(v, row) for v in item]
    raise StorageError(
        f"ListStorage row {row} holds a {type(item).__name__}, which cannot be saved without pickle; "
        "only tensors, TensorDicts, numbers, strings, None, lists and dicts with string keys can"
    )


def _from_state(item: Any) -> Any:
    if isinstance(item, dict):
        if "__tensordict__" in item:
            return TensorDict(item["__tensordict__"], batch_size=item["batch_size"])
        return {k: _from_state(v) for k, v in item.items()}
    if isinstance(item, list):
        return [_from_state(v) for v in item]
    return item


class ListStorage(Storage):
    """Up to ``max_size`` arbitrary Python objects, one per row.

    ``extend`` takes a list (or tuple) of items, or a tensor or TensorDict whose rows are
    the items; a sampled batch is a list, which the buffer's ``collate_fn`` stacks
    (tensors and TensorDicts) or keeps as is.

    >>> from rlkernel.data import ReplayBuffer
    >>> rb = ReplayBuffer(storage=ListStorage(10))
    >>> rb.extend(["a", "b", "c"]).tolist()
    [0, 1, 2]
    >>> rb[1]
    'b'
    """

    def __init__(self, max_size: int = 1000) -> None:
        super().__init__(max_size)
        self._items: list[Any] = []

    def _num_rows(self, data: Any) -> int:
        if isinstance(data, list | tuple):
            return len(data)
        if isinstance(data, torch.Tensor) and data.ndim:
            return data.shape[0]
        if is_tensor_collection(data) and data.batch_dims:
            return data.batch_size[0]
        raise StorageError(
            f"ListStorage.extend takes a list or tuple of items (or a tensor / TensorDict whose rows "
            f"are the items), got {type(data).__name__}; use add() for a single item"
        )

    def _set(self, index: torch.Tensor, data: Any, start: int | None = None) -> None:
        items = self._items
        rows: Sequence[Any] = data if isinstance(data, list | tuple) else data.unbind(0)
        for i, item in zip(index.tolist(), rows):
            if i >= len(items):
                items.extend([None] * (i + 1 - len(items)))
            items[i] = item

    def _get(self, index: torch.Tensor) -> list[Any]:
        items = self._items
        return [items[i] for i in index.tolist()]

    def _get_one(self, index: int) -> Any:
        return self._items[index]

    def _as_batch(self, item: Any) -> list[Any]:
        return [item]

    def _tail(self, data: Any, rows: int) -> Any:
        return data[-rows:]

    def _empty(self) -> None:
        self._items = []

    def _state(self) -> list[Any]:
        return [_to_state(item, row) for row, item in enumerate(self._items[: self._len])]

    def _load_state(self, data: Any, length: int) -> None:
        if len(data) != length:
            raise StorageError(f"the saved state holds {len(data)} items, its length says {length}")
        self._items = [_from_state(item) for item in data]
