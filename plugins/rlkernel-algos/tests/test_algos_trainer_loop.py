"""TrainingLoop: the bookkeeping around a recipe's written-out loop (logs, checkpoints, exact resume, stop)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from recipes_smoke import SMOKE

from rlkernel.collectors import SyncDataCollector
from rlkernel.testing import CountingEnv
from rlkernel_algos.loggers.csv_logger import CSVLogger, read_metrics
from rlkernel_algos.recipes import get_recipe
from rlkernel_algos.trainers import TrainerError, TrainingLoop


def counting_collector(total_frames: int = 40, frames_per_batch: int = 8) -> SyncDataCollector:
    env = CountingEnv(max_count=3.0, num_envs=2)
    return SyncDataCollector(env, lambda td: td.set("action", torch.ones(2, 1)), frames_per_batch=frames_per_batch,
                             total_frames=total_frames)


def test_counts_logs_and_checkpoints(tmp_path):
    net = torch.nn.Linear(1, 1)
    logger = CSVLogger(tmp_path, "metrics.csv")
    loop = TrainingLoop(counting_collector(), total_frames=40, state={"net": net}, logger=logger,
                        log_interval=16, checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=16,
                        progress_bar=False)
    seen = []
    for batch in loop:
        seen.append((loop.frames, loop.done_fraction))
        loop.record_update({"loss": torch.tensor(float(loop.frames))})
        loop.record_update(loss=loop.frames + 1.0)
        assert batch.batch_size == torch.Size([2, 4])
    logger.close()
    assert seen == [(8, 0.0), (16, 0.2), (24, 0.4), (32, 0.6), (40, 0.8)]
    metrics = read_metrics(tmp_path / "metrics.csv")
    # log_interval=16 is capped at total_frames / 20: a line per batch, with the mean of its two steps
    assert metrics["loss"] == [(8, 8.5), (16, 16.5), (24, 24.5), (32, 32.5), (40, 40.5)]
    assert metrics["optim_steps"][-1] == (40, 10.0)
    assert metrics["return"][-1] == (40, 3.0)  # every episode of the counting env returns 3
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["checkpoint-000000000032.pt",
                                                                     "checkpoint-000000000040.pt"]


def test_stops_at_the_target_return():
    loop = TrainingLoop(counting_collector(total_frames=400), total_frames=400, progress_bar=False,
                        stop_at_return=3.0, return_window=4)
    for _ in loop:
        pass
    assert loop.reached_target and loop.frames < 400
    assert loop.final_metrics()["reached_target"] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"state": {"net": object()}}, r"state\['net'\] \(object\) has no state_dict\(\)/load_state_dict\(\)"),
        ({"state": {"collector": torch.nn.Linear(1, 1)}}, "the state name 'collector' is reserved"),
        ({"log_interval": 0}, "log_interval must be a positive int, got 0"),
        ({"total_frames": -5}, "total_frames must be a positive int, got -5"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(TrainerError, match=message):
        TrainingLoop(counting_collector(), **{"total_frames": 40, **kwargs})


def test_a_checkpoint_of_other_state_is_refused(tmp_path):
    loop = TrainingLoop(counting_collector(), total_frames=8, state={"net": torch.nn.Linear(1, 1)},
                        checkpoint_dir=tmp_path, progress_bar=False)
    for _ in loop:
        pass
    other = TrainingLoop(counting_collector(), total_frames=16, state={"other": torch.nn.Linear(1, 1)},
                         checkpoint_dir=tmp_path, progress_bar=False)
    with pytest.raises(TrainerError, match=r"holds state \['net'\] but this loop saves \['other'\]"):
        next(iter(other))


@pytest.mark.parametrize("algo", ["ppo", "dqn", "sac"])
def test_a_resumed_recipe_continues_exactly(algo, tmp_path):
    """Three batches in one run == two batches, then a resumed run to three (checkpoints after each batch)."""
    recipe = get_recipe(algo)
    env = "testing:counting"
    if algo == "dqn":
        pytest.importorskip("rlkernel_gym")
        env = "gym:CartPole-v1"
    no_anneal = {"ppo": ["anneal=false"], "dqn": ["anneal_lr=false"]}.get(algo, [])  # the schedule follows total_frames
    base = recipe.make_config(env, [*SMOKE[algo], *no_anneal, "progress_bar=false"])
    batch = base.frames_per_batch if hasattr(base, "frames_per_batch") else base.num_envs * base.steps_per_env
    whole = dataclasses.replace(base, total_frames=3 * batch, checkpoint_interval=batch)
    recipe.train(whole, tmp_path / "whole")
    recipe.train(dataclasses.replace(whole, total_frames=2 * batch), tmp_path / "split")
    recipe.train(whole, tmp_path / "split")
    one, two = (torch.load(tmp_path / run / "policy.pt", weights_only=True)["policy"] for run in ("whole", "split"))
    assert one.keys() == two.keys()
    for key in one:
        assert torch.equal(one[key], two[key]), key
