"""Hypothesis strategies that build every kind of spec, and arbitrary values for them."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from rlkernel.specs import (
    Binary,
    Bounded,
    Categorical,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    TensorSpec,
    Unbounded,
)

KINDS = (
    "unbounded",
    "bounded",
    "categorical",
    "one_hot",
    "multi_categorical",
    "multi_one_hot",
    "binary",
)

batch_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)
seeds = st.integers(0, 2**31 - 1)

_INT_RANGES = {
    torch.uint8: (0, 255),
    torch.int8: (-128, 127),
    torch.int16: (-1000, 1000),
    torch.int32: (-(10**6), 10**6),
    torch.int64: (-(10**9), 10**9),
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_mask(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """A bool mask with at least one True along the last dim of every row."""
    g = _gen(seed)
    mask = torch.rand(shape, generator=g) < 0.5
    pick = torch.randint(0, shape[-1], shape[:-1], generator=g)
    return mask | (pick.unsqueeze(-1) == torch.arange(shape[-1]))


def _segment_mask(batch: tuple[int, ...], nvec: list[int], seed: int) -> torch.Tensor:
    """A MultiCategorical mask with at least one allowed category per variable."""
    parts = [_random_mask((*batch, n), seed + j) for j, n in enumerate(nvec)]
    return torch.cat(parts, dim=-1)


@st.composite
def _unbounded(draw: st.DrawFn) -> TensorSpec:
    dtype = draw(
        st.sampled_from(
            [
                torch.float32,
                torch.float64,
                torch.float16,
                torch.int64,
                torch.int32,
                torch.int8,
                torch.uint8,
                torch.bool,
            ]
        )
    )
    event = draw(st.lists(st.integers(1, 4), max_size=1))
    return Unbounded((*draw(batch_shapes), *event), dtype=dtype)


@st.composite
def _bounded(draw: st.DrawFn) -> TensorSpec:
    dtype = draw(
        st.sampled_from(
            [
                torch.float32,
                torch.float64,
                torch.float16,
                torch.int64,
                torch.int32,
                torch.int8,
                torch.uint8,
            ]
        )
    )
    batch = draw(batch_shapes)
    event = draw(st.integers(1, 3))
    per_entry = draw(st.booleans())
    count = event if per_entry else 1
    if dtype.is_floating_point:
        limit = 1e3 if dtype is torch.float16 else 1e6
        # "+ 0.0" turns -0.0 into 0.0: equal bounds, but a different repr (the equality test relies on repr)
        lows = [x + 0.0 for x in draw(st.lists(st.floats(-limit, limit), min_size=count, max_size=count))]
        widths = draw(st.lists(st.floats(0, limit), min_size=count, max_size=count))
    else:
        lo, hi = _INT_RANGES[dtype]
        lows = draw(st.lists(st.integers(lo, hi), min_size=count, max_size=count))
        widths = [draw(st.integers(0, hi - low)) for low in lows]
    highs = [low + w for low, w in zip(lows, widths)]
    if dtype is torch.float16:  # keep high representable
        highs = [min(h, 2e3) for h in highs]
    if per_entry:
        return Bounded(
            torch.tensor(lows, dtype=torch.float64),
            torch.tensor(highs, dtype=torch.float64),
            shape=(*batch, event),
            dtype=dtype,
        )
    return Bounded(lows[0], highs[0], shape=(*batch, event), dtype=dtype)


@st.composite
def _categorical(draw: st.DrawFn) -> TensorSpec:
    n = draw(st.integers(1, 6))
    dtypes = [torch.int64, torch.int32, torch.uint8] + ([torch.bool] if n <= 2 else [])
    dtype = draw(st.sampled_from(dtypes))
    batch = draw(batch_shapes)
    mask = _random_mask((*batch, n), draw(seeds)) if draw(st.booleans()) else None
    return Categorical(n, shape=batch, dtype=dtype, mask=mask)


@st.composite
def _one_hot(draw: st.DrawFn) -> TensorSpec:
    n = draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([torch.bool, torch.int64, torch.float32, torch.uint8]))
    shape = (*draw(batch_shapes), n)
    mask = _random_mask(shape, draw(seeds)) if draw(st.booleans()) else None
    return OneHot(n, shape=shape, dtype=dtype, mask=mask)


@st.composite
def _multi_categorical(draw: st.DrawFn) -> TensorSpec:
    nvec = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    dtype = draw(st.sampled_from([torch.int64, torch.int32, torch.uint8]))
    batch = draw(batch_shapes)
    mask = _segment_mask(batch, nvec, draw(seeds)) if draw(st.booleans()) else None
    return MultiCategorical(nvec, shape=(*batch, len(nvec)), dtype=dtype, mask=mask)


@st.composite
def _multi_one_hot(draw: st.DrawFn) -> TensorSpec:
    nvec = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    dtype = draw(st.sampled_from([torch.bool, torch.float32, torch.int64]))
    return MultiOneHot(nvec, shape=(*draw(batch_shapes), sum(nvec)), dtype=dtype)


@st.composite
def _binary(draw: st.DrawFn) -> TensorSpec:
    n = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([torch.int8, torch.bool, torch.float32, torch.int64]))
    return Binary(n, shape=(*draw(batch_shapes), n), dtype=dtype)


_BUILDERS = {
    "unbounded": _unbounded,
    "bounded": _bounded,
    "categorical": _categorical,
    "one_hot": _one_hot,
    "multi_categorical": _multi_categorical,
    "multi_one_hot": _multi_one_hot,
    "binary": _binary,
}


def specs(kind: str | None = None) -> st.SearchStrategy[TensorSpec]:
    """Specs of one kind, or of every kind when ``kind`` is None."""
    if kind is not None:
        return _BUILDERS[kind]()
    return st.one_of(*(builder() for builder in _BUILDERS.values()))


@st.composite
def arbitrary_values(draw: st.DrawFn, shape: torch.Size) -> torch.Tensor:
    """A tensor whose shape ends with ``shape``, of a random dtype, with extreme entries:
    huge magnitudes, NaN and +-inf for floats, the int64 limits for integers."""
    lead = tuple(draw(st.lists(st.integers(1, 2), max_size=1)))
    size = (*lead, *shape)
    g = _gen(draw(seeds))
    kind = draw(st.sampled_from(["float32", "float64", "int64", "int8", "bool"]))
    if kind == "bool":
        return torch.rand(size, generator=g) < 0.5
    if kind.startswith("int"):
        big = draw(st.sampled_from([3, 300, 2**40]))
        x = torch.randint(-big, big + 1, size, generator=g)
        if draw(st.booleans()):
            extremes = torch.tensor([torch.iinfo(torch.int64).min, torch.iinfo(torch.int64).max])
            pick = torch.randint(0, 2, size, generator=g)
            x = torch.where(torch.rand(size, generator=g) < 0.2, extremes[pick], x)
        return x.to(torch.int8) if kind == "int8" else x
    dtype = torch.float32 if kind == "float32" else torch.float64
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0, 1e6, 1e30]))
    x = torch.randn(size, generator=g, dtype=dtype) * scale
    p = draw(st.sampled_from([0.0, 0.2, 1.0]))
    specials = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=dtype)
    pick = torch.randint(0, 3, size, generator=g)
    return torch.where(torch.rand(size, generator=g) < p, specials[pick], x)
