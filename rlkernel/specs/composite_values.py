"""The values side of :class:`~rlkernel.specs.Composite`: ``rand``, ``zero``, membership
with its reasons, ``project`` and ``encode`` (a mixin; the mapping lives in ``composite.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.errors import SpecError
from rlkernel.specs._utils import (
    ShapeLike,
    SpecKeyError,
    as_size,
)
from rlkernel.specs._utils import show_path as _show


def _composite() -> type:
    """The :class:`~rlkernel.specs.Composite` class (its module imports this one)."""
    from rlkernel.specs.composite import Composite

    return Composite


class CompositeValues:
    """Values of a composite: TensorDicts whose batch size starts with the composite's shape."""

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
            if isinstance(spec, _composite()):
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
