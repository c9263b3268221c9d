"""The sampler contract and the two simplest samplers (uniform, and without replacement)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from rlkernel.data.errors import BufferError, EmptyBufferError
from rlkernel.data.storages.base import Storage

__all__ = ["RandomSampler", "Sampler", "SamplerWithoutReplacement"]


def check_batch_size(batch_size: Any) -> int:
    """A positive int, or a :class:`BufferError` saying what was given."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise BufferError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


class Sampler(ABC):
    """Chooses the rows of each sampled batch.

    ``sample(storage, batch_size) -> (index, info)``: ``index`` a 1-D int64 tensor of row
    indices, ``info`` a dict of extra per-row tensors (e.g. ``"_weight"``) or flags.
    The buffer tells the sampler which rows it wrote (``extend``) and when it is emptied.
    ``infinite`` says whether the sampler can go on forever; finite ones set ``ran_out``
    when an epoch ends.
    """

    #: Whether the sampler never runs out (iterating over the buffer never ends).
    infinite: bool = True
    ran_out: bool = False

    def sample(self, storage: Storage, batch_size: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """Draw ``batch_size`` rows of ``storage``; raises :class:`EmptyBufferError` when it is empty."""
        if len(storage) == 0:
            raise EmptyBufferError(f"cannot sample from an empty storage ({type(storage).__name__})")
        return self._sample(storage, batch_size)

    @abstractmethod
    def _sample(self, storage: Storage, batch_size: int) -> tuple[torch.Tensor, dict[str, Any]]: ...

    def extend(self, index: torch.Tensor) -> None:  # noqa: B027 - a hook; doing nothing is the default
        """The rows ``index`` were (over)written."""

    def add(self, index: int) -> None:
        """The row ``index`` was (over)written."""
        self.extend(torch.tensor([index]))

    def mark_update(self, index: torch.Tensor) -> None:
        """TorchRL's name for :meth:`extend`."""
        self.extend(torch.as_tensor(index).reshape(-1))

    def empty(self) -> None:  # noqa: B027 - a hook; doing nothing is the default
        """The storage was emptied."""

    def _snapshot(self) -> Any:
        """A cheap token of the sampling position (prefetching rolls back to it)."""
        return None

    def _restore(self, snapshot: Any) -> None:  # noqa: B027 - a hook; doing nothing is the default
        """Go back to the position :meth:`_snapshot` returned."""

    def state_dict(self) -> dict[str, Any]:
        """What the sampler needs to continue where it was (no RNG state)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - a no-op hook
        """Restore what :meth:`state_dict` returned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RandomSampler(Sampler):
    """Uniform sampling with replacement: one ``torch.randint`` per batch.

    >>> import torch
    >>> from rlkernel.data import ReplayBuffer, LazyTensorStorage
    >>> rb = ReplayBuffer(storage=LazyTensorStorage(10), sampler=RandomSampler())
    >>> _ = rb.extend(torch.arange(10))
    >>> rb.sample(5).shape
    torch.Size([5])
    """

    def _sample(self, storage: Storage, batch_size: int) -> tuple[torch.Tensor, dict[str, Any]]:
        return torch.randint(len(storage), (batch_size,)), {}


class SamplerWithoutReplacement(Sampler):
    """Each row once per epoch, in random (``shuffle=True``) or storage order.

    An epoch covers the rows present when it starts; rows written meanwhile join the next
    one. The last batch of an epoch is shorter unless ``drop_last=True`` (which drops the
    rest instead). ``ran_out`` is True right after the last batch of an epoch; the next
    ``sample`` starts a new one. Iterating over a buffer with this sampler yields one epoch.

    >>> import torch
    >>> from rlkernel.data import ReplayBuffer, LazyTensorStorage
    >>> rb = ReplayBuffer(storage=LazyTensorStorage(10), sampler=SamplerWithoutReplacement(), batch_size=4)
    >>> _ = rb.extend(torch.arange(10))
    >>> sorted(torch.cat(list(rb)).tolist()) == list(range(10))
    True
    """

    infinite = False

    def __init__(self, drop_last: bool = False, shuffle: bool = True) -> None:
        self.drop_last = bool(drop_last)
        self.shuffle = bool(shuffle)
        self._queue: torch.Tensor | None = None
        self._epoch_len = 0
        self.ran_out = False

    def _new_epoch(self, n: int) -> None:
        self._queue = torch.randperm(n) if self.shuffle else torch.arange(n)
        self._epoch_len = n

    def _sample(self, storage: Storage, batch_size: int) -> tuple[torch.Tensor, dict[str, Any]]:
        n = len(storage)
        if self.drop_last and n < batch_size:
            raise BufferError(
                f"SamplerWithoutReplacement(drop_last=True) cannot make a batch of {batch_size} from {n} rows"
            )
        queue = self._queue
        if (
            queue is None
            or self._epoch_len > n
            or queue.numel() == 0
            or (self.drop_last and queue.numel() < batch_size)
        ):
            self._new_epoch(n)
            queue = self._queue
            assert queue is not None
        index, self._queue = queue[:batch_size], queue[batch_size:]
        left = self._queue.numel()
        self.ran_out = left == 0 or (self.drop_last and left < batch_size)
        return index, {}

    def empty(self) -> None:
        """Forget the epoch in progress."""
        self._queue = None
        self._epoch_len = 0
        self.ran_out = False

    def _snapshot(self) -> Any:
        # The queue is never modified in place: keeping a reference is enough.
        return self._queue, self._epoch_len, self.ran_out

    def _restore(self, snapshot: Any) -> None:
        self._queue, self._epoch_len, self.ran_out = snapshot

    def state_dict(self) -> dict[str, Any]:
        """The rows left in the epoch in progress (no RNG state)."""
        queue = self._queue
        return {
            "drop_last": self.drop_last,
            "shuffle": self.shuffle,
            "has_queue": queue is not None,
            "queue": queue.clone() if queue is not None else torch.zeros(0, dtype=torch.long),
            "epoch_len": self._epoch_len,
            "ran_out": self.ran_out,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the epoch saved by :meth:`state_dict`."""
        self.drop_last = bool(state["drop_last"])
        self.shuffle = bool(state["shuffle"])
        self._queue = torch.as_tensor(state["queue"]).long().clone() if state["has_queue"] else None
        self._epoch_len = int(state["epoch_len"])
        self.ran_out = bool(state["ran_out"])

    def __repr__(self) -> str:
        return f"SamplerWithoutReplacement(drop_last={self.drop_last}, shuffle={self.shuffle})"
