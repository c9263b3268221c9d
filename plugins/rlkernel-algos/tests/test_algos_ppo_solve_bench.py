"""benchmarks/bench_ppo_solve.py: the recipe stops at the target, the records are complete (timings not asserted)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def load_bench():
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module("benchmarks.bench_ppo_solve")


def test_quick_run_of_our_side_stops_at_the_target_and_quotes_the_references(tmp_path):
    pytest.importorskip("rlkernel_gym")  # the benchmark is PPO on gymnasium's CartPole-v1, as the references run it
    bench = load_bench()
    result = bench.main(["--quick", "--torchrl-python", str(tmp_path / "missing-python")])
    (record,) = result["runs"]["rlkernel"]
    assert record["reached"] and record["final_mean_return"] >= result["target"] == 60.0
    assert 0 < record["frames"] < result["max_frames"] and record["frames"] % 256 == 0
    assert result["torchrl_source"] == result["sb3_source"] == "quoted, not measured"
    assert result["speedup_vs_sb3"] == pytest.approx(bench.QUOTED_SECONDS["sb3"] / result["rlkernel_median_s"])


@pytest.mark.skipif(not Path(load_bench().torchrl_python()).exists(), reason="no reference venv on this machine")
@pytest.mark.parametrize("side", ["torchrl", "sb3"])
def test_reference_scripts_stop_at_the_same_criterion(side):
    bench = load_bench()
    record = bench.run_side(side, bench.torchrl_python(), seed=0, target=60.0, max_frames=20_000)
    assert "error" not in record, record.get("error")
    assert record["library"] == side and record["reached"] and record["final_mean_return"] >= 60.0
    assert 0 < record["frames"] < 20_000
