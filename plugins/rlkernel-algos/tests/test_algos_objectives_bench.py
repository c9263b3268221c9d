"""benchmarks/bench_updates.py runs, and both sides of each comparison compute the same losses.

Timings are not asserted (they depend on the machine); the benchmark reports them.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[3]


def load_bench():
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module("benchmarks.bench_updates")


def test_bench_updates_quick_compares_identical_computations():
    threads = torch.get_num_threads()
    try:
        result = load_bench().main(["--quick"])  # sets one intra-op thread, as benchmarks do
    finally:
        torch.set_num_threads(threads)
    for part in ("sac_update", "ppo_minibatch_update"):
        numbers = result[part]
        assert numbers["max_loss_difference"] < 1e-5, part
        assert numbers["plain_ms"] > 0 and numbers["rlkernel_ms"] > 0
        assert numbers["rlkernel_over_plain"] > 0 and numbers["bar"] == 1.15
    assert set(result["twin_critics"]) >= {"loop_ms", "vmap_ms", "bmm_ms"}
