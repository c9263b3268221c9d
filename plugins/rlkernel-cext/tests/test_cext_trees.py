"""The C++ trees against plain numpy: an O(n) reference and the canonical descent.

Two kinds of data are used. With small integer leaf values every prefix sum is exact in
both dtypes, so the trees must agree *exactly* with a straightforward cumulative-sum
search. With arbitrary floats the trees must agree bit for bit with the canonical
flat-tree rule of :mod:`rlkernel_cext.trees` (which the core's pure-torch trees also
follow), and within rounding with the O(n) reference.
"""

from __future__ import annotations

import pickle
import threading
import warnings

import numpy as np
import pytest
import torch

from rlkernel_cext.trees import MinTree, SumTree

CAPACITIES = [1, 7, 1000, 1 << 16]
DTYPES = [torch.float32, torch.float64]
NP = {torch.float32: np.float32, torch.float64: np.float64}


class Reference:
    """Leaves in a plain numpy array; every query is a straightforward O(n) pass."""

    def __init__(self, capacity: int, dtype: torch.dtype, neutral: float) -> None:
        self.leaves = np.full(capacity, neutral, dtype=NP[dtype])

    def update(self, index: torch.Tensor, value: torch.Tensor) -> None:
        for i, v in zip(index.tolist(), value.tolist()):  # in order: the last duplicate wins
            self.leaves[i] = v

    def total(self) -> float:
        return float(self.leaves.astype(np.float64).sum())

    def min(self) -> float:
        return float(self.leaves.min())

    def last_nonzero(self) -> int:
        nonzero = np.flatnonzero(self.leaves)
        return int(nonzero[-1]) if nonzero.size else 0

    def find_prefixsum(self, mass: np.ndarray) -> np.ndarray:
        """Smallest i with sum(leaves[0..i]) > m, clamped to the last non-zero leaf."""
        cumulative = np.cumsum(self.leaves.astype(np.float64))
        found = np.searchsorted(cumulative, mass.astype(np.float64), side="right")
        return np.minimum(found, self.last_nonzero())


