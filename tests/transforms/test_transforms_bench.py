"""The transforms benchmark runs (tiny sizes, rlkernel side only) and reports its numbers."""

from __future__ import annotations

from benchmarks.bench_transforms import main


def test_quick_run_reports_steps_and_overhead() -> None:
    result = main(["--quick", "--skip-torchrl"])
    ours = result["rlkernel"]
    assert result["steps"] == 200 and ours["bare_steps_per_s"] > 0 and ours["transformed_steps_per_s"] > 0
    assert "overhead_us" in ours and "torchrl" not in result
