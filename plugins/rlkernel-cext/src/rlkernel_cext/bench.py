"""Micro-benchmark: one prioritized-replay step on a large sum tree.

``python -m rlkernel_cext.bench [--capacity N] [--batch K] [--repeat R]`` times
``update(K)`` followed by ``find_prefixsum(K)`` (the work of one sampling step) on a tree
of capacity N (10**6 by default) for:

* ``sum_tree:cpp``: this plugin's C++ tree;
* ``numpy tree``: the same canonical flat tree in numpy, one vectorised step per level;
* ``numpy O(n)``: leaves in an array, ``cumsum`` + ``searchsorted`` on every step;
* every other ``sum_tree:*`` kernel registered with rlkernel (the core's pure-torch one).

It prints the mean time per step. It is a measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch


class NumpySumTree:
    """The canonical flat sum tree (see :mod:`rlkernel_cext.trees`) in numpy."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.leaves = 1 << (capacity - 1).bit_length()
        self.tree = np.zeros(2 * self.leaves)

    def update(self, index: np.ndarray, value: np.ndarray) -> None:
        self.tree[self.leaves + index] = value
        nodes = np.unique((self.leaves + index) >> 1)
        while nodes.size:
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]
            nodes = np.unique(nodes[nodes > 1] >> 1)

    def find_prefixsum(self, mass: np.ndarray) -> np.ndarray:
        node = np.ones(mass.shape[0], dtype=np.int64)
        rest = mass.copy()
        for _ in range(self.leaves.bit_length() - 1):
            left = self.tree[2 * node]
            right = rest >= left
            rest = np.where(right, rest - left, rest)
            node = 2 * node + right
        nonzero = np.flatnonzero(self.tree[self.leaves : self.leaves + self.capacity])
        return np.minimum(node - self.leaves, nonzero[-1] if nonzero.size else 0)


class NumpyLinear:
    """Leaves in an array; each search recomputes the cumulative sum (O(n))."""

    def __init__(self, capacity: int) -> None:
        self.leaves = np.zeros(capacity)

    def update(self, index: np.ndarray, value: np.ndarray) -> None:
        self.leaves[index] = value

    def find_prefixsum(self, mass: np.ndarray) -> np.ndarray:
        cumulative = np.cumsum(self.leaves)
        return np.minimum(np.searchsorted(cumulative, mass, side="right"), self.leaves.shape[0] - 1)


def _time(step: Callable[[int], object], repeat: int) -> float:
    """Mean seconds per call of ``step(i)``, after a few warm-up calls."""
    for i in range(3):
        step(i)
    start = time.perf_counter()
    for i in range(repeat):
        step(i)
    return (time.perf_counter() - start) / repeat


def run(capacity: int, batch: int, repeat: int, seed: int = 0) -> dict[str, float]:
    """Seconds per update(batch) + find_prefixsum(batch) step, by implementation."""
    rng = np.random.default_rng(seed)
    rounds = max(repeat, 1) + 3
    index = rng.integers(0, capacity, size=(rounds, batch))
    value = rng.random((rounds, batch)) + 0.01
    fill = rng.random(capacity) + 0.01
    mass_fraction = rng.random((rounds, batch))
    results: dict[str, float] = {}

    def torch_step(tree: object) -> Callable[[int], object]:
        t_index, t_value = torch.from_numpy(index), torch.from_numpy(value)
        t_fraction = torch.from_numpy(mass_fraction)

        def step(i: int) -> object:
            tree.update(t_index[i], t_value[i])  # type: ignore[attr-defined]
            return tree.find_prefixsum(t_fraction[i] * tree.total())  # type: ignore[attr-defined]

        return step

    import rlkernel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = sorted(n for n in rlkernel.registry.kernels.names() if n.startswith("sum_tree:"))
    for name in names:
        try:
            tree = rlkernel.registry.kernels.make(name, capacity, dtype=torch.float64)
            tree.update(torch.arange(capacity), torch.from_numpy(fill))
        except Exception as err:  # a benchmark reports a broken kernel, it does not fail
            print(f"skipping {name}: {type(err).__name__}: {err}")
            continue
        results[name] = _time(torch_step(tree), repeat)

    for label, cls in (("numpy tree", NumpySumTree), ("numpy O(n)", NumpyLinear)):
        ref = cls(capacity)
        ref.update(np.arange(capacity), fill)
        total = fill.sum()

        def numpy_step(i: int, ref: NumpySumTree | NumpyLinear = ref, total: float = total) -> object:
            ref.update(index[i], value[i])
            return ref.find_prefixsum(mass_fraction[i] * total)

        results[label] = _time(numpy_step, max(1, repeat // 10) if label == "numpy O(n)" else repeat)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: run the benchmark and print a small table."""
    parser = argparse.ArgumentParser(prog="python -m rlkernel_cext.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = run(args.capacity, args.batch, args.repeat)
    print(f"update({args.batch}) + find_prefixsum({args.batch}), capacity {args.capacity}, float64:")
    fastest = min(results.values())
    for name, seconds in sorted(results.items(), key=lambda item: item[1]):
        print(f"  {name:<20} {seconds * 1e6:>10.1f} us/step   x{seconds / fastest:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
