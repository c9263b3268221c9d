"""Storages: where a replay buffer keeps its rows.

* :class:`ListStorage`: arbitrary Python objects;
* :class:`LazyTensorStorage`: tensors or TensorDicts in preallocated tensors (RAM or a device);
* :class:`LazyMemmapStorage`: the same in memory-mapped files, reopenable by a new process.
"""

from rlkernel.data.storages.base import Storage
from rlkernel.data.storages.layout import Layout
from rlkernel.data.storages.list_storage import ListStorage
from rlkernel.data.storages.memmap_storage import LazyMemmapStorage
from rlkernel.data.storages.tensor_storage import LazyTensorStorage, TensorStorage

__all__ = ["Layout", "LazyMemmapStorage", "LazyTensorStorage", "ListStorage", "Storage", "TensorStorage"]
