"""benchmarks/bench_collectors.py runs (tiny sizes, no TorchRL) and reports its numbers.

The benchmark measures the core's collectors on gymnasium's CartPole (through this plugin)
against a hand-written gymnasium loop, so its test lives with the plugin."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_bench_collectors_quick_reports_each_case() -> None:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    bench = importlib.import_module("benchmarks.bench_collectors")
    result = bench.main(["--quick", "--cases", "single,vector"])
    assert result["torchrl"] is False
    for case in ("single", "vector"):
        row = result[case]
        assert row["rlkernel_fps"] > 0 and row["hand_fps"] > 0 and row["vs_hand"] > 0
        assert row["vs_torchrl"] is None
