"""benchmarks/bench_gym.py runs and reports its ratios (numbers are not asserted)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_bench_gym_quick_reports_every_comparison() -> None:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    bench = importlib.import_module("benchmarks.bench_gym")
    result = bench.main(["--quick"])
    for name in ("single", "vector"):
        entry = result[name]
        assert entry["rlkernel_steps_per_s"] > 0 and entry["gymnasium_steps_per_s"] > 0
        assert entry["ratio"] > 0 and entry["bar"] in (0.25, 0.5)
    assert result["vector"]["num_envs"] == 8
    assert result["policy"]["ratio"] > 0