def canonical_find(leaves: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """The canonical rule, in numpy: build the flat tree, descend level by level."""
    dtype = leaves.dtype.type
    p = 1 << (len(leaves) - 1).bit_length()
    tree = np.zeros(2 * p, dtype=dtype)
    tree[p : p + len(leaves)] = leaves
    width = p
    while width > 1:  # parents of one level at a time: parent = left + right
        tree[width // 2 : width] = tree[width : 2 * width : 2] + tree[width + 1 : 2 * width : 2]
        width //= 2
    node = np.ones(len(mass), dtype=np.int64)
    rest = mass.astype(dtype)
    for _ in range(p.bit_length() - 1):
        left = tree[2 * node]
        right = rest >= left
        rest = np.where(right, rest - left, rest).astype(dtype)
        node = 2 * node + right
    nonzero = np.flatnonzero(leaves)
    last = int(nonzero[-1]) if nonzero.size else 0
    return np.minimum(node - p, last)


def random_batches(rng: np.random.Generator, capacity: int, integer: bool, rounds: int = 4):
    """Batches of (index, value) with duplicated indices and some zero values."""
    for _ in range(rounds):
        k = int(rng.integers(1, max(2, capacity // 3) + 1))
        index = rng.integers(0, capacity, size=k)
        if k > 1:
            index[-1] = index[0]  # at least one duplicate: the last one must win
        if integer:
            value = rng.integers(0, 17, size=k).astype(np.float64)
        else:
            value = rng.exponential(size=k) * (rng.random(k) > 0.1)
        yield torch.from_numpy(index), torch.from_numpy(value)


def assert_consistent(tree: SumTree | MinTree, combine) -> None:
    """White box: every parent equals combine(left, right) exactly (no drift)."""
    flat = tree._tree
    p = len(flat) // 2
    parents = np.arange(1, p)
    expected = combine(flat[2 * parents], flat[2 * parents + 1])
    np.testing.assert_array_equal(flat[1:p], expected.astype(flat.dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("capacity", CAPACITIES)
def test_sum_tree_matches_exact_reference(capacity: int, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(capacity)
    tree, ref = SumTree(capacity, dtype=dtype), Reference(capacity, dtype, 0.0)
    for index, value in random_batches(rng, capacity, integer=True):
        tree.update(index, value)
        ref.update(index, value)
        assert tree.total() == ref.total()
        np.testing.assert_array_equal(tree.values().numpy(), ref.leaves)
        probe = torch.from_numpy(rng.integers(0, capacity, size=50))
        np.testing.assert_array_equal(tree.get(probe).numpy(), ref.leaves[probe.numpy()])
        if ref.total() == 0:
            continue
        mass = (rng.random(500) * ref.total()).astype(NP[dtype])
        np.testing.assert_array_equal(
            tree.find_prefixsum(torch.from_numpy(mass)).numpy(), ref.find_prefixsum(mass)
        )
    assert tree.values().dtype == dtype
    assert tree.find_prefixsum(torch.zeros(1, dtype=dtype)).dtype == torch.int64
    assert_consistent(tree, np.add)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("capacity", CAPACITIES)
def test_sum_tree_edge_masses(capacity: int, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(capacity + 1)
    leaves = rng.integers(0, 5, size=capacity).astype(np.float64)
    leaves[-1] = 0.0  # trailing zeros: a mass >= total must not land on them
    leaves[0] = 0.0  # leading zero: mass 0 must skip it
    if capacity > 2:
        leaves[capacity // 2] = 3.0
    else:
        leaves[0] = 3.0
    tree, ref = SumTree(capacity, dtype=dtype), Reference(capacity, dtype, 0.0)
    index = torch.arange(capacity)
    tree.update(index, torch.from_numpy(leaves))
    ref.update(index, torch.from_numpy(leaves))
    total = tree.total()
    assert total == ref.total()
    np_dtype = NP[dtype]
    below_total = np.nextafter(np_dtype(total), np_dtype(-np.inf))
    mass = np.array([0, below_total, total, total * 2, np.inf], dtype=np_dtype)
    found = tree.find_prefixsum(torch.from_numpy(mass)).tolist()
    last, first = ref.last_nonzero(), int(np.flatnonzero(ref.leaves)[0])
    assert found == [first, last, last, last, last]
    assert found == ref.find_prefixsum(mass).tolist()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("capacity", CAPACITIES)
def test_sum_tree_is_canonical_on_arbitrary_floats(capacity: int, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(capacity + 2)
    tree, ref = SumTree(capacity, dtype=dtype), Reference(capacity, dtype, 0.0)
    for index, value in random_batches(rng, capacity, integer=False, rounds=3):
        tree.update(index, value)
        ref.update(index, value)
    assert_consistent(tree, np.add)
    total = tree.total()
    assert total == pytest.approx(ref.total(), rel=1e-4 if dtype == torch.float32 else 1e-10)
    if total == 0:
        return
    mass = (rng.random(2000) * total).astype(NP[dtype])
    found = tree.find_prefixsum(torch.from_numpy(mass)).numpy()
    # Bit-identical to the canonical rule the pure-torch trees implement ...
    np.testing.assert_array_equal(found, canonical_find(ref.leaves, mass))
    # ... and, within rounding, the O(n) answer: the mass falls inside the found leaf.
    cumulative = np.cumsum(ref.leaves.astype(np.float64))
    slack = total * (1e-4 if dtype == torch.float32 else 1e-10)
    assert np.all(cumulative[found] - ref.leaves[found] <= mass + slack)
    assert np.all(mass < cumulative[found] + slack)
    assert np.all(ref.leaves[found] > 0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("capacity", CAPACITIES)
def test_min_tree_matches_reference(capacity: int, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(capacity + 3)
    tree, ref = MinTree(capacity, dtype=dtype), Reference(capacity, dtype, np.inf)
    assert tree.min() == np.inf
    np.testing.assert_array_equal(tree.values().numpy(), ref.leaves)
    for index, value in random_batches(rng, capacity, integer=False):
        tree.update(index, value)
        ref.update(index, value)
        assert tree.min() == ref.min()
        np.testing.assert_array_equal(tree.values().numpy(), ref.leaves)
        probe = torch.from_numpy(rng.integers(0, capacity, size=50))
        np.testing.assert_array_equal(tree.get(probe).numpy(), ref.leaves[probe.numpy()])
    # Raising the current minimum must raise the tree's minimum (parents are recomputed).
    argmin = torch.tensor([int(np.argmin(ref.leaves))])
    tree.update(argmin, torch.tensor([1e9]))
    ref.update(argmin, torch.tensor([1e9]))
    assert tree.min() == ref.min()
    assert_consistent(tree, np.minimum)


def test_empty_and_all_zero_trees() -> None:
    tree = SumTree(10)
    assert tree.total() == 0.0
    assert tree.find_prefixsum(torch.tensor([0.0, 1.0])).tolist() == [0, 0]
    tree.update(torch.tensor([3]), torch.tensor([2.0]))
    tree.update(torch.tensor([3]), torch.tensor([0.0]))
    assert tree.total() == 0.0
    assert tree.find_prefixsum(torch.tensor([0.5])).tolist() == [0]
    empty = torch.empty(0, dtype=torch.int64)
    tree.update(empty, torch.empty(0))
    assert tree.get(empty).shape == (0,)
    assert tree.find_prefixsum(torch.empty(0)).shape == (0,)


def test_interface_attributes_and_input_forms() -> None:
    tree = SumTree(5, dtype=torch.float32)
    assert (tree.capacity, tree.dtype, len(tree)) == (5, torch.float32, 5)
    assert SumTree(3).dtype == torch.float64
    tree.update([0, 4], [1.5, 2.5])  # lists, numpy arrays and any integer dtype are accepted
    tree.update(np.array([1], dtype=np.int32), np.array([1.0]))
    tree.update(torch.tensor([2], dtype=torch.int32), torch.tensor([1.0], requires_grad=True))
    assert tree.values().tolist() == [1.5, 1.0, 1.0, 0.0, 2.5]
    values = tree.values()
    values[0] = 100.0  # values() is a copy
    assert tree.get(torch.tensor([0])).tolist() == [1.5]
    mass = torch.tensor([0.5, 5.9], dtype=torch.float64)  # cast to the tree's dtype
    assert tree.find_prefixsum(mass).tolist() == [0, 4]


def test_pickle_round_trip() -> None:
    tree = SumTree(9, dtype=torch.float32)
    tree.update(torch.arange(9), torch.arange(9, dtype=torch.float32))
    clone = pickle.loads(pickle.dumps(tree))
    assert clone.total() == tree.total() == 36.0
    clone.update(torch.tensor([0]), torch.tensor([4.0]))
    assert (clone.total(), tree.total()) == (40.0, 36.0)


def test_concurrent_updates_keep_the_tree_consistent() -> None:
    tree = SumTree(4096)

    def writer(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(50):
            tree.update(torch.from_numpy(rng.integers(0, 4096, 64)), torch.from_numpy(rng.random(64)))
            tree.find_prefixsum(torch.from_numpy(rng.random(64)))

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert_consistent(tree, np.add)


def test_same_answers_as_other_registered_sum_trees() -> None:
    """If another sum-tree kernel is registered (the core's pure-torch one), agree with it."""
    import rlkernel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # another plugin's failure is not this plugin's test
        names = [
            n for n in rlkernel.registry.kernels.names() if n.startswith("sum_tree:") and n != "sum_tree:cpp"
        ]
    if not names:
        pytest.skip("no other sum-tree kernel is registered")
    rng = np.random.default_rng(7)
    for name in names:
        for dtype in DTYPES:
            ours, theirs = SumTree(1000, dtype=dtype), rlkernel.registry.kernels[name](1000, dtype=dtype)
            for index, value in random_batches(rng, 1000, integer=False, rounds=2):
                ours.update(index, value)
                theirs.update(index, value)
            assert ours.total() == theirs.total(), name
            mass = torch.from_numpy(rng.random(1000) * ours.total()).to(dtype)
            edges = torch.tensor([0.0, ours.total(), ours.total() * 2], dtype=dtype)
            for batch in (mass, edges):
                assert torch.equal(ours.find_prefixsum(batch), theirs.find_prefixsum(batch).cpu()), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_round_trip() -> None:
    tree = SumTree(8)
    tree.update(torch.arange(8, device="cuda"), torch.ones(8, device="cuda"))
    assert tree.get(torch.tensor([1], device="cuda")).device.type == "cuda"
    found = tree.find_prefixsum(torch.tensor([2.5], device="cuda"))
    assert found.device.type == "cuda" and found.tolist() == [2]
