"""``is_in``'s CPU fast path (one ``item()``, or numpy views) gives the answers of the torch
path: checked against ``why_not_in`` (the slow twin, plain torch ops) and against the same
spec on the torch path (a value that requires grad, or a bfloat16 spec)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from rlkernel.specs import Binary, Bounded, Categorical, MultiCategorical, Unbounded

SPECS = [
    Categorical(4),
    Categorical(3, shape=(5,)),
    Categorical(6, dtype=torch.int32),
    Bounded(-1.0, 2.0, shape=(3,)),
    Bounded(-2.0, 2.0, shape=(1,)),
    Bounded(0.0, 1.0, shape=()),
    Bounded(torch.tensor([0, -5]), torch.tensor([3, 5]), dtype=torch.int64),
    Bounded(-1.0, 1.0, shape=(2,), dtype=torch.float16),
    Unbounded((2,)),
    Unbounded(()),
    Unbounded((1,), dtype=torch.float64),
    Unbounded((3,), dtype=torch.int32),
    Binary(4),
    Binary(3, dtype=torch.float32),
    MultiCategorical([2, 3]),
    Categorical(3, mask=torch.tensor([True, False, True])),
]
NAN, INF = float("nan"), float("inf")


def _values(spec):
    generator = torch.Generator().manual_seed(0)
    values = [spec.rand(generator=generator) for _ in range(10)]
    values += [spec.rand((4,), generator=generator) for _ in range(5)]  # extra leading dims
    bad_numbers = (NAN, INF, -INF, 2.5, -3.0, 0.5) if spec.dtype.is_floating_point else (-1, 1, 2, 3, 4, 6)
    for bad in bad_numbers:
        values.append(torch.full(spec.shape, bad, dtype=spec.dtype))
        values.append(torch.full((3, *spec.shape), bad, dtype=spec.dtype))
        if spec.shape.numel() > 1:
            one = spec.zero((2,))
            one.view(-1)[-1] = bad
            values.append(one)
    values.append(spec.rand((4, 2), generator=generator).transpose(0, 1))  # not contiguous
    return values


@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_is_in_agrees_with_why_not_in(spec):
    for value in _values(spec):
        assert spec.is_in(value) == (spec.why_not_in(value) is None), value
        if value.is_floating_point():
            grad = value.clone().requires_grad_(True)  # the torch path: no numpy view of it
            assert spec.is_in(grad) == spec.is_in(value), value


@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_is_in_refuses_other_dtypes_and_shapes(spec):
    value = spec.zero()
    other = torch.float64 if spec.dtype is not torch.float64 else torch.float32
    assert spec.is_in(value) and not spec.is_in(value.to(other))
    if spec.shape:
        assert not spec.is_in(torch.zeros((*spec.shape[:-1], spec.shape[-1] + 1), dtype=spec.dtype))


def test_bounded_fast_path_follows_bounds_changed_in_place_and_survives_copies():
    spec = Bounded(0.0, 1.0, shape=(2,))
    value = torch.tensor([0.5, 0.5])
    assert spec.is_in(value) and spec.is_in(value[:1].expand(2))
    spec.low.fill_(0.6)
    assert not spec.is_in(value) and not spec.is_in(torch.tensor([[0.5, 0.7]]))
    for copied in (pickle.loads(pickle.dumps(spec)), copy.deepcopy(spec)):
        assert not copied.is_in(value)
        copied.low.fill_(0.0)
        assert copied.is_in(value) and not spec.is_in(value)


def test_bfloat16_specs_use_the_torch_path():
    spec = Bounded(-1.0, 1.0, shape=(2,), dtype=torch.bfloat16)
    assert spec._host_bounds is None
    assert spec.is_in(torch.zeros(2, dtype=torch.bfloat16))
    assert not spec.is_in(torch.full((2,), 2.0, dtype=torch.bfloat16))
    assert not Unbounded((2,), dtype=torch.bfloat16).is_in(torch.tensor([NAN, 0.0], dtype=torch.bfloat16))
