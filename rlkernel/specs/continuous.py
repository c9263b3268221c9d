"""Specs over numeric ranges: :class:`Unbounded` and :class:`Bounded`.

Both have no event dims: every dim of their shape can be indexed, expanded or squeezed.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rlkernel.errors import SpecError
from rlkernel.specs._utils import (
    _INT64_MAX_AS_FLOAT,
    _INT64_MIN_AS_FLOAT,
    FLOAT_DTYPES,
    INT_DTYPES,
    REAL_DTYPES,
    DeviceLike,
    ShapeLike,
    as_device,
    as_size,
    check_dtype,
    dtype_name,
    first_true,
    fmt_index,
    fmt_num,
    fmt_shape,
    host_array,
    summarize,
    to_int64,
    to_tensor,
)
from rlkernel.specs.base import TensorSpec

# Integer Unbounded specs draw rand() values from this symmetric range (clipped to the dtype).
_RAND_INT_RANGE = 100


def _count_note(bad: torch.Tensor, what: str) -> str:
    """``" (3 of 10 entries are out of bounds)"``, or ``""`` for a single bad entry."""
    count = int(bad.sum())
    return f" ({count} of {bad.numel()} entries {what})" if count > 1 else ""


class Unbounded(TensorSpec):
    """Any finite value of a dtype (float, integer or bool).

    ``is_in`` rejects NaN and +-inf for float dtypes: only finite values are in.
    ``rand`` draws standard normals for floats, integers in ``[-100, 100]`` (clipped to the
    dtype) for integer dtypes and fair coins for bool. ``zero`` is zeros, ``one`` is ones.
    ``project`` replaces NaN by 0 and +-inf by the dtype's largest/smallest finite value.

    Example::

        >>> spec = Unbounded((3,))
        >>> spec.rand().shape
        torch.Size([3])
        >>> spec.is_in(torch.tensor([0.0, float("inf"), 1.0]))
        False
    """

    def __init__(
        self,
        shape: ShapeLike = (),
        dtype: torch.dtype | None = torch.float32,
        device: DeviceLike = None,
    ) -> None:
        dtype = torch.float32 if dtype is None else dtype
        check_dtype(dtype, REAL_DTYPES, "Unbounded")
        super().__init__(as_size(shape), dtype, as_device(device))
        self._is_float = dtype.is_floating_point
        self._zero_value = torch.zeros(self.shape, dtype=dtype, device=self.device)

    def _ctor_kwargs(self) -> dict[str, Any]:
        return {"shape": self.shape, "dtype": self.dtype, "device": self.device}

    def rand(
        self, shape: ShapeLike = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Standard normals (floats), integers in [-100, 100] or fair coins (bool)."""
        size = self._full_shape(shape)
        if self._is_float:
            return torch.randn(size, generator=generator, dtype=self.dtype, device=self.device)
        if self.dtype is torch.bool:
            out = torch.randint(
                0, 2, size, generator=generator, dtype=torch.uint8, device=self.device
            )
            return out.bool()
        info = torch.iinfo(self.dtype)
        low, high = max(info.min, -_RAND_INT_RANGE), min(info.max, _RAND_INT_RANGE)
        return torch.randint(
            low, high + 1, size, generator=generator, dtype=self.dtype, device=self.device
        )

    def one(self, shape: ShapeLike = None) -> torch.Tensor:
        """Ones of shape ``(*shape, *self.shape)``."""
        return torch.ones(self._full_shape(shape), dtype=self.dtype, device=self.device)

    def _values_in(self, val: torch.Tensor) -> bool:
        if not self._is_float:
            return True
        if val.numel() == 1:  # one number: no kernel to run
            return math.isfinite(val.item())
        arr = host_array(val)
        if arr is not None:  # NaN and infinities both fail ``< inf``
            return bool((abs(arr) < math.inf).all())
        return bool(torch.isfinite(val).all())

    def _why_values(self, val: torch.Tensor) -> str | None:
        if not self._is_float:
            return None
        bad = ~torch.isfinite(val)
        if not bool(bad.any()):
            return None
        where = first_true(bad)
        v = val[where]
        what = "NaN" if bool(torch.isnan(v)) else fmt_num(v)
        return f"value is {what} at index {fmt_index(where)}, only finite values are in" + (
            _count_note(bad, "are not finite")
        )

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        if self._is_float:
            return torch.nan_to_num(val.to(self.dtype), nan=0.0)
        if self.dtype is torch.bool:
            return val != 0
        info = torch.iinfo(self.dtype)
        return to_int64(val).clamp(info.min, info.max).to(self.dtype)


