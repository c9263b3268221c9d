"""The layout of tensor data: which leaves a storage holds, with their row shapes and dtypes.

A :class:`Layout` is taken from the first batch written to a tensor storage and checked
against every later batch. The check is cheap on purpose (one walk over the batch's
leaves and one tuple comparison); only when it fails does the slow path work out which
key differs, to say so::

    >>> import torch
    >>> from tensordict import TensorDict
    >>> done = torch.zeros(4, 1, dtype=torch.bool)
    >>> batch = TensorDict({"obs": torch.zeros(4, 3), "next": {"done": done}}, [4])
    >>> layout = Layout.of(batch)
    >>> [f.key for f in layout.fields]
    [('obs',), ('next', 'done')]
    >>> bad = TensorDict({"obs": torch.zeros(4, 5), "next": {"done": done}}, [4])
    >>> try:  # doctest: +ELLIPSIS
    ...     layout.leaves(bad)
    ... except StorageError as err:
    ...     print(err)
    key 'obs': the storage holds rows of shape (3,) and dtype torch.float32, got rows of shape (5,) and dtype ...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase, is_tensor_collection

from rlkernel._compat import tensordict as td_compat
from rlkernel.data.errors import StorageError

__all__ = ["Field", "Layout", "dtype_from_name", "key_name", "num_rows"]

Key = tuple[str, ...]



def key_name(key: Key) -> str:
    """A nested key as people write it: ``'obs'`` or ``('next', 'done')``."""
    return repr(key[0]) if len(key) == 1 else repr(key)


def dtype_from_name(name: str) -> torch.dtype:
    """``"torch.float32"`` or ``"float32"`` -> ``torch.float32``."""
    dtype = getattr(torch, name.rsplit(".", 1)[-1], None)
    if not isinstance(dtype, torch.dtype):
        raise StorageError(f"unknown dtype {name!r}")
    return dtype


def num_rows(data: Any) -> int:
    """The number of rows (size of dimension 0) of a tensor or TensorDict batch."""
    if isinstance(data, torch.Tensor):
        if data.ndim == 0:
            raise StorageError("a batch of rows needs at least one dimension, got a 0-d tensor")
        return data.shape[0]
    if is_tensor_collection(data):
        if not data.batch_dims:
            raise StorageError(
                "a batch of rows needs a TensorDict with at least one batch dimension, got "
                "batch_size=[] (use buffer.add for a single item, or td.unsqueeze(0))"
            )
        return data.batch_size[0]
    raise StorageError(f"expected a torch.Tensor or a TensorDict, got {type(data).__name__}")


@dataclass(frozen=True)
class Field:
    """One leaf: its nested key, the shape of one row, its dtype."""

    key: Key
    shape: tuple[int, ...]
    dtype: torch.dtype


def _walk(td: Any, prefix: Key, leaves: list[torch.Tensor], signature: list[Any]) -> None:
    for name, value in td.items():
        if isinstance(value, torch.Tensor):
            leaves.append(value)
            signature.append((*prefix, name))
            signature.append(value.shape[1:])
            signature.append(value.dtype)
        elif is_tensor_collection(value):
            _walk(value, (*prefix, name), leaves, signature)
        else:
            raise StorageError(
                f"key {key_name((*prefix, name))}: tensor storages hold tensors only, got "
                f"{type(value).__name__} (use a ListStorage for arbitrary objects)"
            )


class Layout:
    """The leaves of a bare tensor (one field, key ``()``) or of a TensorDict.

    ``row_batch`` is the batch shape of one row beyond dimension 0 (a batch of
    trajectories ``[n, T]`` stores rows with ``row_batch == (T,)``).
    """

    def __init__(self, fields: Sequence[Field], *, is_tensordict: bool, row_batch: tuple[int, ...] = ()):
        self.fields = tuple(fields)
        self.is_tensordict = is_tensordict
        self.row_batch = tuple(row_batch)
        self.keys = [f.key for f in self.fields]
        self._signature = tuple(x for f in self.fields for x in (f.key, torch.Size(f.shape), f.dtype))
        self._index = {f.key: i for i, f in enumerate(self.fields)}
        self._tree = self._nest()
        self._expected = self._expect(self._tree)

    # -- building ----------------------------------------------------------------------
    @classmethod
    def of(cls, batch: Any) -> Layout:
        """The layout of a batch of rows (a tensor or a TensorDict, rows on dimension 0)."""
        num_rows(batch)
        if isinstance(batch, torch.Tensor):
            return cls([Field((), tuple(batch.shape[1:]), batch.dtype)], is_tensordict=False)
        leaves: list[torch.Tensor] = []
        signature: list[Any] = []
        _walk(batch, (), leaves, signature)
        if not leaves:
            raise StorageError("cannot store a TensorDict without any tensor in it")
        fields = [Field(signature[i], tuple(signature[i + 1]), signature[i + 2]) for i in range(0, len(signature), 3)]
        return cls(fields, is_tensordict=True, row_batch=tuple(batch.batch_size[1:]))

    def _nest(self) -> dict[str, Any]:
        # key -> position of its leaf, or a dict for a sub-TensorDict
        tree: dict[str, Any] = {}
        for position, key in enumerate(self.keys):
            node = tree
            for part in key[:-1]:
                node = node.setdefault(part, {})
            if key:
                node[key[-1]] = position
        return tree

    # -- checking and splitting --------------------------------------------------------
    def leaves(self, batch: Any) -> list[torch.Tensor]:
        """The batch's leaves in this layout's order, or a :class:`StorageError` naming
        the first key whose presence, row shape or dtype differs."""
        if not self.is_tensordict:
            if not isinstance(batch, torch.Tensor):
                raise StorageError(f"this storage holds tensors, got {type(batch).__name__}")
            if batch.shape[1:] != self._signature[1] or batch.dtype != self.fields[0].dtype:
                f = self.fields[0]
                raise StorageError(
                    f"the storage holds rows of shape {f.shape} and dtype {f.dtype}, got rows of shape "
                    f"{tuple(batch.shape[1:])} and dtype {batch.dtype}"
                )
            return [batch]
        if not isinstance(batch, TensorDictBase):
            raise StorageError(f"this storage holds TensorDicts, got {type(batch).__name__}")
        found: list[Any] = [None] * len(self.fields)
        if self._match(batch, self._expected, found) and (
            batch.batch_dims == 1 if not self.row_batch else tuple(batch.batch_size[1:]) == self.row_batch
        ):
            return found
        leaves: list[torch.Tensor] = []
        signature: list[Any] = []
        _walk(batch, (), leaves, signature)
        if tuple(signature) == self._signature and tuple(batch.batch_size[1:]) == self.row_batch:
            return leaves
        return self._slow_leaves(batch, leaves, signature)

    def _expect(self, node: dict[str, Any]) -> tuple[Any, ...]:
        # (name, position, dtype, row shape, None) for a leaf, (name, -1, None, None,
        # what the sub-TensorDict holds) for a sub-TensorDict, in the nested tree's order.
        return tuple(
            (name, v, self.fields[v].dtype, torch.Size(self.fields[v].shape), None)
            if type(v) is int
            else (name, -1, None, None, self._expect(v))
            for name, v in node.items()
        )

    def _match(self, td: Any, expected: tuple[Any, ...], found: list[Any]) -> bool:
        """The quick check: ``td`` holds exactly the expected entries, in the expected
        order, as plain tensors of the expected dtypes and row shapes (filling ``found``
        by position). False sends :meth:`leaves` to the full comparison."""
        i, n = 0, len(expected)
        for name, value in td.items():
            if i == n:
                return False
            want, position, dtype, shape, inner = expected[i]
            if name != want:
                return False
            if inner is None:
                if type(value) is not torch.Tensor or value.dtype is not dtype or value.shape[1:] != shape:
                    return False
                found[position] = value
            elif not isinstance(value, TensorDictBase) or not self._match(value, inner, found):
                return False
            i += 1
        return i == n

    def _slow_leaves(self, batch: Any, leaves: list[torch.Tensor], signature: list[Any]) -> list[torch.Tensor]:
        got = {signature[i]: (leaves[i // 3], signature[i + 1], signature[i + 2]) for i in range(0, len(signature), 3)}
        missing = [f.key for f in self.fields if f.key not in got]
        if missing:
            raise StorageError(
                f"key {key_name(missing[0])} is missing from the data: the storage holds keys "
                f"{[key_name(k) for k in self.keys]}"
            )
        extra = [k for k in got if k not in self._index]
        if extra:
            raise StorageError(
                f"key {key_name(extra[0])} is not in the storage, which holds keys "
                f"{[key_name(k) for k in self.keys]} (a storage's keys are fixed by its first write)"
            )
        ordered = []
        for f in self.fields:
            tensor, shape, dtype = got[f.key]
            if tuple(shape) != f.shape or dtype != f.dtype:
                raise StorageError(
                    f"key {key_name(f.key)}: the storage holds rows of shape {f.shape} and dtype "
                    f"{f.dtype}, got rows of shape {tuple(shape)} and dtype {dtype}"
                )
            ordered.append(tensor)
        if tuple(batch.batch_size[1:]) != self.row_batch:
            raise StorageError(
                f"the storage holds rows of batch shape {self.row_batch}, got batch_size "
                f"{tuple(batch.batch_size)} (rows of batch shape {tuple(batch.batch_size[1:])})"
            )
        return ordered

    def position(self, key: Any) -> int:
        """The position of ``key`` (a string or a tuple) among the leaves, or a clear error."""
        flat = (key,) if isinstance(key, str) else tuple(key)
        if flat not in self._index:
            raise StorageError(
                f"key {key_name(flat)} is not in the storage; it holds {[key_name(k) for k in self.keys]}"
            )
        return self._index[flat]

    def __contains__(self, key: Any) -> bool:
        return ((key,) if isinstance(key, str) else tuple(key)) in self._index

    # -- assembling --------------------------------------------------------------------
    def assemble(self, leaves: Sequence[torch.Tensor], rows: int, device: torch.device | None = None) -> Any:
        """Leaves (in this layout's order, ``rows`` rows each) -> a tensor or a TensorDict."""
        if not self.is_tensordict:
            return leaves[0]
        batch_size = torch.Size((rows, *self.row_batch))
        if device is None or device.type == "cpu":
            # The leaves are fresh tensors of the right shapes on the storage's device:
            # nothing for the TensorDict constructor to check or move.
            return self._build(self._tree, leaves, batch_size, device)
        source = self._fill(self._tree, leaves)
        return TensorDict(source, batch_size=batch_size, device=device)

    def _build(
        self, node: dict[str, Any], leaves: Sequence[torch.Tensor], batch_size: torch.Size, device: Any
    ) -> TensorDict:
        source = {
            k: leaves[v] if type(v) is int else self._build(v, leaves, batch_size, device) for k, v in node.items()
        }
        return td_compat.new_unsafe(source, batch_size=batch_size, device=device, nested=False)

    def _fill(self, node: dict[str, Any], leaves: Sequence[torch.Tensor]) -> dict[str, Any]:
        return {k: leaves[v] if isinstance(v, int) else self._fill(v, leaves) for k, v in node.items()}

    # -- saving ------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """A JSON-friendly description (strings, ints, lists)."""
        return {
            "is_tensordict": self.is_tensordict,
            "row_batch": list(self.row_batch),
            "fields": [{"key": list(f.key), "shape": list(f.shape), "dtype": str(f.dtype)} for f in self.fields],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Layout:
        """The inverse of :meth:`to_state`."""
        fields = [Field(tuple(f["key"]), tuple(f["shape"]), dtype_from_name(f["dtype"])) for f in state["fields"]]
        return cls(fields, is_tensordict=bool(state["is_tensordict"]), row_batch=tuple(state["row_batch"]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and self.to_state() == other.to_state()

    def __hash__(self) -> int:
        return hash(self._signature)

    def __repr__(self) -> str:
        inner = ", ".join(f"{key_name(f.key) if f.key else 'tensor'}: {f.dtype} {f.shape}" for f in self.fields)
        return f"Layout({inner})"
