"""Specs over several categorical variables at once: :class:`MultiCategorical` and
:class:`MultiOneHot`.

``nvec`` lists the number of categories of each variable (a 1-D sequence, the same for every
batch entry; batch dims go in ``shape``). Both specs have one event dim, the last:
``len(nvec)`` indices for ``MultiCategorical``, ``sum(nvec)`` concatenated one-hot entries
for ``MultiOneHot``.

Internally the variables are laid out on a padded ``(len(nvec), max(nvec))`` grid so that
sampling, masking and projection are single vectorised ops.
"""

from __future__ import annotations

import functools
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
    to_int64,
)
from rlkernel.specs.base import TensorSpec
from rlkernel.specs.discrete import mask_note, score_tensor


def parse_nvec(nvec: Any, owner: str) -> tuple[int, ...]:
    """Read ``nvec`` (a sequence or 1-D integer tensor of ints >= 1) as a tuple."""
    if isinstance(nvec, torch.Tensor):
        if nvec.ndim != 1 or nvec.is_floating_point():
            raise SpecError(
                f"{owner}: nvec must be a 1-D integer tensor (batch dims go in shape), got "
                f"shape {fmt_shape(nvec.shape)} and dtype {nvec.dtype}"
            )
        nvec = nvec.tolist()
    try:
        values = tuple(operator.index(n) for n in nvec)
    except TypeError:
        raise SpecError(f"{owner}: nvec must be a sequence of ints, got {nvec!r}") from None
    if not values:
        raise SpecError(f"{owner}: nvec must not be empty")
    if min(values) < 1:
        raise SpecError(f"{owner}: every entry of nvec must be >= 1, got {list(values)}")
    return values


class _Segments:
    """Derived tensors for a given ``nvec`` on one device (shared, read-only; see
    :func:`_segments`)."""

    def __init__(self, nvec: tuple[int, ...], device: torch.device) -> None:
        self.k = len(nvec)
        self.total = sum(nvec)
        self.width = max(nvec)
        self.nvec = torch.tensor(nvec, dtype=torch.int64, device=device)
        self.nvec_f = self.nvec.to(torch.float32)
        self.high = self.nvec - 1
        self.offsets = torch.cumsum(self.nvec, 0) - self.nvec
        cols = torch.arange(self.width, device=device)
        self.cols = cols
        self.valid = cols < self.nvec.unsqueeze(-1)  # (k, width)
        self.index = torch.where(self.valid, self.offsets.unsqueeze(-1) + cols, 0)  # (k, width)
        self.seg_id = torch.repeat_interleave(torch.arange(self.k, device=device), self.nvec)

    def padded(self, val: torch.Tensor) -> torch.Tensor:
        """``(..., total)`` -> ``(..., k, width)``; padding entries repeat entry 0."""
        return val[..., self.index]


@functools.lru_cache(maxsize=256)
def _segments(nvec: tuple[int, ...], device: torch.device) -> _Segments:
    """Cached :class:`_Segments`: specs rebuilt by expand / indexing reuse them."""
    return _Segments(nvec, device)


