"""Storages that keep rows in preallocated tensors.

The small leaves of a row are packed side by side, one buffer per dtype (see
:mod:`~rlkernel.data.storages.packing`); each leaf is a view into its buffer. A write of
consecutive rows is one ``torch.cat`` into each shared buffer (``index_copy_`` per leaf
for scattered rows), a read one ``index_select`` per buffer and one
``split_with_sizes_copy`` per shared buffer; the layout check on a write is a single
walk over the batch's leaves (see :class:`Layout`).
"""

from __future__ import annotations

from typing import Any

import torch

from rlkernel.data.errors import StorageError
from rlkernel.data.storages.base import Storage
from rlkernel.data.storages.layout import Layout, num_rows
from rlkernel.data.storages.packing import Packing

__all__ = ["LazyTensorStorage", "TensorStorage"]


class TensorStorage(Storage):
    """Base of the tensor storages: rows kept in one tensor per leaf.

    The buffers are allocated by :meth:`_allocate` from the :class:`Layout` of the first
    batch written (subclasses choose where: RAM, a device, memory-mapped files). Every
    later batch must have the same keys, row shapes and dtypes.
    """

    def __init__(self, max_size: int, device: Any = None) -> None:
        super().__init__(max_size)
        self.device = torch.device(device) if device is not None else None
        self.layout: Layout | None = None
        self._packing: Packing | None = None
        self._buffers: list[torch.Tensor] = []
        self._leaves: list[torch.Tensor] = []

    # -- allocation --------------------------------------------------------------------
    def _allocate(self, layout: Layout, packing: Packing, device: torch.device) -> list[torch.Tensor]:
        """The buffers of ``packing`` for ``max_size`` rows."""
        return packing.allocate(self.max_size, device)

    def _init_layout(self, layout: Layout, device: torch.device, groups: Any = None) -> None:
        packing = Packing(layout, groups)
        self._buffers = self._allocate(layout, packing, device)
        self._leaves = packing.views(self._buffers)
        self._packing = packing
        self.layout = layout

    @property
    def is_allocated(self) -> bool:
        """Whether the first write has fixed the layout and allocated the rows."""
        return self.layout is not None

    def column(self, key: Any) -> torch.Tensor:
        """All ``max_size`` rows of one leaf (a view, not a copy; rows past ``len`` are
        unspecified). ``key`` is a string or a tuple; ``()`` for a bare-tensor storage."""
        if self.layout is None:
            raise StorageError(f"{type(self).__name__} holds no data yet: nothing has key {key!r}")
        return self._leaves[self.layout.position(key)]

    # -- Storage implementation --------------------------------------------------------
    def _num_rows(self, data: Any) -> int:
        return num_rows(data)

    def _set(self, index: torch.Tensor, data: Any, start: int | None = None) -> None:
        layout = self.layout
        if layout is None:
            layout = Layout.of(data)
            first = data if isinstance(data, torch.Tensor) else layout.leaves(data)[0]
            self._init_layout(layout, self.device or first.device)
        # stored data is data: a value that carries a graph is stored without it (else the
        # whole storage would join the graph and every sample would carry a grad_fn)
        leaves = [leaf.detach() if leaf.requires_grad else leaf for leaf in layout.leaves(data)]
        if start is not None:
            # index is the circular range start, start + 1, ...: one or two slice copies
            # (a slice copy is several times faster than index_copy_).
            rows = index.numel()
            end = start + rows
            if end <= self.max_size:
                assert self._packing is not None
                self._packing.write(self._buffers, self._leaves, leaves, start, end)
                return
            head = self.max_size - start
            for dst, src in zip(self._leaves, leaves):
                dst[start:].copy_(src[:head])
                dst[: rows - head].copy_(src[head:])
            return
        target = self._leaves[0].device
        if index.device != target:
            index = index.to(target)
        for dst, src in zip(self._leaves, leaves):
            dst.index_copy_(0, index, src if src.device == target else src.to(target))

    def _get(self, index: torch.Tensor) -> Any:
        if self.layout is None or self._packing is None:
            raise StorageError(f"{type(self).__name__} holds no data yet")
        if self._buffers[0].device != index.device:
            index = index.to(self._buffers[0].device)
        leaves = self._packing.gather(self._buffers, index)
        return self.layout.assemble(leaves, index.numel(), self.device)

    def _get_one(self, index: int) -> Any:
        assert self.layout is not None
        leaves = [leaf[index] for leaf in self._leaves]
        if not self.layout.is_tensordict:
            return leaves[0]
        out = self.layout.assemble([leaf.unsqueeze(0) for leaf in leaves], 1, self.device)
        return out[0]

    def _as_batch(self, item: Any) -> Any:
        if not isinstance(item, torch.Tensor) and not hasattr(item, "unsqueeze"):
            raise StorageError(f"{type(self).__name__} holds tensors or TensorDicts, got {type(item).__name__}")
        return item.unsqueeze(0)

    def _tail(self, data: Any, rows: int) -> Any:
        return data[-rows:]

    def _empty(self) -> None:
        """Nothing to clear: the rows are kept, and so is the layout."""

    def _state(self) -> dict[str, Any]:
        if self.layout is None:
            return {"layout": None, "leaves": []}
        return {
            "layout": self.layout.to_state(),
            "leaves": [leaf[: self._len].to("cpu", copy=True) for leaf in self._leaves],
        }

    def _load_state(self, data: dict[str, Any], length: int) -> None:
        if data["layout"] is None:
            if length:
                raise StorageError("a storage state without layout cannot hold rows")
            return
        layout = Layout.from_state(data["layout"])
        if self.layout != layout:
            self._init_layout(layout, self.device or torch.device("cpu"))
        for dst, src in zip(self._leaves, data["leaves"]):
            if src.shape[0] != length:
                raise StorageError(f"the saved leaves hold {src.shape[0]} rows, the saved length is {length}")
            dst[:length].copy_(src)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_size={self.max_size}, len={self._len}, layout={self.layout})"


class LazyTensorStorage(TensorStorage):
    """Rows in RAM (or on ``device``), allocated on the first write from its layout.

    ``LazyTensorStorage(max_size, device=None)``: the first batch (a TensorDict or a
    tensor, rows along dimension 0) fixes the keys, row shapes and dtypes; ``device=None``
    keeps the first batch's device.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from rlkernel.data import ReplayBuffer
    >>> rb = ReplayBuffer(storage=LazyTensorStorage(100))
    >>> rb.extend(TensorDict({"obs": torch.zeros(10, 3)}, [10])).tolist()[:3]
    [0, 1, 2]
    >>> rb.sample(4)["obs"].shape
    torch.Size([4, 3])
    """
