"""Conversion between gymnasium spaces and rlkernel specs, and between their values.

=====================  =====================================================================
gymnasium space        rlkernel spec
=====================  =====================================================================
``Box``                ``Bounded(low, high)`` when every bound is finite, else ``Unbounded``;
                       the dtype is kept (a float64 ``Box`` stays float64: use the core's
                       ``DoubleToFloat`` transform to cast). A bool ``Box`` is ``Unbounded(bool)``.
``Discrete(n, start)`` ``Categorical(n)``, shape ``()``. **Values are 0-based**: rlkernel holds
                       ``gym_value - start`` and ``env.step`` adds ``start`` back.
``MultiDiscrete``      ``MultiCategorical(nvec)`` (1-D ``nvec``), 0-based like ``Discrete``.
``MultiBinary(n)``     ``Binary(n)``, dtype int8.
``Dict``               a ``Composite``: its entries are keys by their names, nested ``Dict``
                       spaces are nested keys.
``Tuple``              a ``Composite`` with keys ``"0"``, ``"1"``, ...
=====================  =====================================================================

Other spaces (``Text``, ``Graph``, ``Sequence``, ``OneOf``) raise
:class:`~rlkernel.errors.SpecError` naming the key and the space.

A :class:`Layout` lists the leaves of a (possibly nested) space once, with where each leaf
sits in gymnasium's value and in the TensorDict, so that per-step conversions are flat loops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import torch
from tensordict import TensorDictBase

from rlkernel.errors import ActionError, EnvError, SpecError
from rlkernel.specs import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    TensorSpec,
    Unbounded,
)

GymPath = tuple[Any, ...]
Key = tuple[str, ...]
spaces = gymnasium.spaces


def torch_dtype(dtype: Any) -> torch.dtype:
    """The torch dtype of a numpy dtype (``np.float32`` -> ``torch.float32``)."""
    return torch.from_numpy(np.zeros(0, dtype=np.dtype(dtype))).dtype


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The numpy dtype of a torch dtype (``torch.int64`` -> ``np.int64``)."""
    return torch.empty(0, dtype=dtype).numpy().dtype


@dataclass(frozen=True)
class Leaf:
    """One tensor of a space: its TensorDict key, its place in gymnasium's value, its spec.

    ``offset`` is what gymnasium adds to rlkernel's value (the ``start`` of ``Discrete`` and
    ``MultiDiscrete`` spaces), ``None`` when there is nothing to add.
    """

    key: Key
    path: GymPath
    spec: TensorSpec
    dtype: np.dtype
    offset: np.ndarray | None = None


def _show(key: Key) -> str:
    return repr(key[0]) if len(key) == 1 else repr(key)


def _box(space: Any, key: Key, batch: tuple[int, ...], device: Any) -> tuple[TensorSpec, np.ndarray | None]:
    dtype = torch_dtype(space.dtype)
    shape = (*batch, *space.shape)
    if dtype is torch.bool:
        return Unbounded(shape, dtype=torch.bool, device=device), None
    low, high = np.asarray(space.low), np.asarray(space.high)
    if dtype.is_floating_point and not (np.isfinite(low).all() and np.isfinite(high).all()):
        return Unbounded(shape, dtype=dtype, device=device), None
    return Bounded(torch.as_tensor(low), torch.as_tensor(high), shape=shape, dtype=dtype, device=device), None


def _leaf_spec(space: Any, key: Key, batch: tuple[int, ...], device: Any) -> tuple[TensorSpec, np.ndarray | None]:
    if isinstance(space, spaces.Box):
        return _box(space, key, batch, device)
    if isinstance(space, spaces.Discrete):
        start = int(space.start)
        return Categorical(int(space.n), shape=batch, device=device), (np.int64(start) if start else None)
    if isinstance(space, spaces.MultiDiscrete):
        nvec = np.asarray(space.nvec)
        if nvec.ndim != 1:
            raise SpecError(
                f"rlkernel-gym: the MultiDiscrete space at key {_show(key)} has a {nvec.ndim}-D nvec "
                f"{nvec.tolist()}; only 1-D nvec converts to MultiCategorical"
            )
        start = np.asarray(space.start, dtype=np.int64)
        spec = MultiCategorical(nvec.tolist(), shape=(*batch, len(nvec)), device=device)
        return spec, (start if start.any() else None)
    if isinstance(space, spaces.MultiBinary):
        shape = tuple(np.atleast_1d(np.asarray(space.n)).tolist())
        return Binary(shape[-1], shape=(*batch, *shape), dtype=torch.int8, device=device), None
    raise SpecError(
        f"rlkernel-gym cannot convert the gymnasium space at key {_show(key)}: {space!r} "
        f"({type(space).__name__}); supported: Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple"
    )