class MultiCategorical(TensorSpec):
    """``len(nvec)`` category indices per batch entry, index ``j`` in ``[0, nvec[j])``.

    ``shape`` defaults to ``(len(nvec),)`` and must end with ``len(nvec)``. ``mask`` (optional)
    is a bool tensor broadcastable to ``(*shape[:-1], sum(nvec))``: the concatenated allowed
    categories of every variable (as in TorchRL). ``zero`` is 0 for each variable (the first
    allowed category under a mask); ``project`` rounds, clamps and moves masked values to the
    nearest allowed category.

    Example::

        >>> spec = MultiCategorical([2, 3])
        >>> spec.is_in(torch.tensor([1, 2]))
        True
        >>> spec.project(torch.tensor([5.0, -1.0]))
        tensor([1, 0])
    """

    _event_ndim = 1
    _batch_params = ("mask",)

    def __init__(
        self,
        nvec: Any,
        shape: ShapeLike = None,
        dtype: torch.dtype | None = torch.int64,
        device: DeviceLike = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        values = parse_nvec(nvec, "MultiCategorical")
        size = torch.Size((len(values),)) if shape is None else as_size(shape)
        if len(size) == 0 or size[-1] != len(values):
            raise SpecError(
                f"MultiCategorical: the last dim of shape {fmt_shape(size)} must be "
                f"len(nvec)={len(values)}"
            )
        dtype = torch.int64 if dtype is None else dtype
        check_dtype(dtype, INT_DTYPES, "MultiCategorical")
        if max(values) - 1 > torch.iinfo(dtype).max:
            raise SpecError(f"MultiCategorical: nvec {list(values)} does not fit dtype {dtype}")
        super().__init__(size, dtype, as_device(device))
        self._nvec = values
        self._seg = _segments(values, self.device)
        self.nvec = self._seg.nvec
        self.update_mask(mask)

    def update_mask(self, mask: torch.Tensor | None) -> None:
        """Set (or with ``None`` clear) the mask of allowed categories, in place."""
        seg = self._seg
        if mask is None:
            self.mask = None
            self._mask_pad = self._not_mask_pad = None
            self._zero_value = torch.zeros(self.shape, dtype=self.dtype, device=self.device)
            return
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise SpecError(f"MultiCategorical: mask must be a bool tensor, got {mask!r}")
        full_shape = torch.Size((*self.shape[:-1], seg.total))
        try:
            full = mask.to(self.device).expand(full_shape).clone()
        except RuntimeError:
            raise SpecError(
                f"MultiCategorical: mask of shape {fmt_shape(mask.shape)} does not broadcast to "
                f"{fmt_shape(full_shape)} (batch dims, then sum(nvec))"
            ) from None
        pad = seg.padded(full) & seg.valid
        empty = ~pad.any(-1)
        if bool(empty.any()):
            where = first_true(empty)
            raise SpecError(
                f"MultiCategorical: mask allows no category of variable {where[-1]} at batch "
                f"index {fmt_index(where[:-1])}"
            )
        self.mask = full
        self._mask_pad = pad
        self._not_mask_pad = ~pad
        self._zero_value = pad.to(torch.uint8).argmax(-1).to(self.dtype)

    def _ctor_kwargs(self) -> dict[str, Any]:
        return {
            "nvec": self._nvec,
            "shape": self.shape,
            "dtype": self.dtype,
            "device": self.device,
            "mask": self.mask,
        }

    def _repr_params(self) -> list[str]:
        return [f"nvec={list(self._nvec)}", *mask_note(self.mask)]

    def rand(
        self, shape: ShapeLike = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Each variable uniform over its categories (the allowed ones under a mask)."""
        size = self._full_shape(shape)
        seg = self._seg
        if self._not_mask_pad is not None:
            scores = torch.rand((*size, seg.width), generator=generator, device=self.device)
            return scores.masked_fill_(self._not_mask_pad, -1.0).argmax(-1).to(self.dtype)
        u = torch.rand(size, generator=generator, device=self.device)
        out = u.mul_(seg.nvec_f).floor_().to(torch.int64)
        return torch.minimum(out, seg.high).to(self.dtype)

    def _allowed(self, val: torch.Tensor) -> torch.Tensor:
        assert self._mask_pad is not None
        idx = torch.minimum(val.to(torch.int64).clamp(min=0), self._seg.high)
        grid = self._mask_pad.expand(*val.shape, self._seg.width)
        return grid.gather(-1, idx.unsqueeze(-1)).squeeze(-1)

    def _values_in(self, val: torch.Tensor) -> bool:
        ok = ((val >= 0) & (val < self._seg.nvec)).all()
        if self._mask_pad is not None:
            ok = ok & self._allowed(val).all()
        return bool(ok)

    def _why_values(self, val: torch.Tensor) -> str | None:
        v = val.to(torch.int64)
        outside = (v < 0) | (v >= self._seg.nvec)
        if bool(outside.any()):
            where = first_true(outside)
            n = self._nvec[where[-1]]
            return (
                f"value {fmt_num(v[where])} of variable {where[-1]} is outside [0, {n}) at "
                f"index {fmt_index(where)}"
            )
        if self._mask_pad is not None:
            masked = ~self._allowed(val)
            if bool(masked.any()):
                where = first_true(masked)
                return (
                    f"category {fmt_num(v[where])} of variable {where[-1]} is masked out at "
                    f"index {fmt_index(where)}"
                )
        return None

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        seg = self._seg
        out = torch.minimum(to_int64(val).clamp(min=0), seg.high)
        if val.is_floating_point():
            out = torch.where(torch.isnan(val), self._zero_value.to(torch.int64), out)
        if self._not_mask_pad is not None:
            dist = (out.unsqueeze(-1) - seg.cols).abs_()
            out = dist.masked_fill_(self._not_mask_pad, seg.width + 1).argmin(-1)
        return out.to(self.dtype)

    def to_one_hot(self, val: torch.Tensor, dtype: torch.dtype = torch.bool) -> torch.Tensor:
        """Concatenated one-hot encoding (last dim ``sum(nvec)``) of indices ``val``."""
        return _scatter_one_hot(val.to(torch.int64), self._seg, dtype)

    def to_one_hot_spec(self) -> MultiOneHot:
        """The :class:`MultiOneHot` spec of ``to_one_hot`` values."""
        return MultiOneHot(
            self._nvec, shape=(*self.shape[:-1], self._seg.total), device=self.device
        )


def _scatter_one_hot(idx: torch.Tensor, seg: _Segments, dtype: torch.dtype) -> torch.Tensor:
    out = torch.zeros((*idx.shape[:-1], seg.total), dtype=dtype, device=idx.device)
    return out.scatter_(-1, idx + seg.offsets, 1)


class MultiOneHot(TensorSpec):
    """Concatenated one-hot vectors, one per variable: the last dim has size ``sum(nvec)``
    and each of its ``len(nvec)`` segments holds exactly one hot entry.

    ``shape`` defaults to ``(sum(nvec),)``; ``dtype`` defaults to bool. ``zero`` is category
    0 of every variable. ``project`` takes the argmax of each segment (NaN ranks lowest).
    ``encode`` accepts a multi-one-hot value or category indices of shape
    ``(*shape[:-1], len(nvec))``.

    Example::

        >>> spec = MultiOneHot([2, 3])
        >>> spec.encode([1, 0]).int()
        tensor([0, 1, 1, 0, 0], dtype=torch.int32)
    """

    _event_ndim = 1

    def __init__(
        self,
        nvec: Any,
        shape: ShapeLike = None,
        dtype: torch.dtype | None = torch.bool,
        device: DeviceLike = None,
    ) -> None:
        values = parse_nvec(nvec, "MultiOneHot")
        total = sum(values)
        size = torch.Size((total,)) if shape is None else as_size(shape)
        if len(size) == 0 or size[-1] != total:
            raise SpecError(
                f"MultiOneHot: the last dim of shape {fmt_shape(size)} must be sum(nvec)={total}"
            )
        dtype = torch.bool if dtype is None else dtype
        check_dtype(dtype, REAL_DTYPES, "MultiOneHot")
        super().__init__(size, dtype, as_device(device))
        self._nvec = values
        self._seg = _segments(values, self.device)
        self.nvec = self._seg.nvec
        zeros = torch.zeros((*size[:-1], len(values)), dtype=torch.int64, device=self.device)
        self._zero_value = _scatter_one_hot(zeros, self._seg, dtype)

    def _ctor_kwargs(self) -> dict[str, Any]:
        return {"nvec": self._nvec, "shape": self.shape, "dtype": self.dtype, "device": self.device}

    def _repr_params(self) -> list[str]:
        return [f"nvec={list(self._nvec)}"]

    def rand(
        self, shape: ShapeLike = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Each variable's one-hot segment set at a uniformly drawn category."""
        size = self._full_shape(shape)
        seg = self._seg
        u = torch.rand((*size[:-1], seg.k), generator=generator, device=self.device)
        idx = torch.minimum(u.mul_(seg.nvec_f).floor_().to(torch.int64), seg.high)
        return _scatter_one_hot(idx, seg, self.dtype)

    def _counts(self, val: torch.Tensor) -> torch.Tensor:
        seg = self._seg
        counts = torch.zeros((*val.shape[:-1], seg.k), dtype=torch.int32, device=val.device)
        return counts.index_add_(-1, seg.seg_id, (val != 0).to(torch.int32))

    def _values_in(self, val: torch.Tensor) -> bool:
        ok = (self._counts(val) == 1).all()
        if self.dtype is not torch.bool:
            ok = ok & ((val == 0) | (val == 1)).all()
        return bool(ok)

    def _why_values(self, val: torch.Tensor) -> str | None:
        if self.dtype is not torch.bool:
            bad = (val != 0) & (val != 1)
            if bool(bad.any()):
                where = first_true(bad)
                return f"value {fmt_num(val[where])} is not 0 or 1 at index {fmt_index(where)}"
        counts = self._counts(val)
        bad_seg = counts != 1
        if not bool(bad_seg.any()):
            return None
        where = first_true(bad_seg)
        j = where[-1]
        start = int(self._seg.offsets[j])
        return (
            f"variable {j} (entries {start}..{start + self._nvec[j] - 1}) at batch index "
            f"{fmt_index(where[:-1])} has {int(counts[where])} hot entries, expected exactly one"
        )

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        seg = self._seg
        scores = seg.padded(score_tensor(val)).masked_fill_(~seg.valid, float("-inf"))
        return _scatter_one_hot(scores.argmax(-1), seg, self.dtype)

    def _encode(self, t: torch.Tensor) -> torch.Tensor:
        seg = self._seg
        # As for OneHot: bool or full-shape values are one-hot, values with one entry per
        # variable are indices; when every nvec is 1 the sizes agree and all-zero values
        # are read as indices.
        index_shape = torch.Size((*self.shape[:-1], seg.k))
        if t.dtype is not torch.bool and t.shape != self.shape and t.numel() == index_shape.numel():
            if seg.k < seg.total or not bool(t.any()):
                return _scatter_one_hot(
                    self._check_indices(t.reshape(index_shape)), seg, self.dtype
                )
        if t.numel() == self.shape.numel():
            return self._cast(t.reshape(self.shape))
        raise SpecError(
            f"{self!r}.encode: cannot read a value of shape {fmt_shape(t.shape)} as "
            f"multi-one-hot (shape {fmt_shape(self.shape)}) or as category indices "
            f"(shape {fmt_shape(index_shape)})"
        )

    def _check_indices(self, t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point():
            frac = t != torch.round(t)
            if bool(frac.any()):
                raise SpecError(
                    f"{self!r}.encode: category index {fmt_num(t[first_true(frac)])} is not "
                    "an integer"
                )
        idx = to_int64(t).to(self.device)
        outside = (idx < 0) | (idx >= self._seg.nvec)
        if bool(outside.any()):
            where = first_true(outside)
            raise SpecError(
                f"{self!r}.encode: category index {fmt_num(idx[where])} of variable {where[-1]} is "
                f"outside [0, {self._nvec[where[-1]]})"
            )
        return idx

    def to_categorical(self, val: torch.Tensor) -> torch.Tensor:
        """Category indices (int64, last dim ``len(nvec)``) of multi-one-hot values."""
        seg = self._seg
        scores = val if val.is_floating_point() else val.to(torch.int32)
        padded = seg.padded(scores).masked_fill(~seg.valid, -1)
        return padded.argmax(-1)

    def to_categorical_spec(self) -> MultiCategorical:
        """The :class:`MultiCategorical` spec of ``to_categorical`` values."""
        return MultiCategorical(
            self._nvec, shape=(*self.shape[:-1], self._seg.k), device=self.device
        )
