"""Property-based tests: every spec kind honours the shared contract."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from specs_strategies import KINDS, arbitrary_values, specs

from rlkernel.specs import Bounded, Categorical, OneHot, TensorSpec

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data())
def test_rand_and_zero_are_in(kind: str, data: st.DataObject) -> None:
    spec: TensorSpec = data.draw(specs(kind))
    value = spec.rand()
    assert value.shape == spec.shape and value.dtype == spec.dtype
    assert spec.is_in(value), spec.why_not_in(value)
    batch = spec.rand((2, 3))
    assert batch.shape == (2, 3, *spec.shape)
    assert spec.is_in(batch), spec.why_not_in(batch)
    zero = spec.zero((2,))
    assert zero.shape == (2, *spec.shape)
    assert spec.is_in(zero), spec.why_not_in(zero)


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data())
def test_project_lands_in_spec(kind: str, data: st.DataObject) -> None:
    spec: TensorSpec = data.draw(specs(kind))
    x = data.draw(arbitrary_values(spec.shape))
    before = x.clone()
    out = spec.project(x)
    assert out.shape == x.shape and out.dtype == spec.dtype
    assert spec.is_in(out), f"{spec!r}: {spec.why_not_in(out)} for input {x}"
    torch.testing.assert_close(x, before, rtol=0, atol=0, equal_nan=True)  # input untouched


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data())
def test_project_keeps_values_in_spec(kind: str, data: st.DataObject) -> None:
    spec: TensorSpec = data.draw(specs(kind))
    value = spec.rand((2,))
    assert torch.equal(spec.project(value), value)


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data())
def test_is_in_agrees_with_why_not_in(kind: str, data: st.DataObject) -> None:
    spec: TensorSpec = data.draw(specs(kind))
    x = data.draw(arbitrary_values(spec.shape)).to(spec.dtype)
    reason = spec.why_not_in(x)
    assert spec.is_in(x) == (reason is None), reason
    if reason is not None:
        assert isinstance(reason, str) and reason


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data(), k=st.integers(1, 4))
def test_expand_then_index(kind: str, data: st.DataObject, k: int) -> None:
    spec: TensorSpec = data.draw(specs(kind))
    i = data.draw(st.integers(0, k - 1))
    big = spec.expand(k, *spec.shape)
    assert big.shape == (k, *spec.shape)
    assert big == spec.expand((k, *spec.shape))
    assert big[i] == spec
    assert big[-1] == spec
    sample = big.rand()
    assert spec.is_in(sample[i])
    assert big.is_in(sample)
    assert big != spec
    assert big[i : i + 1] == spec.unsqueeze(0)


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data())
def test_unsqueeze_squeeze_round_trip(kind: str, data: st.DataObject) -> None:
    spec: TensorSpec = data.draw(specs(kind))
    up = spec.unsqueeze(0)
    assert up.shape == (1, *spec.shape)
    assert up.squeeze(0) == spec
    assert up.is_in(up.rand())


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data())
def test_encode_round_trips_lists(kind: str, data: st.DataObject) -> None:
    spec: TensorSpec = data.draw(specs(kind))
    value = spec.rand()
    encoded = spec.encode(value.tolist())
    assert encoded.dtype == spec.dtype and encoded.shape == spec.shape
    assert torch.equal(encoded, value)
    assert torch.equal(spec.encode(value.flatten()), value)


def _canonical(text: str) -> str:
    """``text`` with ``-0.0`` written ``0.0``: a bound of -0.0 equals one of 0.0 (IEEE), only the repr differs."""
    return re.sub(r"-0\.0(?![0-9e])", "0.0", text)


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data())
def test_clone_and_equality(kind: str, data: st.DataObject) -> None:
    spec: TensorSpec = data.draw(specs(kind))
    other = data.draw(specs(kind))
    copy = spec.clone()
    assert copy == spec and copy is not spec
    assert repr(copy) == repr(spec)
    if _canonical(repr(spec)) != _canonical(repr(other)) or not torch.equal(spec.zero(), other.zero()):
        assert spec != other
    assert spec != spec.expand(2, *spec.shape)
    assert spec.to(spec.device) is spec


def test_manual_seed_makes_rand_reproducible() -> None:
    spec = Bounded(-1.0, 1.0, shape=(5,))
    torch.manual_seed(3)
    a = spec.rand((4,))
    torch.manual_seed(3)
    b = spec.rand((4,))
    assert torch.equal(a, b)
    c = spec.rand((4,), generator=torch.Generator().manual_seed(7))
    d = spec.rand((4,), generator=torch.Generator().manual_seed(7))
    assert torch.equal(c, d) and not torch.equal(a, c)


def test_masked_categorical_samples_only_allowed() -> None:
    mask = torch.tensor([False, True, False, True])
    spec = Categorical(4, shape=(3,), mask=mask)
    draws = spec.rand((500,))
    assert set(draws.unique().tolist()) == {1, 3}
    assert spec.zero().tolist() == [1, 1, 1]
    assert spec.project(torch.tensor([0, 2, 3])).tolist() == [1, 1, 3]
    assert not spec.is_in(torch.tensor([1, 2, 3]))
    spec.update_mask(None)
    assert spec.is_in(torch.tensor([1, 2, 3]))


def test_bounded_zero_and_nan_projection() -> None:
    spec = Bounded(torch.tensor([1.0, -3.0, -1.0]), torch.tensor([2.0, -2.0, 1.0]))
    assert spec.zero().tolist() == [1.0, -2.0, 0.0]
    nan = float("nan")
    assert spec.project(torch.tensor([nan, nan, 5.0])).tolist() == [1.0, -2.0, 1.0]
    assert spec.project(torch.tensor([float("-inf"), float("inf"), -0.5])).tolist() == [
        1.0,
        -2.0,
        -0.5,
    ]


def test_indexing_keeps_per_entry_bounds() -> None:
    spec = Bounded(torch.arange(6.0).reshape(2, 3), 10.0)
    assert spec.shape == (2, 3)
    assert spec[1].low.tolist() == [3.0, 4.0, 5.0]
    assert spec[:, 2].low.tolist() == [2.0, 5.0]
    assert spec[torch.tensor([1, 0])].low[0].tolist() == [3.0, 4.0, 5.0]
    assert spec[..., None].shape == (2, 3, 1)


def test_one_hot_conversions() -> None:
    spec = OneHot(4, shape=(2, 4))
    idx = torch.tensor([3, 0])
    hot = spec.encode(idx)
    assert hot.tolist() == [[False, False, False, True], [True, False, False, False]]
    assert spec.to_categorical(hot).tolist() == [3, 0]
    cat = spec.to_categorical_spec()
    assert cat == Categorical(4, shape=(2,))
    assert cat.to_one_hot_spec() == spec
    assert torch.equal(cat.to_one_hot(idx), hot)
    assert spec[..., 0, :] == OneHot(4)
