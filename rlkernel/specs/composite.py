"""The :class:`Composite` spec: a nested mapping from string keys to specs.

Values of a composite are :class:`tensordict.TensorDict` objects whose ``batch_size`` starts
with the composite's ``shape``. Nested keys are tuples of strings, as in TensorDict:
``spec["next", "observation"]`` is ``spec["next"]["observation"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

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
    resolve_expand,
    shape_args,
)
from rlkernel.specs.base import TensorSpec

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


def _show(path: tuple[str, ...]) -> str:
    """How a key is printed in messages: ``'obs'`` or ``('next', 'obs')``."""
    return repr(path[0]) if len(path) == 1 else repr(path)


class Composite(TensorSpec):
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

    # ----------------------------------------------------------------- values
    def rand(
        self, shape: ShapeLike = None, *, generator: torch.Generator | None = None
    ) -> TensorDict:
        """A random TensorDict of batch size ``(*shape, *self.shape)``."""
        lead = as_size(shape)
        data = {k: v.rand(lead, generator=generator) for k, v in self._specs.items()}
        return TensorDict(data, batch_size=(*lead, *self.shape), device=self.device)

    def zero(self, shape: ShapeLike = None) -> TensorDict:
        """The TensorDict of every child's ``zero``, batch size ``(*shape, *self.shape)``."""
        lead = as_size(shape)
        data = {k: v.zero(lead) for k, v in self._specs.items()}
        return TensorDict(data, batch_size=(*lead, *self.shape), device=self.device)

    def is_in(self, val: Any) -> bool:
        """True iff ``val`` (TensorDict or mapping) holds every key with a value in its spec."""
        if not isinstance(val, (TensorDictBase, Mapping)):
            return False
        for key, spec in self._specs.items():
            try:
                item = val[key]
            except KeyError:
                return False
            if not spec.is_in(item):
                return False
        return True

    def why_not_in(self, val: Any) -> str | None:
        """``None`` if ``is_in(val)``, else why not, naming the first bad (nested) key."""
        return self._why(val, ())

    def _why(self, val: Any, prefix: tuple[str, ...]) -> str | None:
        if not isinstance(val, (TensorDictBase, Mapping)):
            where = f"key {_show(prefix)}: " if prefix else ""
            return f"{where}expected a TensorDict or a mapping, got {type(val).__name__}"
        for key, spec in self._specs.items():
            path = (*prefix, key)
            try:
                item = val[key]
            except KeyError:
                return f"key {_show(path)} is missing"
            if isinstance(spec, Composite):
                reason = spec._why(item, path)
            else:
                reason = spec.why_not_in(item)
                reason = reason and f"key {_show(path)} does not fit {spec!r}: {reason}"
            if reason:
                return reason
        return None

    def assert_is_in(self, val: Any, key: Any = None, *, role: str = "value") -> None:
        """Raise :class:`SpecError` naming the first bad nested key unless ``is_in(val)``."""
        if self.is_in(val):
            return
        who = role if key is None else f"{role} {key!r}"
        raise SpecError(f"{who} does not fit the Composite spec: {self.why_not_in(val)}")

    def project(self, val: Any) -> Any:
        """Project every leaf; keys that the spec does not know are kept as they are.

        A TensorDict gives a new TensorDict (same batch size), a mapping gives a dict.
        """
        if not isinstance(val, (TensorDictBase, Mapping)):
            raise SpecError(
                f"Composite.project expects a TensorDict or a mapping, got {type(val).__name__}"
            )
        missing = [k for k in self._specs if k not in val.keys()]
        if missing:
            raise SpecKeyError(f"Composite.project: keys {missing} are missing from the value")
        out = {}
        for key in val.keys():
            spec, item = self._specs.get(key), val[key]
            if spec is not None:
                item = self._keyed(key, "project", lambda s=spec, x=item: s.project(x))
            out[key] = item
        if isinstance(val, TensorDictBase):
            return TensorDict(out, batch_size=val.batch_size, device=val.device)
        return out

    def encode(self, val: Any, *, ignore_device: bool = False) -> TensorDict:
        """Encode a mapping ``key -> value`` (nested mappings for nested composites) into a
        TensorDict of batch size ``self.shape``; each child encodes its own value."""
        if not isinstance(val, (TensorDictBase, Mapping)):
            raise SpecError(f"Composite.encode expects a mapping, got {type(val).__name__}")
        out = {}
        for key, item in val.items():
            spec = self._specs.get(key)
            if spec is None:
                raise SpecKeyError(
                    f"Composite.encode: key {key!r} is not in the spec (keys: {list(self._specs)})"
                )
            out[key] = self._keyed(
                key, "encode", lambda s=spec, x=item: s.encode(x, ignore_device=ignore_device)
            )
        return TensorDict(out, batch_size=self.shape, device=None if ignore_device else self.device)

    @staticmethod
    def _keyed(key: str, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except SpecError as err:
            raise type(err)(f"Composite.{what}: key {key!r}: {err}") from err

    # ----------------------------------------------------------------- abstract hooks
    def _values_in(self, val: torch.Tensor) -> bool:
        return self.is_in(val)

    def _why_values(self, val: torch.Tensor) -> str | None:
        return self.why_not_in(val)

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        return self.project(val)

    def _ctor_kwargs(self) -> dict[str, Any]:
        return {"spec_dict": dict(self._specs), "shape": self.shape, "device": self.device}

    # ----------------------------------------------------------------- shape operations
    def _map_children(
        self, fn: Callable[[TensorSpec], TensorSpec], shape: torch.Size, what: str
    ) -> Composite:
        out = Composite(shape=shape, device=self.device)
        for key, value in self._specs.items():
            out._specs[key] = self._keyed(key, what, lambda v=value: fn(v))
            child = out._specs[key]
            if child.shape[: len(shape)] != shape:  # a child refused to follow the batch dims
                raise SpecError(
                    f"Composite.{what}: key {key!r} gave shape {fmt_shape(child.shape)}, "
                    f"which does not start with {fmt_shape(shape)}"
                )
        return out

    def expand(self, *shape: Any) -> Composite:
        """Expand the batch shape (new leading dims, ``-1`` keeps, size-1 dims may grow);
        every child is expanded alike."""
        new = resolve_expand(self.shape, shape_args(shape, "expand"), self._ndim, "Composite")
        nd = self._ndim
        return self._map_children(lambda v: v.expand(*new, *v.shape[nd:]), new, "expand")

    def unsqueeze(self, dim: int) -> Composite:
        """Insert a batch dim of size 1 at ``dim`` (relative to the batch shape)."""
        d = dim + self._ndim + 1 if dim < 0 else dim
        if not 0 <= d <= self._ndim:
            raise SpecError(
                f"Composite.unsqueeze({dim}): dim out of range for batch shape "
                f"{fmt_shape(self.shape)}"
            )
        new = torch.Size((*self.shape[:d], 1, *self.shape[d:]))
        return self._map_children(lambda v: v.unsqueeze(d), new, "unsqueeze")

    def squeeze(self, dim: int | None = None) -> Composite:
        """Drop batch dims of size 1 (all of them, or ``dim`` when it has size 1)."""
        if dim is None:
            dims = [i for i, s in enumerate(self.shape) if s == 1]
        else:
            d = dim + self._ndim if dim < 0 else dim
            if not 0 <= d < self._ndim:
                raise SpecError(
                    f"Composite.squeeze({dim}): dim out of range for batch shape "
                    f"{fmt_shape(self.shape)}"
                )
            dims = [d] if self.shape[d] == 1 else []
        new = torch.Size(s for i, s in enumerate(self.shape) if i not in dims)

        def drop(v: TensorSpec) -> TensorSpec:
            for d in reversed(dims):
                v = v.squeeze(d)
            return v

        return self._map_children(drop, new, "squeeze")

    @property
    def ndim(self) -> int:
        """Number of batch dims."""
        return self._ndim

    # ----------------------------------------------------------------- copies
    def clone(self) -> Composite:
        """A deep, unlocked copy."""
        return self._map_children(lambda v: v.clone(), self.shape, "clone")

    def to(self, dest: torch.dtype | DeviceLike) -> Composite:
        """Move every child to a device, or cast the floating-point leaves to a dtype
        (integer and bool leaves keep theirs)."""
        if isinstance(dest, torch.dtype):

            def cast(v: TensorSpec) -> TensorSpec:
                if isinstance(v, Composite) or v.dtype.is_floating_point:
                    return v.to(dest)
                return v

            return self._map_children(cast, self.shape, "to")
        device = as_device(dest)
        if device == self.device:
            return self
        out = Composite(shape=self.shape, device=device)
        for key, value in self._specs.items():
            out._specs[key] = value.to(device)
        return out

    def _structure_copy(self) -> Composite:
        """New, unlocked composites all the way down; leaf specs are shared."""
        out = Composite(shape=self.shape, device=self.device)
        for key, value in self._specs.items():
            out._specs[key] = value._structure_copy() if isinstance(value, Composite) else value
        return out

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