def _collect(
    space: Any, key: Key, path: GymPath, batch: tuple[int, ...], device: Any, leaves: list[Leaf]
) -> TensorSpec:
    if isinstance(space, spaces.Dict):
        children = {}
        for name, sub in space.spaces.items():
            if not isinstance(name, str):
                raise SpecError(f"rlkernel-gym: Dict space at key {_show(key)} has a non-string key {name!r}")
            children[name] = _collect(sub, (*key, name), (*path, name), batch, device, leaves)
        return Composite(children, shape=batch, device=device)
    if isinstance(space, spaces.Tuple):
        children = {
            str(i): _collect(sub, (*key, str(i)), (*path, i), batch, device, leaves)
            for i, sub in enumerate(space.spaces)
        }
        return Composite(children, shape=batch, device=device)
    spec, offset = _leaf_spec(space, key, batch, device)
    leaves.append(Leaf(key, path, spec, numpy_dtype(spec.dtype), offset))
    return spec


def space_to_spec(space: Any, *, batch_size: Sequence[int] = (), device: Any = None) -> TensorSpec:
    """The rlkernel spec of a gymnasium space (see the module's table).

    >>> import gymnasium
    >>> space_to_spec(gymnasium.spaces.Discrete(3, start=1))
    Categorical(shape=[], dtype=int64, n=3)
    >>> space_to_spec(gymnasium.spaces.Box(-1.0, 1.0, (2,)), batch_size=(4,)).shape
    torch.Size([4, 2])
    """
    return _collect(space, ("value",), (), tuple(batch_size), device, [])


