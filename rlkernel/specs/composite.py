"""The :class:`Composite` spec: a nested mapping from string keys to specs.

Values of a composite are :class:`tensordict.TensorDict` objects whose ``batch_size`` starts
with the composite's ``shape``. Nested keys are tuples of strings, as in TensorDict:
``spec["next", "observation"]`` is ``spec["next"]["observation"]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from rlkernel.errors import SpecError
from rlkernel.specs._utils import (
    DeviceLike,
    ShapeLike,
    SpecKeyError,
    as_device,
    as_size,
    fmt_shape,
    indexed_shape,
    normalize_index,
)
from rlkernel.specs._utils import show_path as _show
from rlkernel.specs.base import TensorSpec
from rlkernel.specs.composite_shapes import CompositeShapes
from rlkernel.specs.composite_values import CompositeValues

NestedKey = str | tuple[str, ...]


def _as_key(key: Any) -> tuple[str, ...]:
    """``"a"`` -> ``("a",)``; a non-empty tuple of strings is returned as is."""
    if isinstance(key, str):
        return (key,)
    if isinstance(key, tuple) and key and all(isinstance(k, str) for k in key):
        return key
    raise SpecError(f"Composite keys are strings or non-empty tuples of strings, got {key!r}")


def _is_key(key: Any) -> bool:
    return isinstance(key, str) or (
        isinstance(key, tuple) and bool(key) and all(isinstance(k, str) for k in key)
    )




class Composite(CompositeValues, CompositeShapes, TensorSpec):
    """A nested mapping ``str -> TensorSpec`` describing a TensorDict.

    ``shape`` is the batch shape: every child's shape must start with it. Children are moved
    to the composite's ``device`` (by default the device of the first child, else cpu);
    plain dicts given as children become nested composites with the same batch shape.
    ``dtype`` is ``None``.

    Values are TensorDicts: ``rand`` and ``zero`` return a ``TensorDict`` of batch size
    ``(*shape, *self.shape)``; ``is_in`` accepts a TensorDict (or a mapping) that holds every
    key of the spec (extra keys are ignored) with each leaf in its spec.

    A locked composite (``lock_()``) refuses to gain, replace or lose keys, and so do its
    nested composites.

    Example::

        >>> from rlkernel.specs import Unbounded
        >>> spec = Composite(
        ...     observation=Unbounded((4, 3)),
        ...     next=Composite(reward=Unbounded((4, 1)), shape=(4,)),
        ...     shape=(4,),
        ... )
        >>> spec.keys(include_nested=True, leaves_only=True)
        ['observation', ('next', 'reward')]
        >>> td = spec.rand()
        >>> td.batch_size, spec.is_in(td)
        (torch.Size([4]), True)
    """

    def __init__(
        self,
        spec_dict: Mapping[str, Any] | None = None,
        *,
        shape: ShapeLike = (),
        device: DeviceLike = None,
        **kwargs: Any,
    ) -> None:
        children: dict[str, Any] = dict(spec_dict) if spec_dict is not None else {}
        children.update(kwargs)
        if device is None:
            device = next((v.device for v in children.values() if isinstance(v, TensorSpec)), None)
        self.shape = as_size(shape)
        self.dtype = None  # type: ignore[assignment]
        self.device = as_device(device)
        self._ndim = len(self.shape)
        self._specs: dict[str, TensorSpec] = {}
        self._locked = False
        for key, value in children.items():
            self._set((key,), value, (key,))

    # ----------------------------------------------------------------- mapping protocol
    def _child(self, path: tuple[str, ...], value: Any) -> TensorSpec:
        if isinstance(value, Mapping) and not isinstance(value, TensorSpec):
            value = Composite(value, shape=self.shape, device=self.device)
        if not isinstance(value, TensorSpec):
            raise SpecError(
                f"Composite: the value for key {_show(path)} must be a TensorSpec or a dict of "
                f"specs, got {type(value).__name__}"
            )
        if value.shape[: self._ndim] != self.shape:
            raise SpecError(
                f"Composite: the spec for key {_show(path)} has shape {fmt_shape(value.shape)}, "
                f"which does not start with the batch shape {fmt_shape(self.shape)} ({value!r})"
            )
        return value if value.device == self.device else value.to(self.device)

    def _set(self, key: tuple[str, ...], value: Any, path: tuple[str, ...]) -> None:
        if self._locked:
            raise SpecError(
                f"Composite is locked: cannot set key {_show(path)}; call unlock_() first"
            )
        head = key[0]
        if len(key) == 1:
            self._specs[head] = self._child(path, value)
            return
        sub = self._specs.get(head)
        if sub is None:
            sub = Composite(shape=self.shape, device=self.device)
            sub._set(key[1:], value, path)
            self._specs[head] = sub
        elif isinstance(sub, Composite):
            sub._set(key[1:], value, path)
        else:
            raise SpecError(
                f"Composite: key {head!r} holds a {type(sub).__name__}, not a Composite, so "
                f"{_show(path)} cannot be set"
            )

    def __setitem__(self, key: NestedKey, value: TensorSpec | Mapping[str, Any]) -> None:
        """Set a child; nested tuple keys create intermediate composites as needed."""
        path = _as_key(key)
        self._set(path, value, path)

    def set(self, key: NestedKey, spec: TensorSpec | Mapping[str, Any]) -> Composite:
        """``self[key] = spec``, returning ``self``."""
        self[key] = spec
        return self

    def _walk(self, path: tuple[str, ...]) -> TensorSpec:
        node: TensorSpec = self
        for i, part in enumerate(path):
            if not isinstance(node, Composite):
                raise SpecKeyError(
                    f"key {_show(path)} not found: {_show(path[:i])} is a "
                    f"{type(node).__name__}, not a Composite"
                )
            child = node._specs.get(part)
            if child is None:
                raise SpecKeyError(
                    f"key {_show(path)} not found in Composite (keys there: {list(node._specs)})"
                )
            node = child
        return node

    def __getitem__(self, idx: Any) -> Any:
        """A child by key (``"obs"`` or ``("next", "obs")``), or, for any other index, the
        composite with the batch dims of every child indexed (``spec[0]``, ``spec[:, 1]``)."""
        if _is_key(idx):
            return self._walk(_as_key(idx))
        norm = normalize_index(idx, self._ndim, "Composite")
        new_shape = indexed_shape(self.shape, norm, "Composite")
        return self._map_children(lambda v: v[norm], new_shape, "__getitem__")

    def __delitem__(self, key: NestedKey) -> None:
        path = _as_key(key)
        parent = self._walk(path[:-1]) if len(path) > 1 else self
        if not isinstance(parent, Composite) or path[-1] not in parent._specs:
            raise SpecKeyError(f"key {_show(path)} not found in Composite")
        if parent._locked:
            raise SpecError(
                f"Composite is locked: cannot delete key {_show(path)}; call unlock_() first"
            )
        del parent._specs[path[-1]]

    def __contains__(self, key: object) -> bool:
        if not _is_key(key):
            return False
        try:
            self._walk(_as_key(key))
        except KeyError:
            return False
        return True

    def get(self, key: NestedKey, default: Any = None) -> Any:
        """``self[key]``, or ``default`` when the key is missing."""
        try:
            return self._walk(_as_key(key))
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def keys(self, include_nested: bool = False, leaves_only: bool = False) -> list[NestedKey]:
        """Keys in insertion order, depth first; nested keys are tuples (TensorDict style).

        ``leaves_only`` drops the keys of nested composites; ``include_nested`` descends
        into them.
        """
        out: list[NestedKey] = []
        for key, value in self._specs.items():
            nested = isinstance(value, Composite)
            if not (leaves_only and nested):
                out.append(key)
            if include_nested and nested:
                for sub in value.keys(True, leaves_only):
                    out.append((key, *sub) if isinstance(sub, tuple) else (key, sub))
        return out

    def items(
        self, include_nested: bool = False, leaves_only: bool = False
    ) -> list[tuple[NestedKey, TensorSpec]]:
        """``(key, spec)`` pairs, with the flags of :meth:`keys`."""
        return [(k, self[k]) for k in self.keys(include_nested, leaves_only)]

    def values(self, include_nested: bool = False, leaves_only: bool = False) -> list[TensorSpec]:
        """Specs, with the flags of :meth:`keys`."""
        return [self[k] for k in self.keys(include_nested, leaves_only)]

    # ----------------------------------------------------------------- locking
    def lock_(self) -> Composite:
        """Refuse further writes (here and in nested composites); returns ``self``."""
        self._locked = True
        for value in self._specs.values():
            if isinstance(value, Composite):
                value.lock_()
        return self

    def unlock_(self) -> Composite:
        """Allow writes again (here and in nested composites); returns ``self``."""
        self._locked = False
        for value in self._specs.values():
            if isinstance(value, Composite):
                value.unlock_()
        return self

    @property
    def is_locked(self) -> bool:
        """Whether writes are refused."""
        return self._locked

    def _ctor_kwargs(self) -> dict[str, Any]:
        return {"spec_dict": dict(self._specs), "shape": self.shape, "device": self.device}

    def select(self, *keys: NestedKey, strict: bool = True) -> Composite:
        """A composite with only ``keys`` (nested keys allowed). Leaf specs are shared, not
        copied. A missing key raises unless ``strict=False``."""
        out = Composite(shape=self.shape, device=self.device)
        for key in keys:
            path = _as_key(key)
            if path not in self:
                if strict:
                    raise SpecKeyError(f"Composite.select: key {_show(path)} not found")
                continue
            src: Composite = self
            dst = out
            for part in path[:-1]:
                src = src._specs[part]  # type: ignore[assignment]
                nxt = dst._specs.get(part)
                if not isinstance(nxt, Composite):
                    nxt = Composite(shape=src.shape, device=src.device)
                    dst._specs[part] = nxt
                dst = nxt
            value = src._specs[path[-1]]
            dst._specs[path[-1]] = (
                value._structure_copy() if isinstance(value, Composite) else value
            )
        return out

    def exclude(self, *keys: NestedKey) -> Composite:
        """A composite without ``keys`` (nested keys allowed; missing keys are ignored)."""
        out = self._structure_copy()
        for key in keys:
            path = _as_key(key)
            parent = out.get(path[:-1]) if len(path) > 1 else out
            if isinstance(parent, Composite):
                parent._specs.pop(path[-1], None)
        return out

    def update(self, other: Composite | Mapping[str, Any]) -> Composite:
        """Set every key of ``other`` here, merging nested composites; returns ``self``."""
        for key, value in other.items():
            current = self._specs.get(key)
            if isinstance(current, Composite) and isinstance(value, (Composite, Mapping)):
                current.update(value)
            else:
                self[key] = value
        return self

    def empty(self) -> Composite:
        """A composite with the same shape and device and no keys."""
        return Composite(shape=self.shape, device=self.device)

    def is_empty(self) -> bool:
        """True when there is no leaf spec (nested composites may exist but are empty)."""
        return all(isinstance(v, Composite) and v.is_empty() for v in self._specs.values())

    # ----------------------------------------------------------------- comparison, repr
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TensorSpec):
            return NotImplemented
        if not isinstance(other, Composite):
            return False
        if (self.shape, self.device) != (other.shape, other.device):
            return False
        if self._specs.keys() != other._specs.keys():
            return False
        return all(v == other._specs[k] for k, v in self._specs.items())

    def __repr__(self) -> str:
        tail = f"shape={fmt_shape(self.shape)}"
        if self.device.type != "cpu":
            tail += f", device={self.device}"
        if self._locked:
            tail += ", locked=True"
        if not self._specs:
            return f"Composite({tail})"
        lines = ["Composite("]
        for key, value in self._specs.items():
            child = repr(value).replace("\n", "\n    ")
            lines.append(f"    {key}: {child},")
        lines.append(f"    {tail})")
        return "\n".join(lines)
