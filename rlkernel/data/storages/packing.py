"""Packing a layout's small leaves side by side, one buffer per dtype.

Sampling reads rows at random. With one tensor per leaf, a row of a typical transition
(observation, action, reward, done, next observation, ...) lies in seven places, each a
cache miss; packed, its float leaves are one contiguous run of bytes and its bool leaves
another: two misses. On a million-row storage this makes ``sample`` about 1.5x faster.
Large leaves (images) gain nothing from packing and keep a buffer of their own.

>>> import torch
>>> from tensordict import TensorDict
>>> from rlkernel.data.storages.layout import Layout
>>> flag = torch.zeros(2, 1, dtype=torch.bool)
>>> layout = Layout.of(TensorDict({"a": torch.zeros(2, 3), "b": torch.zeros(2), "c": flag}, [2]))
>>> packing = Packing(layout)
>>> [(g.dtype, g.width) for g in packing.groups]
[(torch.float32, 4), (torch.bool, 1)]
>>> buffers = packing.allocate(10, torch.device("cpu"))
>>> [tuple(v.shape) for v in packing.views(buffers)]
[(10, 3), (10,), (10, 1)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from rlkernel.data.storages.layout import Layout

__all__ = ["Group", "Packing"]

#: Leaves whose rows are larger than this keep a buffer of their own.
PACK_MAX_BYTES = 256


@dataclass
class Group:
    """One buffer of ``width`` columns of ``dtype``: the leaves ``positions``, side by side."""

    dtype: torch.dtype
    width: int = 0
    positions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    #: Whether each leaf's rows are flat already (``shape == (width,)``).
    flat: list[bool] = field(default_factory=list)

    def add(self, position: int, shape: tuple[int, ...]) -> None:
        """Append the leaf at ``position`` (rows of ``shape``) to this buffer's columns."""
        width = math.prod(shape)
        self.positions.append(position)
        self.offsets.append(self.width)
        self.widths.append(width)
        self.shapes.append(shape)
        self.flat.append(tuple(shape) == (width,))
        self.width += width


class Packing:
    """How a :class:`Layout`'s leaves are spread over buffers of shape ``[rows, width]``.

    ``groups`` (lists of leaf positions, one list per buffer) restores a saved packing;
    by default leaves of the same dtype with rows of at most ``PACK_MAX_BYTES`` bytes
    share a buffer, in layout order.
    """

    def __init__(self, layout: Layout, groups: Sequence[Sequence[int]] | None = None) -> None:
        fields = layout.fields
        if groups is None:
            groups = self.plan(layout)
        self.groups: list[Group] = []
        for members in groups:
            group = Group(fields[members[0]].dtype)
            for position in members:
                group.add(position, fields[position].shape)
            self.groups.append(group)
        self.num_leaves = len(fields)

    @staticmethod
    def plan(layout: Layout) -> list[list[int]]:
        """The default grouping: small leaves by dtype, large ones alone."""
        shared: dict[torch.dtype, list[int]] = {}
        groups: list[list[int]] = []
        for position, f in enumerate(layout.fields):
            if math.prod(f.shape) * f.dtype.itemsize > PACK_MAX_BYTES:
                groups.append([position])
            elif f.dtype in shared:
                shared[f.dtype].append(position)
            else:
                shared[f.dtype] = [position]
                groups.append(shared[f.dtype])
        return groups

    def membership(self) -> list[list[int]]:
        """The groups as lists of leaf positions (what to save to restore this packing)."""
        return [list(g.positions) for g in self.groups]

    def allocate(self, rows: int, device: torch.device) -> list[torch.Tensor]:
        """Uninitialised buffers for ``rows`` rows."""
        return [torch.empty((rows, g.width), dtype=g.dtype, device=device) for g in self.groups]

    def views(self, buffers: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Each leaf's rows as a view ``[rows, *row shape]`` into the buffers, in layout order."""
        leaves: list[torch.Tensor] = [torch.empty(0)] * self.num_leaves
        for buffer, g in zip(buffers, self.groups):
            for position, offset, width, shape in zip(g.positions, g.offsets, g.widths, g.shapes):
                leaves[position] = buffer[:, offset : offset + width].view(buffer.shape[0], *shape)
        return leaves

    def gather(self, buffers: Sequence[torch.Tensor], index: torch.Tensor) -> list[torch.Tensor]:
        """The rows ``index`` of every leaf, as contiguous tensors, in layout order: one
        ``index_select`` per buffer, then one ``split_with_sizes_copy`` per shared buffer
        (a single call making every leaf's contiguous copy)."""
        rows = index.numel()
        leaves: list[torch.Tensor] = [torch.empty(0)] * self.num_leaves
        for buffer, g in zip(buffers, self.groups):
            picked = torch.index_select(buffer, 0, index)
            if len(g.positions) == 1:
                leaves[g.positions[0]] = picked.view(rows, *g.shapes[0])
                continue
            parts = torch.split_with_sizes_copy(picked, g.widths, 1)
            for position, part, shape, flat in zip(g.positions, parts, g.shapes, g.flat):
                leaves[position] = part if flat else part.view(rows, *shape)
        return leaves

    def write(
        self,
        buffers: Sequence[torch.Tensor],
        views: Sequence[torch.Tensor],
        leaves: Sequence[torch.Tensor],
        start: int,
        end: int,
    ) -> None:
        """Copy ``leaves`` (in layout order, ``end - start`` rows each) into the rows
        ``start:end``: one ``torch.cat`` into each shared buffer's (contiguous) rows, a
        plain copy for a leaf with a buffer of its own. ``views`` are :meth:`views`."""
        rows = end - start
        for buffer, g in zip(buffers, self.groups):
            if len(g.positions) == 1:
                views[g.positions[0]][start:end].copy_(leaves[g.positions[0]])
                continue
            parts = [
                leaves[position] if flat else leaves[position].reshape(rows, width)
                for position, width, flat in zip(g.positions, g.widths, g.flat)
            ]
            try:
                torch.cat(parts, 1, out=buffer[start:end])
            except RuntimeError:  # another device, autograd, overlapping memory: copy each leaf
                for position in g.positions:
                    views[position][start:end].copy_(leaves[position])
