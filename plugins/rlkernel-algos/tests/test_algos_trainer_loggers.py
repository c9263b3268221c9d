"""Loggers: exact CSV content, TensorBoard events read back, wandb offline runs, the registry."""

from __future__ import annotations

import math

import pytest
import torch

import rlkernel
from rlkernel_algos.loggers.base import LoggerError
from rlkernel_algos.loggers.csv_logger import CSVLogger, read_metrics


def test_csv_content_is_exact(tmp_path):
    with CSVLogger(tmp_path) as logger:
        logger.log_scalar("return", 21.5, step=1000)
        logger.log_scalar("loss_critic", torch.tensor(0.125), step=1000)
        logger.log_scalar("fps", 5, step=2000)
        logger.log_scalar("lr", 3e-4, step=2000)
        logger.log_hparams({"algo": "ppo", "net": {"cells": [64, 64]}, "anneal": True, "clip": None})
    assert (tmp_path / "metrics.csv").read_text() == (
        "step,name,value\n1000,return,21.5\n1000,loss_critic,0.125\n2000,fps,5.0\n2000,lr,0.0003\n"
    )
    assert (tmp_path / "hparams.json").read_text() == (
        '{"algo": "ppo", "net/cells": "[64, 64]", "anneal": true, "clip": null}'
    )


def test_csv_appends_to_an_existing_run_and_reads_back(tmp_path):
    with CSVLogger(tmp_path, "m.csv") as logger:
        logger.log_scalar("return", 1.0, step=1)
    with CSVLogger(tmp_path, "m.csv") as logger:
        logger.log_scalar("return", 2.0, step=2)
        logger.log_scalar("nan", float("nan"), step=2)
    series = read_metrics(tmp_path / "m.csv")
    assert series["return"] == [(1, 1.0), (2, 2.0)]
    assert math.isnan(series["nan"][0][1])
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(LoggerError, match="not a step,name,value metrics file"):
        CSVLogger(tmp_path, "other.csv")


@pytest.mark.parametrize(
    ("name", "value", "step", "message"),
    [
        ("", 1.0, 0, "name must be a non-empty string"),
        ("a,b", 1.0, 0, "without ','"),
        ("x", "high", 0, "value must be a real number, got str"),
        ("x", True, 0, "value must be a real number, got bool"),
        ("x", torch.zeros(3), 0, "value must be a real number, got Tensor"),
        ("x", 1.0, -1, "step must be an int >= 0"),
        ("x", 1.0, 1.5, "step must be an int >= 0"),
    ],
)
def test_bad_scalars_are_logger_errors(tmp_path, name, value, step, message):
    with CSVLogger(tmp_path) as logger, pytest.raises(LoggerError, match=message):
        logger.log_scalar(name, value, step)


def test_closed_csv_logger_refuses_writes(tmp_path):
    logger = CSVLogger(tmp_path)
    logger.close()
    logger.close()  # idempotent
    with pytest.raises(LoggerError, match="is closed"):
        logger.log_scalar("x", 1.0, 0)


def test_tensorboard_events_read_back(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rlkernel_algos.loggers.tensorboard_logger import TensorboardLogger

    with TensorboardLogger(tmp_path) as logger:
        for step in (0, 100, 200):
            logger.log_scalar("return", step / 10, step)
        logger.log_hparams({"lr": 0.001, "algo": "ppo"})
    assert list(tmp_path.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    scalars = events.Scalars("return")
    assert [(e.step, e.value) for e in scalars] == [(0, 0.0), (100, 10.0), (200, 20.0)]


def test_wandb_offline_run_directory(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from rlkernel_algos.loggers.wandb_logger import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger(tmp_path, project="rlkernel-tests", name="smoke")
    logger.log_hparams({"lr": 0.001})
    logger.log_scalar("return", 10.0, 100)
    run_dir = logger.run_dir
    logger.close()
    assert run_dir.parent == tmp_path / "wandb"
    assert run_dir.name.startswith("offline-run-")
    assert list(run_dir.glob("run-*.wandb"))


def test_missing_backend_message(monkeypatch, tmp_path):
    import sys

    from rlkernel_algos.loggers.tensorboard_logger import TensorboardLogger

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(LoggerError, match=r"pip install 'rlkernel-algos\[tensorboard\]'"):
        TensorboardLogger(tmp_path)


def test_loggers_are_registered_by_the_algos_plugin(tmp_path):
    loggers = rlkernel.registry.loggers
    for name in ("csv", "tensorboard", "wandb"):
        entry, _ = loggers.entry(name)
        assert entry.plugin == "algos", name
    logger = loggers.make("csv", tmp_path)
    logger.log_scalar("x", 1.0, 0)
    logger.close()
    assert read_metrics(tmp_path / "metrics.csv") == {"x": [(0, 1.0)]}
