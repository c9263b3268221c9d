"""A TensorDict as one flat byte tensor, for sending it over ``torch.distributed``.

:class:`FlatLayout` records each leaf's key, dtype, shape and byte offset (aligned to 8
bytes). Both sides build the same layout once; afterwards a batch travels as one
``uint8`` tensor and is read back as views into it, with no per-leaf message::

    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"a": torch.arange(3.0), "b": {"c": torch.ones(2, dtype=torch.bool)}}, [])
    >>> layout = FlatLayout.of(td)
    >>> flat = layout.empty()
    >>> layout.pack(td, flat)
    >>> layout.unpack(flat)["a"]
    tensor([0., 1., 2.])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.collectors.errors import CollectorError
from rlkernel.envs.step import NestedKey

__all__ = ["FlatLayout"]

_ALIGN = 8


@dataclass(frozen=True)
class _Leaf:
    key: NestedKey
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int
    nbytes: int


@dataclass(frozen=True)
class FlatLayout:
    """Where each leaf of a TensorDict lives in a flat byte buffer.

    Attributes:
        batch_size: the TensorDict's batch size.
        leaves: per leaf, its key, dtype, shape, byte offset and size.
        nbytes: the buffer's size in bytes.
    """

    batch_size: tuple[int, ...]
    leaves: tuple[_Leaf, ...]
    nbytes: int

    @classmethod
    def of(cls, td: TensorDictBase) -> FlatLayout:
        """The layout of ``td`` (leaves in sorted key order, so equal TDs give equal layouts)."""
        keys = sorted(td.keys(include_nested=True, leaves_only=True), key=lambda k: (k,) if isinstance(k, str) else k)
        leaves, offset = [], 0
        for key in keys:
            value = td.get(key)
            nbytes = value.numel() * value.element_size()
            leaves.append(_Leaf(key, value.dtype, tuple(value.shape), offset, nbytes))
            offset += -(-nbytes // _ALIGN) * _ALIGN
        return cls(tuple(td.batch_size), tuple(leaves), max(offset, _ALIGN))

    def describe(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """A plain, comparable description (key, dtype, shape) for start-up checks."""
        return [(str(leaf.key), str(leaf.dtype), leaf.shape) for leaf in self.leaves]

    def empty(self, device: torch.device | str | None = None) -> torch.Tensor:
        """A new zeroed byte buffer of the layout's size."""
        return torch.zeros(self.nbytes, dtype=torch.uint8, device=device)

    def _view(self, flat: torch.Tensor, leaf: _Leaf) -> torch.Tensor:
        return flat[leaf.offset : leaf.offset + leaf.nbytes].view(leaf.dtype).view(leaf.shape)

    def pack(self, td: TensorDictBase, flat: torch.Tensor) -> None:
        """Copy the leaves of ``td`` (which must have this layout) into ``flat``."""
        for leaf in self.leaves:
            value = td.get(leaf.key, None)
            if value is None or value.dtype != leaf.dtype or tuple(value.shape) != leaf.shape:
                raise CollectorError(
                    f"FlatLayout.pack: {leaf.key!r} is {None if value is None else (value.dtype, tuple(value.shape))}, "
                    f"the layout expects {(leaf.dtype, leaf.shape)}"
                )
            self._view(flat, leaf).copy_(value, non_blocking=True)

    def unpack(self, flat: torch.Tensor) -> TensorDictBase:
        """A TensorDict whose leaves are views into ``flat`` (no copy)."""
        out = TensorDict({}, batch_size=self.batch_size, device=flat.device)
        for leaf in self.leaves:
            out.set(leaf.key, self._view(flat, leaf))
        return out
