"""Helpers shared by the spec modules: argument parsing, formatting, index handling.

Nothing here is public API; the spec classes re-export what users need.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import torch

from rlkernel.errors import SpecError

ShapeLike = int | Sequence[int] | torch.Size | None
DeviceLike = torch.device | str | int | None

FLOAT_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
INT_DTYPES = frozenset({torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64})
REAL_DTYPES = FLOAT_DTYPES | INT_DTYPES | {torch.bool}

# dtypes numpy has too: a CPU tensor of one of them is read through ``Tensor.numpy()`` (a
# view, no copy) by the specs' fast membership tests (see ``host_array``)
NUMPY_DTYPES = frozenset(
    {torch.float16, torch.float32, torch.float64, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
     torch.bool}
)


def host_array(val: torch.Tensor) -> Any:
    """``val.numpy()`` (a view sharing its memory) for a CPU tensor of a dtype numpy has
    that does not require grad; ``None`` otherwise (the caller then uses torch ops).

    The specs' ``is_in`` compare such arrays (or one ``item()`` when there is a single
    entry) instead of running a few small torch kernels: same answers, a fraction of the
    time on the small tensors of a step. numpy is never imported here: the array's own
    methods do the work.
    """
    if val.is_cpu and not val.requires_grad and val.dtype in NUMPY_DTYPES:
        try:
            return val.numpy()
        except (RuntimeError, TypeError):  # e.g. a tensor with the negative or conjugate bit set
            return None
    return None


# Largest float64 that still converts to a valid int64 (2**63 itself would overflow).
_INT64_MAX_AS_FLOAT = math.nextafter(2.0**63, 0.0)
_INT64_MIN_AS_FLOAT = -(2.0**63)


class SpecIndexError(SpecError, IndexError):
    """An index is out of range for a spec's batch dims (also an ``IndexError``)."""


class SpecKeyError(SpecError, KeyError):
    """A key is missing from a :class:`~rlkernel.specs.Composite` (also a ``KeyError``)."""

    def __str__(self) -> str:
        # KeyError would print the repr of the message; keep it readable.
        return str(self.args[0]) if self.args else ""


# ----------------------------------------------------------------------------- arguments
def as_size(shape: ShapeLike, what: str = "shape") -> torch.Size:
    """Turn ``None``, an int or a sequence of non-negative ints into a ``torch.Size``."""
    if shape is None:
        return torch.Size(())
    if isinstance(shape, torch.Size):
        dims: tuple[int, ...] = tuple(shape)
    elif isinstance(shape, bool):
        raise SpecError(f"{what} must be an int or a sequence of ints, got {shape!r}")
    elif isinstance(shape, int):
        dims = (shape,)
    else:
        try:
            dims = tuple(operator.index(d) for d in shape)
        except TypeError:
            raise SpecError(f"{what} must be an int or a sequence of ints, got {shape!r}") from None
    if any(d < 0 for d in dims):
        raise SpecError(f"{what} must hold non-negative sizes, got {list(dims)}")
    return torch.Size(dims)


def shape_args(args: tuple[Any, ...], what: str) -> tuple[int, ...]:
    """Read ``f(*shape)`` or ``f(shape)`` arguments (``-1`` allowed) as a tuple of ints."""
    if len(args) == 1 and not isinstance(args[0], int):
        args = tuple(args[0])
    try:
        return tuple(operator.index(a) for a in args)
    except TypeError:
        raise SpecError(f"{what} expects ints or one sequence of ints, got {args!r}") from None