class Layout:
    """The leaves of one gymnasium space, placed under ``root`` in a TensorDict.

    ``root`` is ``None`` for an observation space whose ``Dict`` entries become root keys,
    else the key everything goes under (``"observation"``, ``"action"``). ``spec`` is the
    :class:`Composite` of the whole layout, batch dims included.
    """

    def __init__(self, space: Any, root: str | None, batch: tuple[int, ...], device: Any) -> None:
        self.space = space
        self.batch = tuple(batch)
        self.leaves: list[Leaf] = []
        if root is None and isinstance(space, spaces.Dict):
            spec = _collect(space, (), (), self.batch, device, self.leaves)
            assert isinstance(spec, Composite)
            self.spec = spec
        else:
            name = root if root is not None else "observation"
            child = _collect(space, (name,), (), self.batch, device, self.leaves)
            self.spec = Composite({name: child}, shape=self.batch, device=device)
        self.keys: list[Key] = [leaf.key for leaf in self.leaves]
        self.single = len(self.leaves) == 1 and not self.leaves[0].path
        self._shapes = [leaf.spec.shape for leaf in self.leaves]
        # Per-step lookups, worked out once: each leaf's parent names and own name in a
        # nested TensorDict source, and the key ``TensorDict.get`` takes fastest (a plain
        # string for a root key).
        self._places = [(leaf.key[:-1], leaf.key[-1]) for leaf in self.leaves]
        self._get_keys: list[str | Key] = [key[0] if len(key) == 1 else key for key in self.keys]
        if self.single:
            leaf = self.leaves[0]
            self._single_plan = (leaf.dtype, leaf.offset, leaf.key[-1], tuple(leaf.spec.shape))

    # ------------------------------------------------------------------ gymnasium -> rlkernel
    def arrays(self, value: Any) -> list[np.ndarray]:
        """One fresh numpy array per leaf (own memory, spec dtype, 0-based categories)."""
        out = []
        for leaf in self.leaves:
            item = value
            for part in leaf.path:
                item = item[part]
            arr = np.array(item, dtype=leaf.dtype)
            if leaf.offset is not None:
                arr -= leaf.offset
            out.append(arr)
        return out

    def write(self, value: Any, buffers: list[np.ndarray], index: Any) -> None:
        """``buffers[i][index] = leaf i of value`` (cast to the buffer's dtype, 0-based)."""
        for leaf, buf in zip(self.leaves, buffers):
            item = value
            for part in leaf.path:
                item = item[part]
            buf[index] = item
            if leaf.offset is not None:
                buf[index] -= leaf.offset

    def tensors(self, value: Any) -> dict[Key, torch.Tensor]:
        """``{key: tensor}`` for every leaf of ``value``, each tensor with its own memory."""
        out = {}
        for leaf, arr, shape in zip(self.leaves, self.arrays(value), self._shapes):
            tensor = torch.from_numpy(arr)
            out[leaf.key] = tensor if arr.shape == shape else tensor.reshape(shape)
        return out

    def source(self, value: Any, into: dict[str, Any]) -> dict[str, Any]:
        """Put a tensor (own memory) for every leaf of ``value`` into ``into``, a nested
        ``{name: tensor or {name: ...}}`` dict ready to become a TensorDict; returns ``into``.

        Same tensors as :meth:`tensors`, without building the flat dict first: the step
        path calls this once per step.
        """
        if self.single:  # one leaf at the root: no walking, no nesting
            dtype, offset, name, shape = self._single_plan
            arr = np.array(value, dtype=dtype)
            if offset is not None:
                arr -= offset
            tensor = torch.from_numpy(arr)
            into[name] = tensor if arr.shape == shape else tensor.reshape(shape)
            return into
        for (parents, name), arr, shape in zip(self._places, self.arrays(value), self._shapes):
            node = into
            for part in parents:
                node = node.setdefault(part, {})
            tensor = torch.from_numpy(arr)
            node[name] = tensor if arr.shape == shape else tensor.reshape(shape)
        return into

    # ------------------------------------------------------------------ rlkernel -> gymnasium
    def from_arrays(self, arrays: Mapping[GymPath, np.ndarray]) -> Any:
        """Rebuild gymnasium's (nested) value from per-leaf arrays keyed by gym path."""
        return _assemble(self.space, (), arrays)

    def to_gym(self, tensordict: TensorDictBase) -> Any:
        """gymnasium's value for the leaves of ``tensordict`` (actions: start offsets added).

        Each array shares the tensor's memory when the tensor is on the CPU (and no offset
        is added).
        """
        if self.single:
            value = tensordict.get(self._get_keys[0], None)
            if value is None or value.requires_grad or not value.is_cpu:
                value = _as_numpy(value, self.leaves[0])
            else:
                value = value.numpy()
            offset = self._single_plan[1]
            return value if offset is None else value + offset
        arrays: dict[GymPath, np.ndarray] = {}
        for leaf, key in zip(self.leaves, self._get_keys):
            arr = _as_numpy(tensordict.get(key, None), leaf)
            arrays[leaf.path] = arr if leaf.offset is None else arr + leaf.offset
        return self.from_arrays(arrays)


def _as_numpy(value: Any, leaf: Leaf) -> np.ndarray:
    """The numpy array of the tensor ``value`` read for ``leaf`` (copied off an accelerator)."""
    if value is None:
        raise ActionError(f"the TensorDict has no entry {_show(leaf.key)}; expected {leaf.spec!r}")
    if value.requires_grad:
        value = value.detach()
    return value.numpy() if value.is_cpu else value.cpu().numpy()


def _assemble(space: Any, path: GymPath, arrays: Mapping[GymPath, np.ndarray]) -> Any:
    if isinstance(space, spaces.Dict):
        return {name: _assemble(sub, (*path, name), arrays) for name, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_assemble(sub, (*path, i), arrays) for i, sub in enumerate(space.spaces))
    try:
        return arrays[path]
    except KeyError:
        raise EnvError(f"rlkernel-gym: no value for the space at {path!r}") from None


def nest(flat: Mapping[Key, Any]) -> dict[str, Any]:
    """``{("a", "b"): x, ("c",): y}`` -> ``{"a": {"b": x}, "c": y}`` (for TensorDict)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = value
    return out
