"""DistributedDataCollector under a real ``torchrun --nproc_per_node=3 --standalone`` (gloo, CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("distributed_cartpole.py")


def test_torchrun_learner_receives_exact_frames_and_pushes_weights(tmp_path):
    out = tmp_path / "report.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=3", "--standalone",
        str(SCRIPT), str(out),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=150, env=env, cwd=SCRIPT.parent)
    except subprocess.TimeoutExpired as exc:  # never hang the suite
        pytest.fail(f"torchrun did not finish within 150 s:\n{exc.stdout}\n{exc.stderr}")
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(out.read_text())
    batches = report["batches"]
    assert report["world_size"] == 3 and len(batches) == 4 and report["frames"] == 800
    for batch in batches:
        assert batch["shape"] == [2, 2, 50]  # (collector ranks, env batch, time)
        assert batch["frames_per_rank"] == [100, 100] and batch["ranks"] == [1, 2]
        assert not set(batch["traj_ids"][0]) & set(batch["traj_ids"][1])
    # the learner's start-up weights (always action 0) reached both collector ranks ...
    assert [b["action_mean"] for b in batches[:2]] == [0.0, 0.0]
    # ... and so did the update it pushed after the second batch (always action 1)
    assert [b["action_mean"] for b in batches[2:]] == [1.0, 1.0]
