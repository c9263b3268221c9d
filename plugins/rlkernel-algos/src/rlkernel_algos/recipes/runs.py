"""What every recipe does around its training loop: the run directory and the trained policy.

A recipe's ``train`` reads::

    with RunDir(run_dir, "ppo", config) as run:         # config.json, metrics.csv, checkpoints/
        env = run.closing(make_env(...))                 # closed when the block ends, whatever happens
        collector = run.closing(SyncDataCollector(env, policy, ...))
        loop = run.loop(collector, config, state={"loss": loss, "optimizer": optimizer})
        for batch in loop:                               # resumes from checkpoints/ first
            ...                                          # the algorithm, written out
        return run.finish(loop, policy=actor, env=env)  # policy.pt, learning_curve.png, summary.json

A run directory (``runs/<algo>-<env>-<seed>-<timestamp>/``) holds::

    config.json          {"algo": ..., "config": {...}}: everything needed to rebuild the run
    metrics.csv          step,name,value rows written by the CSV logger
    checkpoints/         the trainer's checkpoints (a run restarted in this folder resumes)
    policy.pt            the trained policy's weights and the env's transform statistics
    learning_curve.png   the training return against frames
    summary.json         the final metrics of ``train``
    eval.json            written by ``rlkernel eval``
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlkernel.envs import EnvBase
from rlkernel_algos.loggers.csv_logger import CSVLogger
from rlkernel_algos.recipes.config import ConfigError, config_from_dict, read_config, write_config
from rlkernel_algos.recipes.plotting import plot_learning_curve
from rlkernel_algos.trainers import Trainer, TrainingLoop, seed_everything

__all__ = ["RunDir", "TrainedPolicy", "completed_summary", "default_run_dir", "prepare_process"]

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
POLICY_FILE = "policy.pt"
CURVE_FILE = "learning_curve.png"
SUMMARY_FILE = "summary.json"


def default_run_dir(algo: str, env: str, seed: int, root: str | os.PathLike[str] = "runs") -> Path:
    """``root/<algo>-<env>-<seed>-<YYYYmmdd-HHMMSS>`` (``:`` and ``/`` in the env name become ``_``);
    a numeric suffix keeps it unique."""
    safe_env = re.sub(r"[^A-Za-z0-9._-]+", "_", env)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{algo}-{safe_env}-{seed}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def prepare_process(seed: int, num_threads: int) -> None:
    """Seed torch, numpy and ``random`` and set torch's thread count (recipes default to 1)."""
    torch.set_num_threads(num_threads)
    seed_everything(seed)


