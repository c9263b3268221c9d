"""Input checks shared by the value functionals: cheap (shapes, dtypes; no device sync)."""

from __future__ import annotations

import numbers

import torch

from rlkernel.errors import SpecError

Scalar = float | torch.Tensor


def check_coefficient(value: Scalar, name: str, owner: str, *, low: float = 0.0, high: float = 1.0) -> None:
    """Check that a Python number lies in ``[low, high]`` (tensors are checked for dtype only)."""
    if isinstance(value, torch.Tensor):
        if not (value.is_floating_point() or value.dtype is torch.bool):
            raise SpecError(f"{owner}: {name} must be a float tensor or a number, got dtype {value.dtype}")
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SpecError(f"{owner}: {name} must be a number in [{low}, {high}], got {value!r}")
    if not (low <= float(value) <= high):
        raise SpecError(f"{owner}: {name} must be in [{low}, {high}], got {value!r}")


def check_tensors(owner: str, time_dim: int, **tensors: torch.Tensor | None) -> torch.Size:
    """Check that the named tensors (``None`` ones are skipped) share one shape with a time dim.

    Entries named ``done`` or ``terminated`` must be bool. Returns the common shape.
    """
    shape: torch.Size | None = None
    first = ""
    for name, t in tensors.items():
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise SpecError(f"{owner}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if name in ("done", "terminated"):
            if t.dtype is not torch.bool:
                raise SpecError(f"{owner}: {name} must be a bool tensor, got dtype {t.dtype}")
        elif not t.is_floating_point():
            raise SpecError(f"{owner}: {name} must be a floating-point tensor, got dtype {t.dtype}")
        if shape is None:
            shape, first = t.shape, name
            if not -t.ndim <= time_dim < t.ndim:
                raise SpecError(
                    f"{owner}: time_dim={time_dim} is not a dim of {name} of shape {list(t.shape)} "
                    "(inputs are shaped [*batch, time, *features], time_dim=-2 by default)"
                )
        elif t.shape != shape:
            raise SpecError(
                f"{owner}: {name} has shape {list(t.shape)} but {first} has shape {list(shape)}; "
                "all inputs must have the same shape [*batch, time, *features]"
            )
    assert shape is not None
    return shape


def time_last_flag(done: torch.Tensor, time_dim: int) -> torch.Tensor:
    """``done`` with the last step along ``time_dim`` set to True (the trace ends there)."""
    out = done.clone()
    out.select(time_dim, -1).fill_(True)
    return out
