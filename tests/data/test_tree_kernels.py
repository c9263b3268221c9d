"""Sum and min tree kernels against a plain numpy reference, for every registered
implementation (``sum_tree:*`` in the kernels registry, plus the built-in torch one)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rlkernel
from rlkernel.data.errors import BufferError, KernelError
from rlkernel.data.kernels import ENV_VAR, get_tree_kernel, tree_kernel_names
from rlkernel.registries import Registry


def _implementations() -> list[str]:
    names = set(tree_kernel_names("sum_tree")) & set(tree_kernel_names("min_tree"))
    return sorted(names | {"torch"})


IMPLS = _implementations()


def _trees(impl: str, capacity: int, dtype: torch.dtype = torch.float64):
    return get_tree_kernel("sum_tree", impl)(capacity, dtype), get_tree_kernel("min_tree", impl)(capacity, dtype)


def _reference_find(leaves: np.ndarray, masses: np.ndarray) -> np.ndarray:
    # smallest i with sum(leaves[: i + 1]) > m
    return np.searchsorted(np.cumsum(leaves), masses, side="right")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("capacity", [1, 2, 7, 64, 1000, 5000])
def test_random_updates_match_numpy(impl, capacity):
    rng = np.random.default_rng(capacity)
    sum_tree, min_tree = _trees(impl, capacity)
    assert sum_tree.capacity == capacity and sum_tree.dtype == torch.float64
    leaves_sum = np.zeros(capacity)
    leaves_min = np.full(capacity, np.inf)
    for _ in range(20):
        k = int(rng.integers(1, 3 * capacity + 2))
        index = rng.integers(0, capacity, size=k)  # with duplicates: the last one wins
        value = rng.random(k) * 10
        value[rng.random(k) < 0.2] = 0.0
        for i, v in zip(index, value):
            leaves_sum[i] = v
            leaves_min[i] = v
        sum_tree.update(torch.from_numpy(index), torch.from_numpy(value))
        min_tree.update(torch.from_numpy(index), torch.from_numpy(value))
        np.testing.assert_array_equal(sum_tree.values().numpy(), leaves_sum)
        np.testing.assert_array_equal(min_tree.values().numpy(), leaves_min)
        probe = rng.integers(0, capacity, size=17)
        np.testing.assert_array_equal(sum_tree.get(torch.from_numpy(probe)).numpy(), leaves_sum[probe])
        assert sum_tree.total() == pytest.approx(leaves_sum.sum(), rel=1e-12, abs=1e-12)
        assert min_tree.min() == leaves_min.min()
        if leaves_sum.sum() > 0:
            masses = rng.random(257) * leaves_sum.sum()
            found = sum_tree.find_prefixsum(torch.from_numpy(masses)).numpy()
            np.testing.assert_array_equal(found, _reference_find(leaves_sum, masses))
            assert (leaves_sum[found] > 0).all()


@pytest.mark.parametrize("impl", IMPLS)
def test_exact_boundaries_skip_zero_leaves(impl):
    # Integer leaves: every prefix sum is exact, so boundaries are tested exactly.
    leaves = np.array([0, 3, 0, 0, 1, 2, 0, 4, 0, 0], dtype=np.float64)
    sum_tree, _ = _trees(impl, leaves.size)
    sum_tree.update(torch.arange(leaves.size), torch.from_numpy(leaves))
    masses = np.array([0, 1, 2.999, 3, 3.5, 4, 5, 5.999, 6, 9.999])
    found = sum_tree.find_prefixsum(torch.from_numpy(masses)).tolist()
    assert found == [1, 1, 1, 4, 4, 5, 5, 5, 7, 7]
    assert found == _reference_find(leaves, masses).tolist()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("capacity", [5, 100, 3000])
def test_mass_at_or_past_total_lands_on_last_nonzero_leaf(impl, capacity):
    sum_tree, _ = _trees(impl, capacity)
    index = torch.arange(0, capacity // 2)
    sum_tree.update(index, torch.rand(index.numel(), dtype=torch.float64) + 0.1)
    total = sum_tree.total()
    last = int(index[-1])
    masses = torch.tensor([total, total * (1 + 1e-12), np.nextafter(total, 0)], dtype=torch.float64)
    found = sum_tree.find_prefixsum(masses).tolist()
    assert found[:2] == [last, last]
    assert found[2] <= last


@pytest.mark.parametrize("impl", IMPLS)
def test_float32_trees(impl):
    capacity = 777
    sum_tree, min_tree = _trees(impl, capacity, torch.float32)
    value = torch.rand(capacity) + 0.01
    sum_tree.update(torch.arange(capacity), value)
    min_tree.update(torch.arange(capacity), value)
    assert sum_tree.values().dtype == torch.float32
    assert sum_tree.total() == pytest.approx(float(value.double().sum()), rel=1e-5)
    assert min_tree.min() == pytest.approx(float(value.min()))
    masses = torch.rand(1000) * sum_tree.total()
    found = sum_tree.find_prefixsum(masses)
    reference = torch.from_numpy(_reference_find(value.double().numpy(), masses.double().numpy()))
    # float32 rounding may move a mass across a boundary by one leaf, never more
    assert (found - reference).abs().max() <= 1
    assert found.max() < capacity


@pytest.mark.parametrize("impl", IMPLS)
def test_min_tree_starts_at_infinity(impl):
    _, min_tree = _trees(impl, 10)
    assert min_tree.min() == float("inf")
    min_tree.update(torch.tensor([3, 3]), torch.tensor([2.0, 5.0], dtype=torch.float64))
    assert min_tree.min() == 5.0
    assert min_tree.get(torch.tensor([3, 4])).tolist() == [5.0, float("inf")]


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_property_sum_tree_matches_reference(impl, data):
    capacity = data.draw(st.integers(1, 300), label="capacity")
    sum_tree, _ = _trees(impl, capacity)
    leaves = np.zeros(capacity)
    for _ in range(data.draw(st.integers(1, 4), label="batches")):
        pairs = data.draw(
            st.lists(st.tuples(st.integers(0, capacity - 1), st.integers(0, 50)), min_size=1, max_size=40),
            label="updates",
        )
        for i, v in pairs:
            leaves[i] = v
        sum_tree.update(
            torch.tensor([i for i, _ in pairs]), torch.tensor([float(v) for _, v in pairs], dtype=torch.float64)
        )
    np.testing.assert_array_equal(sum_tree.values().numpy(), leaves)
    if leaves.sum() > 0:
        masses = np.arange(0, leaves.sum(), 0.5)
        found = sum_tree.find_prefixsum(torch.from_numpy(masses)).numpy()
        np.testing.assert_array_equal(found, _reference_find(leaves, masses))


def _canonical_find(leaves: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """The search rule every implementation follows, one mass at a time, in the leaves'
    dtype: parents are left + right, a mass below the left child goes left, any other
    goes right minus the left child, and the result is clamped to the last non-zero leaf."""
    size = 1 << (leaves.size - 1).bit_length()
    tree = np.zeros(2 * size, dtype=leaves.dtype)
    tree[size : size + leaves.size] = leaves
    for node in range(size - 1, 0, -1):
        tree[node] = tree[2 * node] + tree[2 * node + 1]
    nonzero = np.flatnonzero(leaves > 0)
    last = int(nonzero[-1]) if nonzero.size else 0
    found = []
    for m in masses.astype(leaves.dtype):
        node = 1
        while node < size:
            if m < tree[2 * node]:
                node = 2 * node
            else:
                m = m - tree[2 * node]
                node = 2 * node + 1
        found.append(min(node - size, last))
    return np.array(found)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("capacity", [1, 3, 100, 4097])
def test_find_prefixsum_follows_the_canonical_rule_bit_for_bit(impl, dtype, capacity):
    rng = np.random.default_rng(capacity)
    sum_tree, _ = _trees(impl, capacity, dtype)
    index = rng.integers(0, capacity, 2 * capacity)
    value = rng.random(2 * capacity) * 100
    value[rng.random(value.size) < 0.3] = 0.0
    sum_tree.update(torch.from_numpy(index), torch.from_numpy(value).to(dtype))
    leaves = sum_tree.values().numpy()
    total = float(leaves.astype(np.float64).sum())
    masses = np.concatenate([rng.random(300) * total, [0.0, total, 2 * total, np.inf, np.nan]])
    masses = masses.astype(leaves.dtype)
    found = sum_tree.find_prefixsum(torch.from_numpy(masses)).numpy()
    np.testing.assert_array_equal(found, _canonical_find(leaves, masses))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_find_with_values_is_find_then_get(impl, dtype):
    rng = np.random.default_rng(3)
    sum_tree, _ = _trees(impl, 777, dtype)
    value = rng.random(777) * (rng.random(777) > 0.3)
    value[-50:] = 0.0  # trailing zero leaves: masses past the total are clamped onto a non-zero one
    sum_tree.update(torch.arange(777), torch.from_numpy(value).to(dtype))
    total = sum_tree.total()
    masses = np.concatenate([rng.random(500) * total, [0.0, total, 2 * total, np.inf, np.nan]])
    mass = torch.from_numpy(masses).to(dtype)
    found, leaf_values = sum_tree.find_with_values(mass)
    assert torch.equal(found, sum_tree.find_prefixsum(mass))
    assert torch.equal(leaf_values, sum_tree.get(found))
    assert bool((leaf_values > 0).all())


@pytest.mark.skipif(len(IMPLS) < 2, reason="a single tree implementation is installed")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("pair", list(itertools.combinations(IMPLS, 2)))
def test_implementations_agree_on_find_prefixsum(pair, dtype):
    rng = np.random.default_rng(0)
    capacity = 100_000
    trees = [_trees(impl, capacity, dtype) for impl in pair]
    index = torch.from_numpy(rng.integers(0, capacity, 300_000))
    value = torch.from_numpy(rng.random(300_000)).to(dtype)
    for sum_tree, min_tree in trees:
        sum_tree.update(index, value)
        min_tree.update(index, value)
    (first_sum, first_min), (second_sum, second_min) = trees
    assert torch.equal(first_sum.values(), second_sum.values())
    assert first_sum.total() == second_sum.total() and first_min.min() == second_min.min()
    masses = torch.from_numpy(rng.random(20_000)).to(dtype) * first_sum.total()
    assert torch.equal(first_sum.find_prefixsum(masses), second_sum.find_prefixsum(masses))
    for got, want in zip(first_sum.find_with_values(masses), second_sum.find_with_values(masses)):
        assert torch.equal(got, want)


# -- choosing an implementation --------------------------------------------------------
class _FakeTree:
    def __init__(self, capacity, dtype=torch.float64):
        self.capacity, self.dtype = capacity, dtype


def _registry(*impls: str) -> Registry:
    registry = Registry(discover=False)
    for impl in impls:
        for kind in ("sum_tree", "min_tree"):
            if impl == "torch":
                registry.kernels.register(
                    f"{kind}:torch",
                    f"rlkernel.data.kernels.torch_trees:{'SumTree' if kind == 'sum_tree' else 'MinTree'}",
                )
            else:
                registry.kernels.register(f"{kind}:{impl}", _FakeTree)
    return registry


def test_prefers_a_registered_compiled_kernel(monkeypatch):
    from rlkernel.data.kernels.torch_trees import SumTree

    monkeypatch.delenv(ENV_VAR, raising=False)
    assert get_tree_kernel("sum_tree", registry=_registry("torch", "cpp")) is _FakeTree
    monkeypatch.setenv(ENV_VAR, "torch")
    assert get_tree_kernel("sum_tree", registry=_registry("torch", "cpp")) is SumTree
    monkeypatch.setenv(ENV_VAR, "cpp")
    assert get_tree_kernel("min_tree", registry=_registry("torch", "cpp")) is _FakeTree
    assert get_tree_kernel("min_tree", "torch", registry=_registry("torch", "cpp")).__name__ == "MinTree"


def test_falls_back_to_torch_when_nothing_is_registered(monkeypatch):
    from rlkernel.data.kernels.torch_trees import MinTree, SumTree

    monkeypatch.delenv(ENV_VAR, raising=False)
    empty = Registry(discover=False)
    assert get_tree_kernel("sum_tree", registry=empty) is SumTree
    assert get_tree_kernel("min_tree", registry=empty) is MinTree


def test_forcing_a_missing_kernel_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "cpp")
    with pytest.raises(KernelError, match=r"RLKERNEL_KERNELS='cpp'.*sum_tree:cpp.*rlkernel-cext"):
        get_tree_kernel("sum_tree", registry=_registry("torch"))
    with pytest.raises(KernelError, match="impl='gpu'"):
        get_tree_kernel("sum_tree", "gpu", registry=_registry("torch"))
    with pytest.raises(KernelError, match="unknown tree kernel kind 'max_tree'"):
        get_tree_kernel("max_tree")


def test_a_broken_preferred_kernel_falls_back_with_a_warning(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    registry = _registry("torch")
    registry.kernels.register("sum_tree:cpp", "rlkernel_cext_missing.trees:SumTree")
    with pytest.warns(RuntimeWarning, match="sum_tree:cpp could not be loaded"):
        factory = get_tree_kernel("sum_tree", registry=registry)
    assert factory.__name__ == "SumTree"


def test_the_process_registry_is_consulted():
    names = tree_kernel_names("sum_tree")
    assert names == tree_kernel_names("sum_tree", registry=rlkernel.registry)
    assert get_tree_kernel("sum_tree", "torch")(4).capacity == 4


def test_bad_tree_arguments():
    with pytest.raises(BufferError, match="capacity must be a positive int"):
        get_tree_kernel("sum_tree", "torch")(0)
    with pytest.raises(BufferError, match="dtype must be a floating"):
        get_tree_kernel("min_tree", "torch")(4, torch.int64)


@pytest.mark.parametrize("capacity", [5, 1000, 40_000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_run_updates_build_the_same_tree_as_scattered_ones(capacity, dtype):
    """Consecutive indices (what extend writes) take a sliced path; every node must equal
    the one the gathered path computes, runs at the start, middle and end included."""
    from rlkernel.data.kernels.torch_trees import MinTree, SumTree

    rng = torch.Generator().manual_seed(capacity)
    for cls in (SumTree, MinTree):
        sliced, scattered = cls(capacity, dtype), cls(capacity, dtype)
        runs = [(0, min(capacity, 1500)), (0, 3), (capacity // 2, min(capacity // 3 + 1, 1500)), (capacity - 2, 2)]
        for start, length in runs:
            index = torch.arange(start, start + length)
            value = torch.rand(length, generator=rng, dtype=torch.float64)
            sliced.update(index, value)
            for i, v in zip(index.tolist(), value.tolist()):  # one at a time: never a run
                scattered.update(torch.tensor([i]), torch.tensor([v], dtype=torch.float64))
            assert torch.equal(sliced._tree, scattered._tree), (cls.__name__, start, length)
        not_a_run = torch.tensor([1, 2, 4]) % capacity
        sliced.update(not_a_run, torch.ones(3))
        for i in not_a_run.tolist():
            scattered.update(torch.tensor([i]), torch.ones(1))
        assert torch.equal(sliced._tree, scattered._tree)
