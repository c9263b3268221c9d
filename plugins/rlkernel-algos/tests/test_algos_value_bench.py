"""benchmarks/bench_gae.py runs, compares the same advantages, reports ratios (timings are not asserted)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def load_bench():
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module("benchmarks.bench_gae")


def test_bench_gae_quick_without_torchrl_quotes_the_reference(tmp_path):
    bench = load_bench()
    result = bench.main(["--quick", "--torchrl-python", str(tmp_path / "missing-python")])
    assert result["shape"] == [4, 128, 1]
    assert result["ours_ms"] > 0 and result["numpy_loop_ms"] > 0
    assert result["torchrl_source"] == "quoted, not measured" and result["torchrl_ms"] == bench.TORCHRL_QUOTED_MS
    assert result["max_abs_diff_ours_vs_float64"] < 1e-4
    assert result["max_abs_diff_numpy_loop_vs_float64"] < 1e-4


@pytest.mark.skipif(not Path(load_bench().TORCHRL_PYTHON).exists(), reason="no TorchRL venv on this machine")
def test_bench_gae_quick_against_torchrl_agrees():
    result = load_bench().main(["--quick"])
    assert result["torchrl_source"].startswith("measured")
    assert result["max_abs_diff_ours_vs_torchrl"] < 1e-4
