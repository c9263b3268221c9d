"""Specs over a finite set of categories: :class:`Categorical` and :class:`OneHot`.

``Categorical`` holds integer category indices and has no event dims. ``OneHot`` has one
event dim (the last): ``n`` entries of which exactly one is hot.

Masks (``Categorical`` and ``OneHot``) are bool tensors marking the allowed categories:
``rand`` draws only allowed ones, ``is_in`` refuses the others and ``project`` moves a value
to the nearest allowed category (``Categorical``) or the highest-scoring allowed entry
(``OneHot``). Every row of a mask must allow at least one category.
"""

from __future__ import annotations

import operator
from typing import Any

import torch

from rlkernel.errors import SpecError
from rlkernel.specs._utils import (
    INT_DTYPES,
    REAL_DTYPES,
    DeviceLike,
    ShapeLike,
    as_device,
    as_size,
    check_dtype,
    first_true,
    fmt_index,
    fmt_num,
    fmt_shape,
    host_array,
    to_int64,
)
from rlkernel.specs.base import TensorSpec

# Finite stand-ins for +-inf / NaN when ranking scores in float64.
_BIG = 1.0e308


def check_n(n: Any, owner: str) -> int:
    """Return ``n`` as an int >= 1 or raise :class:`SpecError`."""
    try:
        value = operator.index(n)
    except TypeError:
        raise SpecError(f"{owner}: n must be an int, got {n!r}") from None
    if value < 1:
        raise SpecError(f"{owner}: n must be >= 1, got {value}")
    return value


def check_mask(mask: Any, shape: torch.Size, device: torch.device, owner: str) -> torch.Tensor:
    """Validate a bool mask broadcastable to ``shape`` with at least one True per row
    (along the last dim) and return it expanded to ``shape`` on ``device``."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        what = f"a {mask.dtype} tensor" if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise SpecError(f"{owner}: mask must be a bool tensor, got {what}")
    try:
        full = mask.to(device).expand(shape).clone()
    except RuntimeError:
        raise SpecError(
            f"{owner}: mask of shape {fmt_shape(mask.shape)} does not broadcast to "
            f"{fmt_shape(shape)}"
        ) from None
    empty = ~full.any(-1)
    if bool(empty.any()):
        raise SpecError(f"{owner}: mask allows no category at index {fmt_index(first_true(empty))}")
    return full


def score_tensor(val: torch.Tensor) -> torch.Tensor:
    """``val`` as float64 scores with NaN ranked lowest and infinities made finite."""
    return torch.nan_to_num(val.to(torch.float64), nan=-_BIG, posinf=_BIG, neginf=-_BIG)


def mask_note(mask: torch.Tensor | None) -> list[str]:
    """The repr item of a mask; an all-True mask restricts nothing and is not shown."""
    if mask is None or bool(mask.all()):
        return []
    return [f"mask=<{int(mask.sum())} of {mask.numel()} allowed>"]


class Categorical(TensorSpec):
    """Integer category indices in ``[0, n)``, of any ``shape`` (no event dims).

    ``mask`` (optional) is a bool tensor broadcastable to ``(*shape, n)``; change it with
    :meth:`update_mask`. ``dtype`` is an integer dtype, or bool when ``n <= 2`` (as used for
    done flags). ``zero`` is category 0, or the first allowed category under a mask.

    Example::

        >>> spec = Categorical(4, shape=(2,), mask=torch.tensor([True, False, True, False]))
        >>> spec.project(torch.tensor([1, 3]))     # nearest allowed categories
        tensor([0, 2])
    """

    _batch_params = ("mask",)

    def __init__(
        self,
        n: int,
        shape: ShapeLike = (),
        dtype: torch.dtype | None = torch.int64,
        device: DeviceLike = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        n = check_n(n, "Categorical")
        dtype = torch.int64 if dtype is None else dtype
        check_dtype(dtype, INT_DTYPES | {torch.bool}, "Categorical")
        if dtype is torch.bool and n > 2:
            raise SpecError(f"Categorical: dtype bool holds at most 2 categories, got n={n}")
        if dtype is not torch.bool and n - 1 > torch.iinfo(dtype).max:
            raise SpecError(f"Categorical: n={n} categories do not fit dtype {dtype}")
        super().__init__(as_size(shape), dtype, as_device(device))
        self.n = n
        self._cats = torch.arange(n, device=self.device)
        self.update_mask(mask)

    def update_mask(self, mask: torch.Tensor | None) -> None:
        """Set (or with ``None`` clear) the mask of allowed categories, in place."""
        if mask is None:
            self.mask = None
            self._not_mask = None
            self._zero_value = torch.zeros(self.shape, dtype=self.dtype, device=self.device)
            return
        full = check_mask(mask, torch.Size((*self.shape, self.n)), self.device, "Categorical")
        self.mask = full
        self._not_mask = ~full
        self._zero_value = full.to(torch.uint8).argmax(-1).to(self.dtype)

    def _ctor_kwargs(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "shape": self.shape,
            "dtype": self.dtype,
            "device": self.device,
            "mask": self.mask,
        }

    def _repr_params(self) -> list[str]:
        return [f"n={self.n}", *mask_note(self.mask)]

    def rand(
        self, shape: ShapeLike = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Uniform over the categories (the allowed ones under a mask)."""
        size = self._full_shape(shape)
        if self._not_mask is not None:
            scores = torch.rand((*size, self.n), generator=generator, device=self.device)
            return scores.masked_fill_(self._not_mask, -1.0).argmax(-1).to(self.dtype)
        if self.dtype is torch.bool:
            out = torch.randint(
                0, self.n, size, generator=generator, dtype=torch.uint8, device=self.device
            )
            return out.bool()
        return torch.randint(
            0, self.n, size, generator=generator, dtype=self.dtype, device=self.device
        )

    def _allowed(self, val: torch.Tensor) -> torch.Tensor:
        assert self.mask is not None
        idx = val.to(torch.int64).clamp(0, self.n - 1).unsqueeze(-1)
        return self.mask.expand(*val.shape, self.n).gather(-1, idx).squeeze(-1)

    def _values_in(self, val: torch.Tensor) -> bool:
        if self.mask is not None:
            return bool(((val >= 0) & (val < self.n)).all() & self._allowed(val).all())
        if self.dtype is torch.bool:
            return self.n == 2 or not bool(val.any())
        if val.numel() == 1:  # one category: no kernel to run
            return 0 <= val.item() < self.n
        arr = host_array(val)
        if arr is not None:
            return bool((arr >= 0).all() and (arr < self.n).all())
        return bool(((val >= 0) & (val < self.n)).all())

    def _why_values(self, val: torch.Tensor) -> str | None:
        v = val.to(torch.int64)
        outside = (v < 0) | (v >= self.n)
        if bool(outside.any()):
            where = first_true(outside)
            return f"value {fmt_num(v[where])} is outside [0, {self.n}) at index {fmt_index(where)}"
        if self.mask is not None:
            masked = ~self._allowed(val)
            if bool(masked.any()):
                where = first_true(masked)
                row = self.mask.expand(*val.shape, self.n)[where]
                allowed = torch.nonzero(row).flatten().tolist()
                return (
                    f"category {fmt_num(v[where])} is masked out at index {fmt_index(where)} "
                    f"(allowed there: {allowed})"
                )
        return None

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        out = to_int64(val).clamp(0, self.n - 1)
        if val.is_floating_point():
            out = torch.where(torch.isnan(val), self._zero_value.to(torch.int64), out)
        if self._not_mask is not None:
            dist = (out.unsqueeze(-1) - self._cats).abs_()
            out = dist.masked_fill_(self._not_mask, self.n + 1).argmin(-1)
        return out.to(self.dtype)

    def to_one_hot(self, val: torch.Tensor, dtype: torch.dtype = torch.bool) -> torch.Tensor:
        """One-hot encoding (new last dim of size ``n``) of category indices ``val``."""
        return (val.to(torch.int64).unsqueeze(-1) == self._cats).to(dtype)

    def to_one_hot_spec(self) -> OneHot:
        """The :class:`OneHot` spec of ``to_one_hot`` values (same mask)."""
        return OneHot(self.n, shape=(*self.shape, self.n), device=self.device, mask=self.mask)