class Bounded(TensorSpec):
    """Values between ``low`` and ``high`` (both inclusive), for float or integer dtypes.

    ``low`` and ``high`` are numbers or tensors broadcastable to ``shape``; when ``shape``
    is not given it is their broadcast shape. They are stored as tensors of the full shape
    (attributes ``low`` and ``high``) and must be finite with ``low <= high``; use
    :class:`Unbounded` for an infinite range. For integer dtypes, float bounds are rounded
    inwards (``low`` up, ``high`` down).

    ``zero`` is ``0`` clamped into ``[low, high]``: zero when the range holds it, else the
    bound closest to zero (``low`` when ``low > 0``). ``project`` clamps (rounding first for
    integer dtypes) and sends NaN to that same value.

    Example::

        >>> spec = Bounded(-2.0, 2.0, shape=(1,))
        >>> spec.project(torch.tensor([3.7]))
        tensor([2.])
        >>> spec.assert_is_in(torch.tensor([3.7]), "action", role="action")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rlkernel.errors.SpecError: action 'action' does not fit Bounded(shape=[1], ...
    """

    low: torch.Tensor
    high: torch.Tensor
    _batch_params = ("low", "high")

    def __init__(
        self,
        low: Any,
        high: Any,
        shape: ShapeLike = None,
        dtype: torch.dtype | None = torch.float32,
        device: DeviceLike = None,
    ) -> None:
        dtype = torch.float32 if dtype is None else dtype
        check_dtype(dtype, FLOAT_DTYPES | INT_DTYPES, "Bounded")
        if device is None:
            device = next((b.device for b in (low, high) if isinstance(b, torch.Tensor)), None)
        dev = as_device(device)
        low_t = self._bound(low, "low", dtype, dev)
        high_t = self._bound(high, "high", dtype, dev)
        if shape is None:
            try:
                size = torch.broadcast_shapes(low_t.shape, high_t.shape)
            except RuntimeError:
                raise SpecError(
                    f"Bounded: low of shape {fmt_shape(low_t.shape)} and high of shape "
                    f"{fmt_shape(high_t.shape)} do not broadcast together"
                ) from None
        else:
            size = as_size(shape)
            for name, t in (("low", low_t), ("high", high_t)):
                try:
                    ok = torch.broadcast_shapes(t.shape, size) == size
                except RuntimeError:
                    ok = False
                if not ok:
                    raise SpecError(
                        f"Bounded: {name} of shape {fmt_shape(t.shape)} does not broadcast to "
                        f"shape {fmt_shape(size)}"
                    )
        super().__init__(size, dtype, dev)
        self.low = low_t.expand(size).clone()
        self.high = high_t.expand(size).clone()
        inverted = self.low > self.high
        if bool(inverted.any()):
            where = first_true(inverted)
            raise SpecError(
                f"Bounded: low must be <= high, but low {fmt_num(self.low[where])} > high "
                f"{fmt_num(self.high[where])} at index {fmt_index(where)}"
            )
        self._is_float = dtype.is_floating_point
        self._zero_value = torch.clamp(torch.zeros_like(self.low), self.low, self.high)
        self._host_bounds = self._bound_views()
        if self._is_float:
            work = torch.float64 if dtype is torch.float64 else torch.float32
            self._low_w = self.low.to(work)
            self._high_w = self.high.to(work)
        else:
            self._low64 = self.low.to(torch.int64)
            self._high64 = self.high.to(torch.int64)
            self._low_f = self.low.to(torch.float64)
            self._span_f = self.high.to(torch.float64) - self._low_f + 1.0

    def _bound_views(self) -> tuple[Any, Any] | None:
        """``low`` and ``high`` as numpy views, for ``is_in`` on the CPU (``None``: torch ops)."""
        low, high = host_array(self.low), host_array(self.high)
        return None if low is None or high is None else (low, high)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_host_bounds"]  # views: made again from the unpickled tensors
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._host_bounds = self._bound_views()

    @staticmethod
    def _bound(value: Any, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        t = to_tensor(value).to(device)
        if t.is_complex() or t.dtype not in REAL_DTYPES:
            raise SpecError(
                f"Bounded: {name} must be real numbers, got dtype {dtype_name(t.dtype)}"
            )
        if t.is_floating_point() and bool(torch.isnan(t).any()):
            raise SpecError(
                f"Bounded: {name} contains NaN at index {fmt_index(first_true(torch.isnan(t)))}"
            )
        if dtype.is_floating_point:
            cast = t.to(dtype)
            if not bool(torch.isfinite(cast).all()):
                where = first_true(~torch.isfinite(cast))
                raise SpecError(
                    f"Bounded: {name} must be finite in {dtype_name(dtype)}, got "
                    f"{fmt_num(t[where])} at index {fmt_index(where)} (use Unbounded for "
                    "an infinite range)"
                )
            return cast
        if t.is_floating_point():
            t = torch.ceil(t) if name == "low" else torch.floor(t)
        info = torch.iinfo(dtype)
        outside = (t < info.min) | (t > info.max)
        if bool(outside.any()):
            where = first_true(outside)
            raise SpecError(
                f"Bounded: {name} {fmt_num(t[where])} at index {fmt_index(where)} does not fit "
                f"dtype {dtype_name(dtype)} [{info.min}, {info.max}]"
            )
        return to_int64(t).to(dtype)

    def _ctor_kwargs(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "shape": self.shape,
            "dtype": self.dtype,
            "device": self.device,
        }

    def _repr_params(self) -> list[str]:
        return [f"low={summarize(self.low)}", f"high={summarize(self.high)}"]

    def rand(
        self, shape: ShapeLike = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Uniform in ``[low, high]`` (every integer equally likely for integer dtypes)."""
        size = self._full_shape(shape)
        if self._is_float:
            u = torch.rand(size, generator=generator, dtype=self._low_w.dtype, device=self.device)
            out = torch.lerp(self._low_w, self._high_w, u).to(self.dtype)
            return out.clamp_(self.low, self.high)
        u = torch.rand(size, generator=generator, dtype=torch.float64, device=self.device)
        x = torch.floor(u.mul_(self._span_f)).add_(self._low_f)
        out = x.clamp_(_INT64_MIN_AS_FLOAT, _INT64_MAX_AS_FLOAT).to(torch.int64)
        return torch.clamp(out, self._low64, self._high64).to(self.dtype)

    def _values_in(self, val: torch.Tensor) -> bool:
        bounds = self._host_bounds
        if bounds is not None and not val.requires_grad:
            low, high = bounds  # numpy views of self.low and self.high (they follow in-place edits)
            if val.numel() == 1:  # one number: NaN compares False, as below
                return bool(low.flat[0] <= val.item() <= high.flat[0])
            arr = host_array(val)
            if arr is not None:
                return bool((arr >= low).all() and (arr <= high).all())
        return bool(((val >= self.low) & (val <= self.high)).all())

    def _why_values(self, val: torch.Tensor) -> str | None:
        if self._is_float:
            nan = torch.isnan(val)
            if bool(nan.any()):
                return f"value is NaN at index {fmt_index(first_true(nan))}" + _count_note(
                    nan, "are NaN"
                )
        below, above = val < self.low, val > self.high
        outside = below | above
        if not bool(outside.any()):
            return None
        where = first_true(outside)
        if bool(below[where]):
            side = f"below low {fmt_num(self.low.expand(val.shape)[where])}"
        else:
            side = f"above high {fmt_num(self.high.expand(val.shape)[where])}"
        msg = f"value {fmt_num(val[where])} is {side} at index {fmt_index(where)}"
        if val.numel() > 1:
            msg += (
                f" ({int(outside.sum())} of {val.numel()} entries out of bounds; values span "
                f"[{fmt_num(val.min())}, {fmt_num(val.max())}])"
            )
        return msg

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        if self._is_float:
            out = val.to(self.dtype)
            return torch.where(torch.isnan(out), self._zero_value, out.clamp(self.low, self.high))
        nan = torch.isnan(val) if val.is_floating_point() else None
        out = torch.clamp(to_int64(val), self._low64, self._high64).to(self.dtype)
        return out if nan is None else torch.where(nan, self._zero_value, out)
