"""The replay buffer: a storage, a sampler and a writer, composed."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch
from tensordict import is_tensor_collection

from rlkernel.data import persistence
from rlkernel.data.errors import BufferError, EmptyBufferError
from rlkernel.data.replay_buffers.prefetch import Prefetcher
from rlkernel.data.samplers.base import RandomSampler, Sampler, check_batch_size
from rlkernel.data.samplers.prioritized import PrioritizedSampler
from rlkernel.data.storages.base import Storage
from rlkernel.data.storages.list_storage import ListStorage
from rlkernel.data.writers.base import RoundRobinWriter, Writer

__all__ = ["ReplayBuffer", "default_collate"]

_FORMAT = "rlkernel.ReplayBuffer"


def default_collate(items: Any) -> Any:
    """A list of sampled items -> a batch: stacked tensors or TensorDicts, a tensor of
    numbers, or the list itself. Non-lists (tensor storages' batches) pass through."""
    if not isinstance(items, list) or not items:
        return items
    first = items[0]
    if isinstance(first, torch.Tensor) or is_tensor_collection(first):
        return torch.stack(items)
    if all(isinstance(x, bool | int | float) for x in items):
        return torch.tensor(items)
    return items


def _identity(data: Any) -> Any:
    return data


class ReplayBuffer:
    """A replay buffer composed of a :class:`Storage`, a :class:`Sampler` and a :class:`Writer`.

    ``ReplayBuffer(*, storage=None, sampler=None, writer=None, batch_size=None,
    transform=None, prefetch=None, collate_fn=None)``; the defaults are
    ``ListStorage(1000)``, :class:`RandomSampler` and :class:`RoundRobinWriter`.

    * ``extend(data)`` writes a batch of rows and returns their indices, ``add(item)``
      one item; ``sample(batch_size=None, return_info=False)`` draws a batch (``info``
      holds ``"index"`` and the sampler's extras, e.g. ``"_weight"``).
    * ``collate_fn`` turns the rows read from the storage into a batch (default: stack
      a list storage's items, pass tensor storages' batches through); ``transform``,
      any callable taking and returning the batch, is applied to every sampled batch.
    * Iterating (``for batch in rb``) draws ``batch_size`` batches: one epoch with a
      sampler that runs out (:class:`SamplerWithoutReplacement`), forever with one that
      does not (as in TorchRL: stop with ``break`` or ``itertools.islice``).
    * ``prefetch=N`` keeps N batches of ``batch_size`` drawn ahead by a daemon thread
      (see :mod:`~rlkernel.data.replay_buffers.prefetch` for its consistency rules);
      ``close()`` (or leaving a ``with`` block) stops it.
    * ``state_dict()``/``load_state_dict()`` hold only tensors, numbers, strings, lists
      and dicts (``torch.load(..., weights_only=True)`` reads them); ``dumps(path)`` /
      ``loads(path)`` write and read a folder of memory-mapped tensors and JSON, no pickle.

    >>> import torch
    >>> from rlkernel.data import LazyTensorStorage
    >>> rb = ReplayBuffer(storage=LazyTensorStorage(100), batch_size=4)
    >>> rb.extend(torch.arange(10.0)).tolist()[:4]
    [0, 1, 2, 3]
    >>> len(rb), rb.sample().shape
    (10, torch.Size([4]))
    """

    def __init__(
        self,
        *,
        storage: Storage | None = None,
        sampler: Sampler | None = None,
        writer: Writer | None = None,
        batch_size: int | None = None,
        transform: Callable[[Any], Any] | None = None,
        prefetch: int | None = None,
        collate_fn: Callable[[Any], Any] | None = None,
    ) -> None:
        storage = ListStorage(1000) if storage is None else storage
        sampler = RandomSampler() if sampler is None else sampler
        writer = RoundRobinWriter() if writer is None else writer
        for name, value, kind in (
            ("storage", storage, Storage),
            ("sampler", sampler, Sampler),
            ("writer", writer, Writer),
        ):
            if not isinstance(value, kind):
                raise BufferError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
        for name, fn in (("transform", transform), ("collate_fn", collate_fn)):
            if fn is not None and not callable(fn):
                raise BufferError(f"{name} must be callable, got {type(fn).__name__}")
        if isinstance(sampler, PrioritizedSampler) and sampler.max_capacity < storage.max_size:
            raise BufferError(
                f"the PrioritizedSampler's max_capacity ({sampler.max_capacity}) is smaller than the "
                f"storage's max_size ({storage.max_size})"
            )
        self._storage, self._sampler, self._writer = storage, sampler, writer
        writer.register_storage(storage)
        self._batch_size = None if batch_size is None else check_batch_size(batch_size)
        self._transform = transform
        if collate_fn is None:
            collate_fn = default_collate if isinstance(storage, ListStorage) else _identity
        self._collate_fn = collate_fn
        self._lock = threading.RLock()
        self._prefetcher: Prefetcher | None = None
        if prefetch:
            if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
                raise BufferError(f"prefetch must be a non-negative int, got {prefetch!r}")
            if self._batch_size is None:
                raise BufferError("prefetch needs the buffer's batch_size (pass batch_size=... too)")
            self._prefetcher = Prefetcher(self, prefetch, self._batch_size)

    # -- parts -------------------------------------------------------------------------
    @property
    def storage(self) -> Storage:
        """Where the rows are kept."""
        return self._storage

    @property
    def sampler(self) -> Sampler:
        """Which rows go into each batch."""
        return self._sampler

    @property
    def writer(self) -> Writer:
        """Where new rows go."""
        return self._writer

    @property
    def batch_size(self) -> int | None:
        """The default batch size of :meth:`sample` and of iteration."""
        return self._batch_size

    @property
    def transform(self) -> Callable[[Any], Any] | None:
        """What is applied to every sampled batch (None: nothing)."""
        return self._transform

    def __len__(self) -> int:
        return len(self._storage)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(storage={self._storage!r}, sampler={self._sampler!r}, "
            f"writer={self._writer!r}, batch_size={self._batch_size})"
        )

    # -- writing -----------------------------------------------------------------------
    def _before_write(self) -> None:
        if self._prefetcher is not None:
            self._prefetcher.invalidate(self._sampler)

    def extend(self, data: Any) -> torch.Tensor:
        """Write a batch of rows (a TensorDict or tensor with rows on dimension 0, or a
        list of items for a list storage); return the row index of each row written."""
        with self._lock:
            self._before_write()
            index = self._writer.extend(data)
            self._sampler.extend(index)
        return index

    def add(self, item: Any) -> int:
        """Write one item; return its row (``-1`` if the writer did not keep it)."""
        with self._lock:
            self._before_write()
            index = self._writer.extend(self._storage._as_batch(item))
            self._sampler.extend(index)
        return int(index[0]) if index.numel() else -1

    def update_priority(self, index: Any, priority: Any) -> None:
        """Set the priorities of rows (prioritized samplers only); see
        :meth:`PrioritizedSampler.update_priority`. Indices must be rows holding data."""
        sampler = self._sampler
        if not isinstance(sampler, PrioritizedSampler):
            raise BufferError(f"update_priority needs a PrioritizedSampler; this buffer samples with {sampler!r}")
        with self._lock:
            sampler.update_priority(index, priority, bound=len(self._storage))

    def empty(self) -> None:
        """Forget every row, the sampler's state and the writer's state."""
        with self._lock:
            self._before_write()
            self._storage.empty()
            self._sampler.empty()
            self._writer.empty()

    # -- reading -----------------------------------------------------------------------
    def sample(self, batch_size: int | None = None, return_info: bool = False) -> Any:
        """Draw a batch of ``batch_size`` rows (default: the buffer's ``batch_size``).

        Returns the batch, or ``(batch, info)`` with ``return_info=True``. Raises
        :class:`EmptyBufferError` on an empty buffer and :class:`BufferError` when no
        batch size is known.
        """
        if batch_size is None:
            if self._batch_size is None:
                raise BufferError("sample() needs a batch_size: pass it here or to the buffer's constructor")
            batch_size = self._batch_size
        else:
            batch_size = check_batch_size(batch_size)
        data, info, _ = self._next_batch(batch_size)
        return (data, info) if return_info else data

    def _next_batch(self, batch_size: int) -> tuple[Any, dict[Any, Any], bool]:
        prefetcher = self._prefetcher
        if prefetcher is not None and batch_size == prefetcher.batch_size:
            return prefetcher.get(self)
        with self._lock:
            data, info, ran_out = self._draw(batch_size)
        return self._finish(data, info), info, ran_out

    def _draw(self, batch_size: int) -> tuple[Any, dict[Any, Any], bool]:
        """Sample indices and read the rows (the caller holds the lock)."""
        if not len(self._storage):
            raise EmptyBufferError(f"cannot sample from an empty {type(self).__name__}: extend it first")
        index, info = self._sampler.sample(self._storage, batch_size)
        info["index"] = index
        return self._storage.get(index), info, self._sampler.ran_out

    def _finish(self, data: Any, info: dict[Any, Any]) -> Any:
        """Collate and transform a batch read from the storage."""
        data = self._collate_fn(data)
        if self._transform is not None:
            data = self._transform(data)
            if data is None:
                raise BufferError(f"the transform {self._transform!r} returned None instead of the batch")
        return data

    def __iter__(self) -> Iterator[Any]:
        if self._batch_size is None:
            raise BufferError(
                "iterating over a replay buffer needs its batch_size (pass batch_size=... at construction)"
            )
        if not len(self._storage):
            raise EmptyBufferError(f"cannot iterate over an empty {type(self).__name__}")
        return self._iterate(self._batch_size)

    def _iterate(self, batch_size: int) -> Iterator[Any]:
        finite = not self._sampler.infinite
        while True:
            data, _, ran_out = self._next_batch(batch_size)
            yield data
            if finite and ran_out:
                return

    def __getitem__(self, index: Any) -> Any:
        """Rows of the storage by row index: ``rb[3]`` (one item), ``rb[2:5]`` or
        ``rb[tensor]`` (a batch, collated like a sample; no transform is applied)."""
        with self._lock:
            rows = self._storage[index]
        if isinstance(index, int):
            return rows
        return self._collate_fn(rows)

    # -- prefetch ----------------------------------------------------------------------
    def close(self) -> None:
        """Stop the prefetch thread, if any (sampling goes on without it)."""
        prefetcher = self._prefetcher
        if prefetcher is not None:
            with self._lock:
                prefetcher.invalidate(self._sampler)
                self._prefetcher = None
            prefetcher.close()

    def __enter__(self) -> ReplayBuffer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- saving ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Contents, writer cursor, sampler state and priorities, as tensors, numbers,
        strings, lists and dicts (``torch.load(..., weights_only=True)`` can read it)."""
        with self._lock:
            self._before_write()  # hand back prefetched batches: the state is what was delivered
            return {
                "format": _FORMAT,
                "class": type(self).__name__,
                "storage": self._storage.state_dict(),
                "sampler": self._sampler.state_dict(),
                "writer": self._writer.state_dict(),
            }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (into parts of the same kinds and sizes)."""
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise BufferError("load_state_dict expects a dict returned by ReplayBuffer.state_dict()")
        with self._lock:
            self._before_write()
            self._storage.load_state_dict(state["storage"])
            self._sampler.load_state_dict(state["sampler"])
            self._writer.load_state_dict(state["writer"])

    def dumps(self, path: str | os.PathLike[str]) -> None:
        """Save the buffer's state under the folder ``path`` (memory-mapped tensors and
        JSON; no pickle). :meth:`loads` restores it exactly."""
        persistence.save_state(path, self.state_dict())

    def loads(self, path: str | os.PathLike[str]) -> None:
        """Restore a state written by :meth:`dumps` (never unpickles anything)."""
        self.load_state_dict(persistence.load_state(path))
