"""Every bad input raises SpecError with a message that says what was wrong."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from rlkernel.errors import RLKernelError
from rlkernel.specs import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    SpecError,
    SpecIndexError,
    SpecKeyError,
    Unbounded,
)

NAN, INF = float("nan"), float("inf")


def test_spec_error_hierarchy() -> None:
    assert issubclass(SpecError, RLKernelError) and issubclass(SpecError, ValueError)
    assert issubclass(SpecKeyError, KeyError) and issubclass(SpecKeyError, SpecError)
    assert issubclass(SpecIndexError, IndexError) and issubclass(SpecIndexError, SpecError)


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: Bounded(1.0, -1.0), r"low must be <= high, but low 1.0 > high -1.0 at index \(\)"),
        (lambda: Bounded(torch.tensor([0.0, 2.0]), 1.0), r"low 2.0 > high 1.0 at index \(1,\)"),
        (lambda: Bounded(0.2, 0.8, dtype=torch.int64), "low 1 > high 0"),
        (lambda: Bounded(NAN, 1.0), "low contains NaN"),
        (lambda: Bounded(0.0, INF), "high must be finite.*Unbounded"),
        (lambda: Bounded(0.0, 1e6, dtype=torch.float16), "high must be finite in float16"),
        (lambda: Bounded(0, 300, dtype=torch.uint8), r"high 300.*does not fit dtype uint8"),
        (
            lambda: Bounded(torch.zeros(3), 1.0, shape=(2,)),
            r"low of shape \[3\] does not broadcast",
        ),
        (lambda: Bounded(torch.zeros(3), torch.ones(2)), "do not broadcast together"),
        (lambda: Unbounded(dtype=torch.complex64), "unsupported dtype complex64"),
        (lambda: Unbounded(shape=(-1,)), "non-negative"),
        (lambda: Unbounded(shape="abc"), "sequence of ints"),
        (lambda: Categorical(0), "n must be >= 1"),
        (lambda: Categorical(2.5), "n must be an int"),
        (lambda: Categorical(3, dtype=torch.bool), "at most 2 categories"),
        (lambda: Categorical(3, dtype=torch.float32), "unsupported dtype float32"),
        (lambda: Categorical(300, dtype=torch.int8), "do not fit dtype"),
        (lambda: OneHot(3, shape=(2, 4)), r"last dim of shape \[2, 4\] must be n=3"),
        (lambda: MultiCategorical([2, 3], shape=(3,)), "must be len\\(nvec\\)=2"),
        (lambda: MultiCategorical([]), "nvec must not be empty"),
        (lambda: MultiCategorical([2, 0]), ">= 1"),
        (lambda: MultiCategorical(torch.ones(2, 2, dtype=torch.int64)), "1-D integer tensor"),
        (lambda: MultiOneHot([2, 3], shape=(4,)), "sum\\(nvec\\)=5"),
        (lambda: Binary(), "give n or shape"),
        (lambda: Binary(3, shape=(2,)), "must be n=3"),
        (lambda: Unbounded(device="not-a-device"), "invalid device"),
    ],
)
def test_bad_constructor_arguments(build, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment):
        build()


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: Categorical(3, mask=torch.tensor([1, 0, 1])), "mask must be a bool tensor"),
        (
            lambda: Categorical(3, mask=torch.ones(4, dtype=torch.bool)),
            r"does not broadcast to \[3\]",
        ),
        (
            lambda: Categorical(3, shape=(2,), mask=torch.tensor([[True] * 3, [False] * 3])),
            r"mask allows no category at index \(1,\)",
        ),
        (lambda: OneHot(2, mask=torch.tensor([False, False])), "allows no category"),
        (
            lambda: MultiCategorical([2, 2], mask=torch.tensor([True, True, False, False])),
            "no category of variable 1",
        ),
    ],
)
def test_bad_masks(build, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment):
        build()


def test_assert_is_in_message_names_key_spec_and_value() -> None:
    spec = Bounded(-2.0, 2.0, shape=(1,))
    with pytest.raises(SpecError) as info:
        spec.assert_is_in(torch.tensor([3.7]), key="action", role="action")
    assert str(info.value) == (
        "action 'action' does not fit Bounded(shape=[1], dtype=float32, low=-2.0, high=2.0): "
        "value 3.7 is above high 2.0 at index (0,)"
    )
    with pytest.raises(SpecError, match=r"value -5.0 is below low -2.0 at index \(1, 0\) \(2 of 3"):
        spec.assert_is_in(torch.tensor([[0.0], [-5.0], [9.0]]))
    spec.assert_is_in(torch.tensor([1.5]))  # no error


def test_nan_and_inf_are_named() -> None:
    with pytest.raises(SpecError, match=r"value is NaN at index \(1,\)"):
        Bounded(0.0, 1.0, shape=(2,)).assert_is_in(torch.tensor([0.5, NAN]))
    with pytest.raises(SpecError, match=r"value is NaN at index \(0,\)"):
        Unbounded((2,)).assert_is_in(torch.tensor([NAN, 1.0]))
    with pytest.raises(SpecError, match=r"value is -inf at index \(1,\), only finite"):
        Unbounded((2,)).assert_is_in(torch.tensor([0.0, -INF]))
    with pytest.raises(SpecError, match="value NaN is not 0 or 1"):
        Binary(2, dtype=torch.float32).assert_is_in(torch.tensor([NAN, 1.0]))


@pytest.mark.parametrize(
    ("spec", "value", "fragment"),
    [
        (Unbounded((2,)), [0.0, 1.0], "expected a torch.Tensor, got list"),
        (
            Unbounded((2,)),
            torch.zeros(2, dtype=torch.float64),
            "dtype is float64, expected float32",
        ),
        (Unbounded((2,)), torch.zeros(3), r"shape is \[3\], expected \[2\]"),
        (Categorical(3), torch.tensor(3), r"value 3 is outside \[0, 3\) at index \(\)"),
        (
            Categorical(3, mask=torch.tensor([True, False, True])),
            torch.tensor(1),
            r"category 1 is masked out at index \(\) \(allowed there: \[0, 2\]\)",
        ),
        (OneHot(3), torch.tensor([True, True, False]), "has 2 hot entries, expected exactly one"),
        (OneHot(3, dtype=torch.float32), torch.tensor([0.5, 0.5, 0.0]), "value 0.5 is not 0 or 1"),
        (
            OneHot(2, mask=torch.tensor([True, False])),
            torch.tensor([False, True]),
            "category 1 is masked",
        ),
        (
            Binary(2),
            torch.tensor([0, 2], dtype=torch.int8),
            r"value 2 is not 0 or 1 at index \(1,\)",
        ),
        (
            MultiCategorical([2, 3]),
            torch.tensor([1, 3]),
            r"value 3 of variable 1 is outside \[0, 3\)",
        ),
        (
            MultiOneHot([2, 3]),
            torch.tensor([True, False, False, False, False]),
            r"variable 1 \(entries 2..4\).*0 hot entries",
        ),
    ],
)
def test_why_not_in_explains(spec, value, fragment: str) -> None:
    assert not spec.is_in(value)
    assert re.search(fragment, spec.why_not_in(value))
    with pytest.raises(SpecError, match=fragment):
        spec.assert_is_in(value, key="k")


def test_encode_errors() -> None:
    with pytest.raises(
        SpecError, match=r"shape \[3\] \(3 entries\) into shape \[2, 2\] \(4 entries\)"
    ):
        Bounded(0.0, 1.0, shape=(2, 2)).encode([0.1, 0.2, 0.3])
    with pytest.raises(SpecError, match="cannot turn a str into a tensor"):
        Unbounded(()).encode("abc")
    with pytest.raises(SpecError, match=r"category index 3 is outside \[0, 3\)"):
        OneHot(3).encode(3)
    with pytest.raises(SpecError, match=r"category index 1\.5 is not an integer"):
        OneHot(3).encode(1.5)
    with pytest.raises(SpecError, match=r"index 2 of variable 0 is outside \[0, 2\)"):
        MultiOneHot([2, 3]).encode([2, 0])
    with pytest.raises(SpecError, match="as one-hot"):
        OneHot(3).encode([1, 0])


def test_encode_accepts_numpy_and_numbers() -> None:
    arr = np.arange(6, dtype=np.float64)[::-1].reshape(2, 3)
    out = Unbounded((2, 3), dtype=torch.float64).encode(arr)
    assert out.tolist() == arr.tolist()
    assert Categorical(4).encode(np.int64(2)).item() == 2
    assert Bounded(0, 10, dtype=torch.int32).encode(2.6).item() == 3
    assert OneHot(3).encode(torch.tensor([0.0, 1.0, 0.0])).tolist() == [False, True, False]


def test_index_errors() -> None:
    with pytest.raises(SpecError, match="event dims cannot be indexed"):
        OneHot(3)[0]
    with pytest.raises(SpecError, match="event dims cannot be indexed"):
        MultiCategorical([2, 2], shape=(4, 2))[0, 1]
    with pytest.raises(SpecError, match="event dims cannot be indexed"):
        Bounded(0.0, 1.0)[0]
    with pytest.raises(SpecIndexError, match="out of range"):
        Bounded(0.0, 1.0, shape=(3,))[3]
    with pytest.raises(SpecError, match="only one Ellipsis"):
        Unbounded((2, 2))[..., ...]
    with pytest.raises(SpecError, match="index tensors must hold ints or bools"):
        Unbounded((2,))[torch.tensor([0.5])]
    with pytest.raises(SpecError, match="unsupported index"):
        Unbounded((2,))["a"]
    parts = list(Bounded(0.0, 1.0, shape=(3, 2)))  # iteration stops at the IndexError
    assert len(parts) == 3 and parts[0] == Bounded(0.0, 1.0, shape=(2,))


def test_shape_operation_errors() -> None:
    with pytest.raises(SpecError, match=r"cannot expand shape \[3\] to \[4, 2\]"):
        Bounded(0.0, 1.0, shape=(3,)).expand(4, 2)
    with pytest.raises(SpecError, match="event dim 0 has size 3"):
        OneHot(3).expand(2, 4)
    with pytest.raises(SpecError, match="fewer dims"):
        Unbounded((2, 3)).expand(3)
    assert Unbounded((1, 3)).expand(5, -1).shape == (5, 3)
    with pytest.raises(SpecError, match="batch dim"):
        OneHot(3).unsqueeze(-1)
    with pytest.raises(SpecError, match="can be squeezed"):
        OneHot(1).squeeze(0)
    with pytest.raises(SpecError, match="does not end with the spec shape"):
        Bounded(0.0, 1.0, shape=(2,)).project(torch.zeros(3))


def test_composite_errors() -> None:
    with pytest.raises(SpecError, match=r"key 'obs' has shape \[3\].*batch shape \[2\]"):
        Composite(obs=Unbounded((3,)), shape=(2,))
    spec = Composite(a=Unbounded((2,)), shape=(2,))
    with pytest.raises(
        SpecKeyError, match=r"key 'b' not found in Composite \(keys there: \['a'\]\)"
    ):
        spec["b"]
    with pytest.raises(SpecError, match="non-empty tuples of strings"):
        spec[("a", 1)] = Unbounded((2,))
    with pytest.raises(SpecKeyError, match="key 'zzz' is not in the spec"):
        spec.encode({"zzz": 1})
    with pytest.raises(SpecError, match=r"Composite.encode: key 'a'.*3 entries"):
        spec.encode({"a": [1, 2, 3]})
    with pytest.raises(SpecKeyError, match=r"keys \['a'\] are missing"):
        spec.project({})
    with pytest.raises(SpecError, match=r"does not fit the Composite spec: key 'a' is missing"):
        spec.assert_is_in({})
    with pytest.raises(SpecError, match="cannot expand"):
        spec.expand(3)
