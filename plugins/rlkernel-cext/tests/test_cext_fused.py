"""The fused calls (``SumTree.update_with``, ``SumTree.find_with_values``) and the
update kernel's shortcuts, against a tree rebuilt from its leaves.

Once every parent equals ``combine(left, right)`` a tree is a function of its leaves, so
after any sequence of updates the whole flat array must have exactly the bits of a tree
built from scratch from the same leaves (with the C++ rule for the minimum,
``right < left ? right : left``, which tells ``-0.0`` from ``+0.0``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlkernel_cext import _trees
from rlkernel_cext.trees import MinTree, SumTree

DTYPES = [torch.float32, torch.float64]
NP = {torch.float32: np.float32, torch.float64: np.float64}
BITS = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def rebuilt(flat: np.ndarray, kind: str) -> np.ndarray:
    """The flat tree recomputed level by level from the leaves of ``flat``."""
    tree = flat.copy()
    width = len(tree) // 2
    while width > 1:
        left, right = tree[width : 2 * width : 2], tree[width + 1 : 2 * width : 2]
        tree[width // 2 : width] = left + right if kind == "sum" else np.where(right < left, right, left)
        width //= 2
    return tree


def assert_exact(tree: SumTree | MinTree, kind: str) -> None:
    flat = tree._tree
    bits = BITS[flat.dtype]
    np.testing.assert_array_equal(flat[1:].view(bits), rebuilt(flat, kind)[1:].view(bits))


def batches(rng: np.random.Generator, capacity: int, dtype: torch.dtype):
    """Random batches with duplicates, runs of neighbouring rows (as a round-robin writer
    makes), rewrites of unchanged values, zeros of both signs."""
    cursor = 0
    for _ in range(12):
        k = int(rng.integers(1, 3 * capacity // 2 + 2))
        index = rng.integers(0, capacity, size=k)
        if rng.random() < 0.4:
            index = (cursor + np.arange(k)) % capacity
            cursor = int(index[-1] + 1) % capacity
        value = rng.exponential(size=k)
        value[rng.random(k) < 0.15] = 0.0
        value[rng.random(k) < 0.1] = -0.0
        yield torch.from_numpy(index), torch.from_numpy(value).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("capacity", [1, 2, 5, 64, 1000, 4097])
def test_update_with_is_two_updates(capacity: int, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(capacity)
    fused_sum, fused_min = SumTree(capacity, dtype), MinTree(capacity, dtype)
    plain_sum, plain_min = SumTree(capacity, dtype), MinTree(capacity, dtype)
    for index, value in batches(rng, capacity, dtype):
        assert fused_sum.update_with(fused_min, index, value) is True
        plain_sum.update(index, value)
        plain_min.update(index, value)
        if rng.random() < 0.5:  # the same leaves again: nothing may change
            fused_sum.update_with(fused_min, index, fused_sum.get(index))
        assert_exact(fused_sum, "sum")
        assert_exact(fused_min, "min")
        assert_exact(plain_min, "min")
        np.testing.assert_array_equal(fused_sum._tree, plain_sum._tree)
        np.testing.assert_array_equal(fused_min._tree.view(np.uint8), plain_min._tree.view(np.uint8))


def test_update_with_declines_other_trees() -> None:
    tree = SumTree(8)
    for other in (SumTree(8), MinTree(16), MinTree(8, torch.float32), object()):
        assert tree.update_with(other, torch.tensor([1]), torch.tensor([2.0])) is False
    assert tree.total() == 0.0  # declining writes nothing


def test_update_with_errors_leave_both_trees_unchanged() -> None:
    sums, mins = SumTree(8), MinTree(8)
    sums.update_with(mins, torch.arange(8), torch.arange(8.0))
    before = sums._tree.copy(), mins._tree.copy()
    with pytest.raises(IndexError, match=r"SumTree\.update_with: index 8 \(at position 1 .*capacity 8"):
        sums.update_with(mins, torch.tensor([0, 8]), torch.tensor([5.0, 5.0]))
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        sums.update_with(mins, torch.tensor([0, 1]), torch.tensor([5.0]))
    np.testing.assert_array_equal(sums._tree, before[0])
    np.testing.assert_array_equal(mins._tree, before[1])


def test_pair_update_checks_its_buffers() -> None:
    index, value = np.array([0], dtype=np.int64), np.ones(1)
    with pytest.raises(ValueError, match="the sum tree has 8 leaves but the min tree 16"):
        _trees.pair_update(np.zeros(16), np.zeros(32), 8, index, value)
    with pytest.raises(TypeError, match="min tree must hold float64 elements, got float32"):
        _trees.pair_update(np.zeros(16), np.zeros(16, dtype=np.float32), 8, index, value)
    with pytest.raises(TypeError, match="value must hold float64 elements"):
        _trees.pair_update(np.zeros(16), np.zeros(16), 8, index, value.astype(np.float32))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("capacity", [1, 3, 100, 4097])
def test_find_with_values_is_find_then_get(capacity: int, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(capacity + 5)
    tree = SumTree(capacity, dtype)
    index = torch.from_numpy(rng.integers(0, capacity, 2 * capacity))
    value = torch.from_numpy(rng.random(2 * capacity) * 10 * (rng.random(2 * capacity) > 0.3)).to(dtype)
    tree.update(index, value)
    total = tree.total()
    masses = np.concatenate([rng.random(300) * total, [0.0, total, 2 * total, np.inf, np.nan]])
    mass = torch.from_numpy(masses.astype(NP[dtype]))
    found, leaf_values = tree.find_with_values(mass)
    assert torch.equal(found, tree.find_prefixsum(mass))
    assert torch.equal(leaf_values, tree.get(found)) and leaf_values.dtype == dtype
    with pytest.raises(ValueError, match="mass and values must have the same length, got 2 and 1"):
        mass2, out2, values1 = np.zeros(2, NP[dtype]), np.zeros(2, np.int64), np.zeros(1, NP[dtype])
        _trees.find_prefixsum(tree._tree, capacity, mass2, out2, values1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_calls_take_cuda_tensors() -> None:
    sums, mins = SumTree(8), MinTree(8)
    assert sums.update_with(mins, torch.arange(8, device="cuda"), torch.ones(8, device="cuda"))
    found, values = sums.find_with_values(torch.tensor([2.5], device="cuda"))
    assert found.device.type == values.device.type == "cuda"
    assert found.tolist() == [2] and values.tolist() == [1.0] and mins.min() == 1.0
