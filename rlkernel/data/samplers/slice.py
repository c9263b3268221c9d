"""Sampling contiguous slices of stored trajectories."""

from __future__ import annotations

from typing import Any

import torch

from rlkernel.data.errors import BufferError
from rlkernel.data.samplers.base import Sampler
from rlkernel.data.storages.base import Storage
from rlkernel.data.storages.layout import key_name
from rlkernel.data.storages.tensor_storage import TensorStorage

__all__ = ["SliceSampler"]


def _as_key(key: Any) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


class SliceSampler(Sampler):
    """Samples ``num_slices`` slices of ``slice_len`` consecutive steps of trajectories.

    ``SliceSampler(*, num_slices=None, slice_len=None, end_key=("next", "done"),
    traj_key=None, strict_length=True, truncated_key=("next", "truncated"))``

    Give exactly one of ``num_slices`` and ``slice_len``; the other is
    ``batch_size // given`` (the batch size must be a multiple of it). Trajectories are
    found from a trajectory-id key (``traj_key``: a new trajectory wherever the id
    changes) or else from the done flags at ``end_key`` (a trajectory ends at each done
    step). The storage is read in write order, oldest row first, so a trajectory that
    wraps around the end of a full circular storage is one trajectory, and the newest
    and oldest rows are never joined.

    A slice is drawn by picking a trajectory uniformly, then a start uniformly among the
    positions where the slice fits. With ``strict_length=True`` trajectories shorter
    than ``slice_len`` are skipped (nothing is cut) and a :class:`BufferError` is raised
    if none is long enough; with ``strict_length=False`` a short trajectory gives a
    shorter slice, so the batch may hold fewer than ``batch_size`` rows.

    The returned index lists the slices one after the other. ``info`` flags the last
    step of each slice: ``info[truncated_key]`` is the stored truncated flag (if any) OR
    slice end, and ``info[done key]`` (``truncated_key`` with ``"done"`` as its last
    part) the stored done flag OR slice end, when the storage has it. A TensorDict
    buffer writes both into the sampled batch, so that returns are not computed across
    slices.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from rlkernel.data import TensorDictReplayBuffer, LazyTensorStorage
    >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(20), sampler=SliceSampler(slice_len=4))
    >>> ids = torch.tensor([0] * 6 + [1] * 6)
    >>> done = (torch.arange(12) % 6 == 5).unsqueeze(-1)
    >>> _ = rb.extend(TensorDict({"traj": ids, "next": {"done": done}}, [12]))
    >>> batch = rb.sample(8)
    >>> batch["traj"].view(2, 4).unique(dim=1).shape[1]   # each slice stays in one trajectory
    1
    """

    def __init__(
        self,
        *,
        num_slices: int | None = None,
        slice_len: int | None = None,
        end_key: Any = ("next", "done"),
        traj_key: Any = None,
        strict_length: bool = True,
        truncated_key: Any = ("next", "truncated"),
    ) -> None:
        if (num_slices is None) == (slice_len is None):
            raise BufferError(
                f"SliceSampler: pass exactly one of num_slices and slice_len (got num_slices={num_slices!r}, "
                f"slice_len={slice_len!r}); the other is derived from the batch size"
            )
        given = num_slices if num_slices is not None else slice_len
        if isinstance(given, bool) or not isinstance(given, int) or given < 1:
            name = "num_slices" if num_slices is not None else "slice_len"
            raise BufferError(f"SliceSampler: {name} must be a positive int, got {given!r}")
        self.num_slices = num_slices
        self.slice_len = slice_len
        self.end_key = _as_key(end_key)
        self.traj_key = None if traj_key is None else _as_key(traj_key)
        self.strict_length = bool(strict_length)
        self.truncated_key = _as_key(truncated_key)
        self.done_key = (*self.truncated_key[:-1], "done")
        self._cache: tuple[Any, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None

    # -- trajectories ------------------------------------------------------------------
    def _shape(self, batch_size: int) -> tuple[int, int]:
        if self.slice_len is not None:
            if batch_size % self.slice_len:
                raise BufferError(
                    f"SliceSampler: batch_size {batch_size} is not a multiple of slice_len {self.slice_len}"
                )
            return batch_size // self.slice_len, self.slice_len
        assert self.num_slices is not None
        if batch_size % self.num_slices:
            raise BufferError(
                f"SliceSampler: batch_size {batch_size} is not a multiple of num_slices {self.num_slices}"
            )
        return self.num_slices, batch_size // self.num_slices

    def trajectories(self, storage: Storage) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(starts, lengths, order)``: trajectories as runs of positions in write order;
        ``order[position]`` is the storage row. Cached until the storage is written."""
        if not isinstance(storage, TensorStorage) or storage.layout is None or not storage.layout.is_tensordict:
            raise BufferError(f"SliceSampler needs a tensor storage holding TensorDicts, got {storage!r}")
        stamp = (id(storage), storage.version, len(storage))
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        n, size = len(storage), storage.max_size
        start = storage.cursor if n == size else 0
        order = torch.arange(n)
        if start:
            order = order.add_(start).remainder_(size)
        if self.traj_key is not None:
            if self.traj_key not in storage.layout:
                raise BufferError(f"SliceSampler: traj_key {key_name(self.traj_key)} is not in the storage")
            ids = storage.column(self.traj_key)[order].reshape(n, -1).cpu()
            if ids.shape[1] != 1:
                raise BufferError(f"SliceSampler: traj_key {key_name(self.traj_key)} must hold one id per row")
            boundary = ids[1:, 0] != ids[:-1, 0]
        else:
            if self.end_key not in storage.layout:
                raise BufferError(
                    f"SliceSampler: end_key {key_name(self.end_key)} is not in the storage (keys: "
                    f"{[key_name(k) for k in storage.layout.keys]}); pass the key of the done flags "
                    "as end_key, or a trajectory-id key as traj_key"
                )
            done = storage.column(self.end_key)[order].reshape(n, -1).cpu()
            boundary = (done != 0).any(1)[:-1]
        is_end = torch.cat([boundary, torch.ones(1, dtype=torch.bool)])
        ends = is_end.nonzero().squeeze(1)
        starts = torch.cat([torch.zeros(1, dtype=torch.long), ends[:-1] + 1])
        result = (starts, ends - starts + 1, order)
        self._cache = (stamp, result)
        return result

    # -- sampling ----------------------------------------------------------------------
    def _sample(self, storage: Storage, batch_size: int) -> tuple[torch.Tensor, dict[str, Any]]:
        num, length = self._shape(batch_size)
        starts, lengths, order = self.trajectories(storage)
        if self.strict_length:
            fits = lengths >= length
            if not bool(fits.all()):
                if not bool(fits.any()):
                    raise BufferError(
                        f"SliceSampler: none of the {lengths.numel()} stored trajectories has slice_len="
                        f"{length} steps (the longest has {int(lengths.max())}); sample shorter slices "
                        "or pass strict_length=False to allow shorter slices at trajectory ends"
                    )
                starts, lengths = starts[fits], lengths[fits]
        pick = torch.randint(starts.numel(), (num,))
        first, room = starts[pick], lengths[pick]
        if self.strict_length:
            first += (torch.rand(num, dtype=torch.float64) * (room - length + 1)).long()
            position = (first.unsqueeze(1) + torch.arange(length)).reshape(-1)
            slice_end = torch.zeros(num, length, dtype=torch.bool)
            slice_end[:, -1] = True
            slice_end = slice_end.reshape(-1)
        else:
            seg = room.clamp(max=length)
            first += (torch.rand(num, dtype=torch.float64) * (room - seg + 1)).long()
            total = int(seg.sum())
            before = torch.repeat_interleave(seg.cumsum(0) - seg, seg)
            within = torch.arange(total) - before
            position = torch.repeat_interleave(first, seg) + within
            slice_end = within == torch.repeat_interleave(seg - 1, seg)
        index = order[position]
        assert isinstance(storage, TensorStorage) and storage.layout is not None
        info: dict[Any, Any] = {}
        for key in (self.truncated_key, self.done_key):
            if key in storage.layout:
                stored = storage.column(key)[index].cpu()
                flag = slice_end.reshape(-1, *[1] * (stored.ndim - 1))
                info[key] = stored | flag if stored.dtype == torch.bool else stored.logical_or(flag)
            elif key == self.truncated_key:
                info[key] = slice_end.unsqueeze(-1)
        return index, info

    def empty(self) -> None:
        """Forget the cached trajectories."""
        self._cache = None

    def __repr__(self) -> str:
        shape = f"num_slices={self.num_slices}" if self.num_slices is not None else f"slice_len={self.slice_len}"
        by = f"traj_key={self.traj_key}" if self.traj_key is not None else f"end_key={self.end_key}"
        return f"SliceSampler({shape}, {by}, strict_length={self.strict_length})"