class OneHot(TensorSpec):
    """One-hot vectors over ``n`` categories: the last dim has size ``n`` and holds exactly
    one 1 (or True); everything before it is batch.

    ``dtype`` defaults to bool (as in TorchRL); integer and float dtypes work too.
    ``mask`` (optional) is a bool tensor broadcastable to ``shape``. ``zero`` is the
    one-hot of category 0, or of the first allowed category under a mask. ``project`` takes
    the argmax of the last dim (NaN ranks lowest). ``encode`` accepts a one-hot value or
    integer category indices (shape without the last dim).

    Example::

        >>> spec = OneHot(3)
        >>> spec.encode(2)
        tensor([False, False,  True])
        >>> spec.to_categorical(spec.encode(2))
        tensor(2)
    """

    _event_ndim = 1
    _batch_params = ("mask",)

    def __init__(
        self,
        n: int,
        shape: ShapeLike = None,
        dtype: torch.dtype | None = torch.bool,
        device: DeviceLike = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        n = check_n(n, "OneHot")
        size = torch.Size((n,)) if shape is None else as_size(shape)
        if len(size) == 0 or size[-1] != n:
            raise SpecError(f"OneHot: the last dim of shape {fmt_shape(size)} must be n={n}")
        dtype = torch.bool if dtype is None else dtype
        check_dtype(dtype, REAL_DTYPES, "OneHot")
        super().__init__(size, dtype, as_device(device))
        self.n = n
        self._cats = torch.arange(n, device=self.device)
        self.update_mask(mask)

    def update_mask(self, mask: torch.Tensor | None) -> None:
        """Set (or with ``None`` clear) the mask of allowed categories, in place."""
        if mask is None:
            self.mask = None
            self._not_mask = None
            first = torch.zeros(self.shape[:-1], dtype=torch.int64, device=self.device)
        else:
            self.mask = check_mask(mask, self.shape, self.device, "OneHot")
            self._not_mask = ~self.mask
            first = self.mask.to(torch.uint8).argmax(-1)
        self._zero_value = self._one_hot(first)

    def _one_hot(self, idx: torch.Tensor) -> torch.Tensor:
        return (idx.unsqueeze(-1) == self._cats).to(self.dtype)

    def _ctor_kwargs(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "shape": self.shape,
            "dtype": self.dtype,
            "device": self.device,
            "mask": self.mask,
        }

    def _repr_params(self) -> list[str]:
        return [f"n={self.n}", *mask_note(self.mask)]

    def rand(
        self, shape: ShapeLike = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One-hot of a category drawn uniformly (among the allowed ones under a mask)."""
        size = self._full_shape(shape)
        if self._not_mask is None:
            idx = torch.randint(0, self.n, size[:-1], generator=generator, device=self.device)
        else:
            scores = torch.rand(size, generator=generator, device=self.device)
            idx = scores.masked_fill_(self._not_mask, -1.0).argmax(-1)
        return self._one_hot(idx)

    def _values_in(self, val: torch.Tensor) -> bool:
        if self.dtype is torch.bool:
            ok = (val.sum(-1) == 1).all()
            if self._not_mask is not None:
                ok = ok & ~(val & self._not_mask).any()
        else:
            ok = ((val == 0) | (val == 1)).all() & (val.sum(-1) == 1).all()
            if self._not_mask is not None:
                ok = ok & ~((val != 0) & self._not_mask).any()
        return bool(ok)

    def _why_values(self, val: torch.Tensor) -> str | None:
        if self.dtype is not torch.bool:
            bad = (val != 0) & (val != 1)
            if bool(bad.any()):
                where = first_true(bad)
                return f"value {fmt_num(val[where])} is not 0 or 1 at index {fmt_index(where)}"
        counts = (val != 0).sum(-1)
        bad_rows = counts != 1
        if bool(bad_rows.any()):
            where = first_true(bad_rows)
            row = val[where].to(torch.int64).tolist()
            shown = row if len(row) <= 16 else [*row[:16], "..."]
            return (
                f"row at index {fmt_index(where)} has {int(counts[where])} hot entries, "
                f"expected exactly one: {shown}"
            )
        if self._not_mask is not None:
            masked = ((val != 0) & self._not_mask).any(-1)
            if bool(masked.any()):
                where = first_true(masked)
                cat = int((val[where] != 0).to(torch.uint8).argmax())
                return f"category {cat} is masked out at index {fmt_index(where)}"
        return None

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        scores = score_tensor(val)
        if self._not_mask is not None:
            scores = scores.masked_fill_(self._not_mask, float("-inf"))
        return self._one_hot(scores.argmax(-1))

    def _encode(self, t: torch.Tensor) -> torch.Tensor:
        # Bool values and values of the full shape are one-hot; values with the batch
        # shape (or its number of entries) are indices. With n == 1 both readings have the
        # same size: all-zero values are then read as indices (index 0), others as one-hot.
        batch = self.shape[:-1]
        if t.dtype is not torch.bool and t.shape != self.shape and t.numel() == batch.numel():
            if self.n > 1 or not bool(t.any()):
                return self._one_hot(self._check_indices(t.reshape(batch)))
        if t.numel() == self.shape.numel():
            return self._cast(t.reshape(self.shape))
        raise SpecError(
            f"{self!r}.encode: cannot read a value of shape {fmt_shape(t.shape)} as one-hot "
            f"(shape {fmt_shape(self.shape)}) or as category indices (shape {fmt_shape(batch)})"
        )

    def _check_indices(self, t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point():
            frac = t != torch.round(t)
            if bool(frac.any()):
                raise SpecError(
                    f"{self!r}.encode: category index {fmt_num(t[first_true(frac)])} is not "
                    "an integer"
                )
        idx = to_int64(t)
        outside = (idx < 0) | (idx >= self.n)
        if bool(outside.any()):
            raise SpecError(
                f"{self!r}.encode: category index {fmt_num(idx[first_true(outside)])} is outside "
                f"[0, {self.n})"
            )
        return idx.to(self.device)

    def to_categorical(self, val: torch.Tensor) -> torch.Tensor:
        """Category indices (int64, last dim removed) of one-hot values ``val``."""
        scores = val if val.is_floating_point() else val.to(torch.int32)
        return scores.argmax(-1)

    def to_categorical_spec(self) -> Categorical:
        """The :class:`Categorical` spec of ``to_categorical`` values (same mask)."""
        return Categorical(self.n, shape=self.shape[:-1], device=self.device, mask=self.mask)