class RunDir:
    """A run directory: writes the config, owns the CSV logger, runs the trainer, saves results.

    Args:
        path: the folder (created if needed).
        algo: the recipe's name (saved in ``config.json``).
        config: the recipe's config dataclass.
    """

    def __init__(self, path: str | os.PathLike[str], algo: str, config: Any) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.algo = algo
        self.config = config
        write_config(self.path / CONFIG_FILE, algo, config)
        self.checkpoints = self.path / "checkpoints"
        self.logger = CSVLogger(self.path, METRICS_FILE)
        self.logger.log_hparams({"algo": algo, **json.loads((self.path / CONFIG_FILE).read_text())["config"]})
        self._open: list[Any] = []

    # ------------------------------------------------------------------ resources
    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def closing(self, resource: Any) -> Any:
        """Close ``resource`` (``shutdown()`` or ``close()``) when the run ends; return it."""
        self._open.append(resource)
        return resource

    def close(self) -> None:
        """Close what :meth:`closing` registered (newest first) and the logger; idempotent."""
        while self._open:
            resource = self._open.pop()
            stop = getattr(resource, "shutdown", None) or getattr(resource, "close", None)
            if callable(stop):
                stop()
        self.logger.close()

    # ------------------------------------------------------------------ the loop
    def loop(self, collector: Any, config: Any, *, state: dict[str, Any]) -> TrainingLoop:
        """A :class:`~rlkernel_algos.trainers.TrainingLoop` over ``collector`` that logs into this run
        and checkpoints ``state`` into ``checkpoints/``, with the config's ``total_frames`` (rounded
        to the collector's batches), ``seed``, ``log_interval``, ``checkpoint_interval``,
        ``progress_bar`` and ``stop_at_return``."""
        return TrainingLoop(
            collector, total_frames=collector.total_frames, state=state, logger=self.logger,
            log_interval=config.log_interval, checkpoint_dir=self.checkpoints,
            checkpoint_interval=config.checkpoint_interval, seed=config.seed, progress_bar=config.progress_bar,
            stop_at_return=config.stop_at_return,
        )

    def finish(self, loop: TrainingLoop, *, policy: torch.nn.Module, env: EnvBase) -> dict[str, float]:
        """Save the policy (with the env's transform statistics), the learning curve and ``summary.json``;
        return the final metrics. A run that was already complete is left as it is (its summary is returned)."""
        done = completed_summary(self.path, loop.total_frames)
        if done is not None and loop.session_frames == 0:
            self.close()
            return done
        self._save_policy(policy, env)
        self.close()
        return self._save_results(loop.final_metrics())

    def _save_policy(self, policy: torch.nn.Module, env: EnvBase) -> None:
        torch.save({"policy": policy.state_dict(), "env": env.state_dict()}, self.path / POLICY_FILE)

    def _save_results(self, metrics: dict[str, float]) -> dict[str, float]:
        plot_learning_curve(self.path / METRICS_FILE, self.path / CURVE_FILE, title=f"{self.algo} on {self.config.env}")
        (self.path / SUMMARY_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
        return metrics

    def train(self, trainer: Trainer, *, policy: torch.nn.Module, env: EnvBase) -> dict[str, float]:
        """Run a :class:`~rlkernel_algos.trainers.Trainer` instead of a written-out loop: resume from
        ``checkpoints/``, train, then save as :meth:`finish` does, and close ``env``.

        A run that is already complete (its checkpoint holds ``total_frames`` frames and its
        ``summary.json`` exists) is left as it is: its summary is returned unchanged.
        """
        try:
            trainer.resume()
            done = completed_summary(self.path, trainer.total_frames)
            if done is not None and trainer.collected_frames >= trainer.total_frames:
                return done
            metrics = trainer.train()
            self._save_policy(policy, env)
        finally:
            trainer.collector.shutdown()
            self.logger.close()
            env.close()
        return self._save_results(metrics)


def completed_summary(run_dir: str | os.PathLike[str], total_frames: int) -> dict[str, float] | None:
    """The ``summary.json`` of ``run_dir`` if that run finished at least ``total_frames`` frames, else None."""
    summary_file = Path(run_dir) / SUMMARY_FILE
    if not summary_file.is_file():
        return None
    summary = json.loads(summary_file.read_text())
    return summary if summary.get("frames", 0) >= total_frames else None


@dataclass
class TrainedPolicy:
    """A trained policy and how to make the environment it acts in.

    Attributes:
        policy: the policy module (weights loaded; act deterministically under
            ``set_exploration_type(DETERMINISTIC)``).
        make_env: builds an evaluation environment (``num_envs=None`` for a single one)
            carrying the training env's transform statistics.
        config: the run's config.
    """

    policy: torch.nn.Module
    make_env: Callable[..., EnvBase]
    config: Any

    @classmethod
    def load(
        cls,
        run_dir: str | os.PathLike[str],
        config_cls: type,
        build: Callable[[Any, EnvBase], torch.nn.Module],
        make_env: Callable[..., EnvBase],
    ) -> TrainedPolicy:
        """Rebuild a recipe's policy from ``run_dir``.

        ``build(config, env)`` makes the (untrained) policy; ``make_env(config, num_envs=...)``
        the environment. The weights and the env statistics come from ``policy.pt``.
        """
        folder = Path(run_dir)
        _, raw = read_config(folder / CONFIG_FILE)
        config = config_from_dict(config_cls, raw)
        saved_file = folder / POLICY_FILE
        if not saved_file.is_file():
            raise ConfigError(f"{folder} has no {POLICY_FILE}: the run did not finish training")
        saved = torch.load(saved_file, map_location="cpu", weights_only=True)
        probe = make_env(config, num_envs=None)
        try:
            policy = build(config, probe)
            policy.load_state_dict(saved["policy"])
        finally:
            probe.close()

        def make_eval_env(num_envs: int | None = None) -> EnvBase:
            env = make_env(config, num_envs=num_envs)
            if saved["env"]:
                env.load_state_dict(saved["env"])
            if callable(getattr(env, "eval", None)):
                env.eval()
            return env

        return cls(policy=policy.eval(), make_env=make_eval_env, config=config)
