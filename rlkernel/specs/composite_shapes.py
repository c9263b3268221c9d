"""Shape operations and copies of :class:`~rlkernel.specs.Composite`: ``expand``,
``unsqueeze``, ``squeeze``, ``clone``, ``to`` (a mixin; the mapping lives in ``composite.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from rlkernel.errors import SpecError
from rlkernel.specs._utils import (
    DeviceLike,
    as_device,
    fmt_shape,
    resolve_expand,
    shape_args,
)
from rlkernel.specs.base import TensorSpec

if TYPE_CHECKING:
    from rlkernel.specs.composite import Composite


def _composite() -> type:
    """The :class:`~rlkernel.specs.Composite` class (its module imports this one)."""
    from rlkernel.specs.composite import Composite

    return Composite


class CompositeShapes:
    """Batch-shape operations and copies of a composite, applied to every child."""

    # ----------------------------------------------------------------- shape operations
    def _map_children(
        self, fn: Callable[[TensorSpec], TensorSpec], shape: torch.Size, what: str
    ) -> Composite:
        out = _composite()(shape=shape, device=self.device)
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
                if isinstance(v, _composite()) or v.dtype.is_floating_point:
                    return v.to(dest)
                return v

            return self._map_children(cast, self.shape, "to")
        device = as_device(dest)
        if device == self.device:
            return self
        out = _composite()(shape=self.shape, device=device)
        for key, value in self._specs.items():
            out._specs[key] = value.to(device)
        return out

    def _structure_copy(self) -> Composite:
        """New, unlocked composites all the way down; leaf specs are shared."""
        out = _composite()(shape=self.shape, device=self.device)
        for key, value in self._specs.items():
            out._specs[key] = value._structure_copy() if isinstance(value, _composite()) else value
        return out
