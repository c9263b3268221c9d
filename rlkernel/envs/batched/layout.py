"""The layout of the one buffer a batched environment exchanges data through.

Every tensor a step or a reset moves lives in a single flat byte buffer, allocated once:
``N`` worker blocks one after another, each 64-byte aligned (no two workers write into
the same cache line), each holding that worker's slice of every entry. An entry belongs to
one *slot*:

``input``       the root inputs the parent writes before a step (actions and states),
``reset``       the ``"_reset"`` mask (only when the sub-environment is itself batched),
``root``        what a reset returns (observations, done flags, states),
``next``        what a step returns (observations, rewards, done flags),
``next_state``  states a step may also return, with one presence byte per key in
``flags``       (a step may return them or not, but every worker alike).

The parent sees each entry as one strided tensor of shape ``(N, *shape)``; worker ``i``
sees its contiguous ``(*shape)`` slice. The layout is plain data, so it pickles cheaply to
the workers, which rebuild their views over the same shared storage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tensordict import TensorDict

from rlkernel.envs.batched.subspecs import SubEnvSpecs
from rlkernel.envs.step import RESET, NestedKey

BLOCK_ALIGN = 64
SLOTS = ("input", "reset", "root", "next", "next_state", "flags")


def as_key(path: tuple[str, ...]) -> NestedKey:
    """``("a",)`` -> ``"a"``; longer paths stay tuples (TensorDict's nested keys)."""
    return path[0] if len(path) == 1 else path


@dataclass(frozen=True)
class Entry:
    """One tensor of the buffer: its slot, key, dtype, per-worker shape and byte offset."""

    slot: str
    path: tuple[str, ...]
    dtype: torch.dtype
    shape: torch.Size
    offset: int

    @property
    def key(self) -> NestedKey:
        return as_key(self.path)


class BufferLayout:
    """Where each entry of each worker lives in the flat buffer.

    Args:
        num_workers: the number of worker blocks.
        specs: the (unexpanded) specs of the sub-environment.
    """

    def __init__(self, num_workers: int, specs: SubEnvSpecs) -> None:
        self.num_workers = num_workers
        self.sub_batch = torch.Size(specs.batch_size)
        plan: list[tuple[str, tuple[str, ...], torch.dtype, torch.Size]] = []
        for path, leaf in specs.leaves("action", "state"):
            plan.append(("input", path, leaf.dtype, leaf.shape))
        if self.sub_batch:
            plan.append(("reset", (RESET,), torch.bool, torch.Size((*self.sub_batch, 1))))
        for path, leaf in specs.leaves("observation", "done", "state"):
            plan.append(("root", path, leaf.dtype, leaf.shape))
        for path, leaf in specs.leaves("observation", "reward", "done"):
            plan.append(("next", path, leaf.dtype, leaf.shape))
        next_paths = {p for slot, p, _, _ in plan if slot == "next"}
        states = [(path, leaf) for path, leaf in specs.leaves("state") if path not in next_paths]
        for path, leaf in states:
            plan.append(("next_state", path, leaf.dtype, leaf.shape))
        if states:
            plan.append(("flags", ("flags",), torch.uint8, torch.Size((len(states),))))
        self.entries: list[Entry] = []
        offset = 0
        for slot, path, dtype, shape in plan:
            itemsize = torch.empty((), dtype=dtype).element_size()
            offset = _round_up(offset, max(8, itemsize))
            self.entries.append(Entry(slot, path, dtype, torch.Size(shape), offset))
            offset += itemsize * math.prod(shape)
        self.block_nbytes = _round_up(max(offset, 1), BLOCK_ALIGN)
        self._batch = torch.Size((num_workers, *self.sub_batch))

    @property
    def nbytes(self) -> int:
        """Size of the whole buffer in bytes."""
        return self.block_nbytes * self.num_workers

    def slot(self, slot: str) -> list[Entry]:
        """The entries of ``slot``, in layout order."""
        return [e for e in self.entries if e.slot == slot]

    def allocate(self, shared: bool) -> torch.Tensor:
        """A zeroed flat ``uint8`` buffer (in shared memory when ``shared``)."""
        flat = torch.zeros(self.nbytes, dtype=torch.uint8)
        return flat.share_memory_() if shared else flat

    def _view(self, flat: torch.Tensor, entry: Entry, index: int | None) -> torch.Tensor:
        typed = flat.view(entry.dtype)
        itemsize = typed.element_size()
        inner = _contiguous_strides(entry.shape)
        if index is None:
            return typed.as_strided(
                (self.num_workers, *entry.shape), (self.block_nbytes // itemsize, *inner),
                entry.offset // itemsize,
            )
        start = (index * self.block_nbytes + entry.offset) // itemsize
        return typed.as_strided(tuple(entry.shape), inner, start)

    def batched_views(self, flat: torch.Tensor, slot: str) -> list[tuple[NestedKey, torch.Tensor]]:
        """``(key, view)`` of ``slot`` for the parent: each view has shape ``(N, *shape)``."""
        return [(e.key, self._view(flat, e, None)) for e in self.slot(slot)]

    def worker_views(self, flat: torch.Tensor, index: int, slot: str) -> list[tuple[NestedKey, torch.Tensor]]:
        """``(key, view)`` of ``slot`` for worker ``index``: contiguous, of the spec's shape."""
        return [(e.key, self._view(flat, e, index)) for e in self.slot(slot)]

    def snapshot(self, views: list[tuple[NestedKey, torch.Tensor]], device: torch.device) -> TensorDict:
        """A new TensorDict of batch size ``(N, *sub_batch)`` holding copies of ``views``.

        Building it from a dict of clones is about twice as fast as ``TensorDict.clone``
        on these strided views.
        """
        source: dict[str, object] = {}
        for key, view in views:
            if isinstance(key, str):
                source[key] = view.clone()
                continue
            node = source
            for name in key[:-1]:
                node = node.setdefault(name, {})  # type: ignore[assignment]
            node[key[-1]] = view.clone()
        return TensorDict(source, batch_size=self._batch, device=device)

    def batched_tensordict(self, flat: torch.Tensor, slot: str) -> TensorDict:
        """The parent's views of ``slot`` as a TensorDict of batch size ``(N, *sub_batch)``."""
        td = TensorDict({}, batch_size=(self.num_workers, *self.sub_batch), device="cpu")
        for key, view in self.batched_views(flat, slot):
            td.set(key, view)
        return td


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _contiguous_strides(shape: torch.Size) -> tuple[int, ...]:
    strides: list[int] = []
    step = 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))
