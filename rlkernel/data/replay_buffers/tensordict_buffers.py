"""Replay buffers for TensorDicts, and the prioritized variants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase, is_tensor_collection

from rlkernel.data.errors import BufferError, StorageError
from rlkernel.data.replay_buffers.replay_buffer import ReplayBuffer
from rlkernel.data.samplers.prioritized import PrioritizedSampler, check_priorities
from rlkernel.data.storages.base import Storage
from rlkernel.data.storages.list_storage import ListStorage

__all__ = ["PrioritizedReplayBuffer", "TensorDictPrioritizedReplayBuffer", "TensorDictReplayBuffer"]


class TensorDictReplayBuffer(ReplayBuffer):
    """A :class:`ReplayBuffer` of TensorDicts: a sampled batch is a TensorDict holding the
    rows, their ``"index"``, and the sampler's per-row extras (``"_weight"`` for a
    prioritized sampler, the slice-end flags of a :class:`SliceSampler`).

    Same arguments as :class:`ReplayBuffer`.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from rlkernel.data import LazyTensorStorage
    >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(100), batch_size=8)
    >>> _ = rb.extend(TensorDict({"obs": torch.randn(20, 3)}, [20]))
    >>> sorted(rb.sample().keys())
    ['index', 'obs']
    """

    def extend(self, data: Any) -> torch.Tensor:
        """Write the rows of a TensorDict (rows along its first batch dimension)."""
        if not isinstance(data, TensorDictBase):
            raise StorageError(f"{type(self).__name__}.extend takes a TensorDict, got {type(data).__name__}")
        return super().extend(data)

    def add(self, item: Any) -> int:
        """Write one TensorDict (batch size ``[]``, or the row batch shape)."""
        if not isinstance(item, TensorDictBase):
            raise StorageError(f"{type(self).__name__}.add takes a TensorDict, got {type(item).__name__}")
        return super().add(item)

    def _finish(self, data: Any, info: dict[Any, Any]) -> Any:
        data = self._collate_fn(data)
        if not is_tensor_collection(data):
            raise BufferError(f"{type(self).__name__} sampled a {type(data).__name__}, not a TensorDict")
        batch = data.batch_size
        rows, extra = batch[0], len(batch) - 1
        for key, value in info.items():
            if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == rows:
                if extra and value.shape[: len(batch)] != batch:  # rows of trajectories: one value per row
                    rest = value.shape[1:]
                    value = value.reshape(rows, *[1] * extra, *rest).expand(*batch, *rest)
                data.set(key, value)
        if self._transform is not None:
            data = self._transform(data)
            if data is None:
                raise BufferError(f"the transform {self._transform!r} returned None instead of the batch")
        return data


def _prioritized_sampler(
    storage: Storage | None, alpha: float, beta: float, eps: float, dtype: torch.dtype
) -> tuple[Storage, PrioritizedSampler]:
    storage = ListStorage(1000) if storage is None else storage
    if not isinstance(storage, Storage):
        raise BufferError(f"storage must be a Storage, got {type(storage).__name__}")
    return storage, PrioritizedSampler(storage.max_size, alpha, beta, eps, dtype)


class PrioritizedReplayBuffer(ReplayBuffer):
    """A :class:`ReplayBuffer` with a :class:`PrioritizedSampler` sized to its storage.

    ``PrioritizedReplayBuffer(*, alpha, beta, eps=1e-8, dtype=torch.float32,
    storage=None, writer=None, batch_size=None, transform=None, prefetch=None,
    collate_fn=None)``. ``sample(return_info=True)`` gives ``info["_weight"]`` (the
    importance weights) and ``info["index"]``, to pass to :meth:`update_priority`.

    >>> import torch
    >>> from rlkernel.data import LazyTensorStorage
    >>> rb = PrioritizedReplayBuffer(alpha=0.7, beta=0.5, storage=LazyTensorStorage(100))
    >>> _ = rb.extend(torch.randn(10, 3))
    >>> data, info = rb.sample(4, return_info=True)
    >>> rb.update_priority(info["index"], data.abs().sum(-1))
    """

    def __init__(
        self,
        *,
        alpha: float,
        beta: float,
        eps: float = 1e-8,
        dtype: torch.dtype = torch.float32,
        storage: Storage | None = None,
        writer: Any = None,
        batch_size: int | None = None,
        transform: Callable[[Any], Any] | None = None,
        prefetch: int | None = None,
        collate_fn: Callable[[Any], Any] | None = None,
    ) -> None:
        storage, sampler = _prioritized_sampler(storage, alpha, beta, eps, dtype)
        super().__init__(
            storage=storage,
            sampler=sampler,
            writer=writer,
            batch_size=batch_size,
            transform=transform,
            prefetch=prefetch,
            collate_fn=collate_fn,
        )


class TensorDictPrioritizedReplayBuffer(TensorDictReplayBuffer):
    """A :class:`TensorDictReplayBuffer` with a :class:`PrioritizedSampler`.

    ``TensorDictPrioritizedReplayBuffer(*, alpha, beta, priority_key="td_error",
    eps=1e-8, dtype=torch.float32, storage=None, ...)``. Rows written with a
    ``priority_key`` entry get that priority; :meth:`update_tensordict_priority` reads
    ``"index"`` and ``priority_key`` from a sampled batch (after the loss wrote it).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from rlkernel.data import LazyTensorStorage
    >>> rb = TensorDictPrioritizedReplayBuffer(alpha=0.7, beta=0.5, storage=LazyTensorStorage(100))
    >>> _ = rb.extend(TensorDict({"obs": torch.randn(10, 3)}, [10]))
    >>> batch = rb.sample(4)
    >>> batch["td_error"] = batch["obs"].norm(dim=-1)
    >>> rb.update_tensordict_priority(batch)
    >>> batch["_weight"].shape
    torch.Size([4])
    """

    def __init__(
        self,
        *,
        alpha: float,
        beta: float,
        priority_key: Any = "td_error",
        eps: float = 1e-8,
        dtype: torch.dtype = torch.float32,
        storage: Storage | None = None,
        writer: Any = None,
        batch_size: int | None = None,
        transform: Callable[[Any], Any] | None = None,
        prefetch: int | None = None,
        collate_fn: Callable[[Any], Any] | None = None,
    ) -> None:
        storage, sampler = _prioritized_sampler(storage, alpha, beta, eps, dtype)
        self.priority_key = priority_key
        super().__init__(
            storage=storage,
            sampler=sampler,
            writer=writer,
            batch_size=batch_size,
            transform=transform,
            prefetch=prefetch,
            collate_fn=collate_fn,
        )

    def extend(self, data: Any) -> torch.Tensor:
        """Write rows; those carrying ``priority_key`` get it as their priority (checked
        before anything is written)."""
        priority = data.get(self.priority_key, None) if isinstance(data, TensorDictBase) else None
        if priority is not None:
            rows = data.batch_size[0] if data.batch_dims else 0
            flat = torch.as_tensor(priority).detach().reshape(rows, -1).double().cpu()
            if rows and flat.shape[1]:
                check_priorities(flat.amin(1))  # a negative or NaN entry in a row
                check_priorities(flat.amax(1))  # an infinite one
        index = super().extend(data)
        if priority is not None and index.numel() and index.numel() == data.batch_size[0]:
            self.update_priority(index, priority)
        return index

    def update_tensordict_priority(self, data: TensorDictBase) -> None:
        """Set the priorities of the rows ``data["index"]`` to ``data[priority_key]``."""
        if not isinstance(data, TensorDictBase):
            raise BufferError(f"update_tensordict_priority takes a TensorDict, got {type(data).__name__}")
        for key in ("index", self.priority_key):
            if data.get(key, None) is None:
                raise BufferError(f"update_tensordict_priority: the TensorDict has no {key!r} entry")
        self.update_priority(data.get("index"), data.get(self.priority_key))