def as_device(device: DeviceLike) -> torch.device:
    """Return a ``torch.device``; ``None`` means cpu, ``"cuda"`` gets its current index."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise SpecError(f"invalid device {device!r}: {err}") from None
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def check_dtype(dtype: Any, allowed: frozenset[torch.dtype] | set[torch.dtype], owner: str) -> None:
    """Raise :class:`SpecError` unless ``dtype`` is one of ``allowed``."""
    if not isinstance(dtype, torch.dtype):
        raise SpecError(f"{owner}: dtype must be a torch.dtype, got {dtype!r}")
    if dtype not in allowed:
        names = ", ".join(sorted(dtype_name(d) for d in allowed))
        raise SpecError(f"{owner}: unsupported dtype {dtype_name(dtype)} (supported: {names})")


def to_tensor(val: Any, float_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert a number, (nested) list, numpy array or tensor to a tensor, without copying
    tensors. numpy is only touched when ``val`` already is a numpy object.

    ``float_dtype`` is used to build tensors from python numbers and lists, so that a
    float64 spec does not lose precision through torch's float32 default.
    """
    if isinstance(val, torch.Tensor):
        return val
    dtype = float_dtype
    if type(val).__module__ == "numpy":
        dtype = None
        if hasattr(val, "strides"):
            import numpy  # only when the caller already handed us numpy data

            val = numpy.ascontiguousarray(val)
    try:
        return torch.as_tensor(val, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as err:
        raise SpecError(f"cannot turn a {type(val).__name__} into a tensor: {err}") from None


def to_int64(val: torch.Tensor) -> torch.Tensor:
    """Round ``val`` to int64 without undefined behaviour: NaN -> 0, +-inf and huge values
    saturate at the int64 limits."""
    if val.is_floating_point():
        val = val.to(torch.float64).round()
        val = torch.nan_to_num(val, nan=0.0, posinf=_INT64_MAX_AS_FLOAT, neginf=_INT64_MIN_AS_FLOAT)
        val = val.clamp(_INT64_MIN_AS_FLOAT, _INT64_MAX_AS_FLOAT)
    return val.to(torch.int64)


def first_true(mask: torch.Tensor) -> tuple[int, ...]:
    """Index (as a tuple) of the first True entry of a bool tensor that has one."""
    return tuple(int(i) for i in torch.nonzero(mask)[0].tolist())


# ----------------------------------------------------------------------------- formatting
def dtype_name(dtype: torch.dtype | None) -> str:
    """``torch.float32`` -> ``"float32"``."""
    return str(dtype).removeprefix("torch.")


def fmt_shape(shape: Sequence[int]) -> str:
    """``torch.Size([2, 3])`` -> ``"[2, 3]"``."""
    return str(list(shape))


def fmt_num(x: Any) -> str:
    """A short, exact-enough rendering of a scalar (tensor or python number)."""
    if isinstance(x, torch.Tensor):
        x = x.item()
    if isinstance(x, float):
        return repr(float(f"{x:.6g}"))
    return str(x)


def fmt_index(index: tuple[int, ...]) -> str:
    """``(0, 2)`` -> ``"(0, 2)"``, ``(1,)`` -> ``"(1,)"``."""
    return str(tuple(index))


def summarize(t: torch.Tensor) -> str:
    """A scalar if every entry is equal, else ``"<min .. max>"``; used in reprs."""
    if t.numel() == 0:
        return "[]"
    lo, hi = t.min(), t.max()
    if bool(lo == hi):
        return fmt_num(lo)
    return f"<{fmt_num(lo)} .. {fmt_num(hi)}>"


# ----------------------------------------------------------------------------- indexing
def normalize_index(idx: Any, batch_ndim: int, owner: str) -> tuple[Any, ...]:
    """Check that ``idx`` only reaches the first ``batch_ndim`` dims and rewrite it as a
    tuple without Ellipsis (so it can be applied to tensors that carry extra trailing dims).

    Supported items: int, slice, None, Ellipsis, int or bool tensors, lists of ints.
    """
    items = idx if isinstance(idx, tuple) else (idx,)
    out: list[Any] = []
    consumed = 0
    ellipsis_at = -1
    for item in items:
        if item is Ellipsis:
            if ellipsis_at >= 0:
                raise SpecError(f"{owner}: an index can hold only one Ellipsis, got {idx!r}")
            ellipsis_at = len(out)
            out.append(item)
            continue
        if item is None:
            out.append(None)
            continue
        if isinstance(item, slice):
            consumed += 1
            out.append(item)
            continue
        if isinstance(item, bool):
            raise SpecError(f"{owner}: a bare bool is not a supported index, got {idx!r}")
        if isinstance(item, range):
            item = list(item)
        if isinstance(item, list) or (
            type(item).__module__ == "numpy" and getattr(item, "ndim", 0)
        ):
            item = to_tensor(item)
        if isinstance(item, torch.Tensor):
            if item.dtype == torch.bool:
                if item.ndim == 0:
                    raise SpecError(f"{owner}: a 0-dim bool tensor is not a supported index")
                consumed += item.ndim
            elif item.is_floating_point() or item.is_complex():
                raise SpecError(f"{owner}: index tensors must hold ints or bools, got {item.dtype}")
            else:
                consumed += 1
            out.append(item)
            continue
        try:
            out.append(operator.index(item))
        except TypeError:
            raise SpecError(
                f"{owner}: unsupported index {item!r} of type {type(item).__name__}"
            ) from None
        consumed += 1
    # Trailing full slices (``spec[..., 0, :]``) leave the event dims untouched: drop them.
    while consumed > batch_ndim and out and _is_full_slice(out[-1]):
        out.pop()
        consumed -= 1
    if consumed > batch_ndim:
        raise SpecError(
            f"{owner}: index {idx!r} reaches {consumed} dim(s) but only the {batch_ndim} "
            "batch dim(s) can be indexed; the event dims cannot be indexed away"
        )
    if ellipsis_at >= 0:
        out[ellipsis_at : ellipsis_at + 1] = [slice(None)] * (batch_ndim - consumed)
    return tuple(out)


def _is_full_slice(item: Any) -> bool:
    return isinstance(item, slice) and item == slice(None)


def indexed_shape(batch_shape: torch.Size, idx: tuple[Any, ...], owner: str) -> torch.Size:
    """Shape that indexing a tensor of ``batch_shape`` with the normalized ``idx`` gives."""
    cpu_idx = tuple(i.cpu() if isinstance(i, torch.Tensor) else i for i in idx)
    probe = torch.zeros((), dtype=torch.bool).expand(batch_shape)
    try:
        return probe[cpu_idx].shape
    except IndexError as err:
        raise SpecIndexError(
            f"{owner}: index out of range for batch shape {fmt_shape(batch_shape)}: {err}"
        ) from None
    except (RuntimeError, ValueError, TypeError) as err:
        raise SpecError(
            f"{owner}: cannot index batch shape {fmt_shape(batch_shape)}: {err}"
        ) from None


def resolve_expand(
    old: torch.Size, new: tuple[int, ...], batch_ndim: int, owner: str
) -> torch.Size:
    """Validate an ``expand`` target against ``old`` and return it with ``-1`` resolved.

    ``new`` must end with ``old``: extra leading dims are added, ``-1`` keeps a dim, and a
    batch dim of size 1 may grow; event dims must stay as they are.
    """

    def fail(why: str) -> SpecError:
        return SpecError(
            f"{owner}: cannot expand shape {fmt_shape(old)} to {list(new)}: {why} (the new shape "
            "must end with the current one; -1 keeps a dim, batch dims of size 1 may grow)"
        )

    if len(new) < len(old):
        raise fail("the new shape has fewer dims")
    lead = len(new) - len(old)
    out = []
    for i, size in enumerate(new):
        if i < lead:
            if size < 0:
                raise fail(f"new leading dim {i} has size {size}")
            out.append(size)
            continue
        j = i - lead
        if size == -1 or size == old[j]:
            out.append(old[j])
        elif old[j] == 1 and j < batch_ndim and size >= 0:
            out.append(size)
        elif j >= batch_ndim:
            raise fail(f"event dim {j} has size {old[j]}, not {size}")
        else:
            raise fail(f"dim {j} has size {old[j]}, not {size}")
    return torch.Size(out)


def show_path(path: tuple[str, ...]) -> str:
    """How a composite key is printed in messages: ``'obs'`` or ``('next', 'obs')``."""
    return repr(path[0]) if len(path) == 1 else repr(path)
