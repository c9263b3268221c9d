"""The :class:`Binary` spec: vectors of independent 0/1 entries.

The last dim (of size ``n``) is the event dim; everything before it is batch.
"""

from __future__ import annotations

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
)
from rlkernel.specs.base import TensorSpec
from rlkernel.specs.discrete import check_n


class Binary(TensorSpec):
    """Vectors of ``n`` independent 0/1 entries (the last dim, of size ``n``, is the event).

    Give ``n``, ``shape`` (whose last dim is ``n``) or both. ``dtype`` defaults to int8 (as
    in TorchRL); bool, integer and float dtypes work. ``zero`` is zeros, ``one`` is ones;
    ``project`` thresholds at 0.5 (NaN goes to 0).

    Example::

        >>> Binary(3).project(torch.tensor([0.2, 0.9, float("nan")]))
        tensor([0, 1, 0], dtype=torch.int8)
    """

    _event_ndim = 1

    def __init__(
        self,
        n: int | None = None,
        shape: ShapeLike = None,
        dtype: torch.dtype | None = torch.int8,
        device: DeviceLike = None,
    ) -> None:
        if shape is None:
            if n is None:
                raise SpecError("Binary: give n or shape")
            n = check_n(n, "Binary")
            size = torch.Size((n,))
        else:
            size = as_size(shape)
            if len(size) == 0:
                raise SpecError("Binary: shape needs at least one dim (the last one is n)")
            if n is None:
                n = size[-1]
            elif size[-1] != check_n(n, "Binary"):
                raise SpecError(f"Binary: the last dim of shape {fmt_shape(size)} must be n={n}")
        dtype = torch.int8 if dtype is None else dtype
        check_dtype(dtype, REAL_DTYPES, "Binary")
        super().__init__(size, dtype, as_device(device))
        self.n = int(n)
        self._zero_value = torch.zeros(size, dtype=dtype, device=self.device)

    def _ctor_kwargs(self) -> dict[str, Any]:
        return {"n": self.n, "shape": self.shape, "dtype": self.dtype, "device": self.device}

    def _repr_params(self) -> list[str]:
        return [f"n={self.n}"]

    def rand(
        self, shape: ShapeLike = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Fair coin flips, 0 or 1, for every entry."""
        size = self._full_shape(shape)
        draw_dtype = self.dtype if self.dtype in INT_DTYPES else torch.uint8
        out = torch.randint(0, 2, size, generator=generator, dtype=draw_dtype, device=self.device)
        return out.to(self.dtype)

    def one(self, shape: ShapeLike = None) -> torch.Tensor:
        """Ones of shape ``(*shape, *self.shape)``."""
        return torch.ones(self._full_shape(shape), dtype=self.dtype, device=self.device)

    def _values_in(self, val: torch.Tensor) -> bool:
        if self.dtype is torch.bool:
            return True
        arr = host_array(val)
        if arr is not None:
            return bool(((arr == 0) | (arr == 1)).all())
        return bool(((val == 0) | (val == 1)).all())

    def _why_values(self, val: torch.Tensor) -> str | None:
        if self.dtype is torch.bool:
            return None
        bad = (val != 0) & (val != 1)
        if not bool(bad.any()):
            return None
        where = first_true(bad)
        v = val[where]
        what = "NaN" if v.is_floating_point() and bool(torch.isnan(v)) else fmt_num(v)
        return f"value {what} is not 0 or 1 at index {fmt_index(where)}"

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        if val.dtype is torch.bool:
            return val.to(self.dtype)
        return (val > 0.5).to(self.dtype)
