"""The buffer benchmark runs (tiny sizes, rlkernel side only, in this process)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import bench_buffers


def test_quick_benchmark_runs_and_reports(capsys):
    result = bench_buffers.main(["--quick", "--no-torchrl", "--in-process"])
    ours = result["rlkernel"]
    assert {"fill", "sample", "prioritized[torch]", "plain_fill", "plain_sample"} <= set(ours)
    assert all(value > 0 for value in ours.values())
    assert result["torchrl"] == bench_buffers.REFERENCE
    assert result["ratios"]["fill"] > 0
    out = capsys.readouterr().out
    assert "fill (transitions/s)" in out and "reference figures" in out
