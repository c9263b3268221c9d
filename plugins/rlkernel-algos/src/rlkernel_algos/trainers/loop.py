""":class:`TrainingLoop`: the bookkeeping around a training loop that the recipe writes out itself.

A recipe shows its algorithm as plain code, as CleanRL's files do; the loop object only
counts frames, tracks episode returns, shows the progress bar, logs, checkpoints, resumes
and stops early::

    loop = TrainingLoop(collector, total_frames=100_000, state={"loss": loss, "optimizer": optimizer},
                        logger=CSVLogger("run"), checkpoint_dir="run/checkpoints", seed=0)
    for batch in loop:                       # resumes from the newest checkpoint first
        ...                                  # advantages, epochs, minibatches: the algorithm
        optimizer.step()
        loop.record_update(terms, grad_norm=norm)   # one optimiser step's losses, averaged per log
    metrics = loop.final_metrics()

Between two batches (when the body of the ``for`` is done) the loop logs every
``log_interval`` frames, checkpoints every ``checkpoint_interval`` frames and stops once the
mean return of the last ``window`` episodes reaches ``stop_at_return``.

**Exact resume.** A checkpoint holds ``state`` (every object with ``state_dict`` and
``load_state_dict``: networks, losses with their target networks, optimisers, replay
buffers, exploration modules), the collector, the environment's transform state, the
return tracker, the counters and the random generators of torch, numpy and Python. A
checkpoint is an episode boundary: after writing it the loop re-seeds the environment with
``seed + frames`` and resets the collector, and a resumed run does the same, so the
uninterrupted run and the resumed one continue identically.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase

from rlkernel_algos.trainers.checkpoint import (
    checkpoint_path,
    get_rng_state,
    latest_checkpoint,
    load_checkpoint_file,
    save_checkpoint_file,
    set_rng_state,
)
from rlkernel_algos.trainers.hooks import TrainerError
from rlkernel_algos.trainers.progress import ProgressBar
from rlkernel_algos.trainers.returns import EpisodeReturnTracker

__all__ = ["MIN_LOGS", "TrainingLoop"]

_VERSION = 1
#: The fewest times a run logs its metrics (so a short run still draws a curve).
MIN_LOGS = 20
_RESERVED = ("collector", "env", "returns")


def _positive(name: str, value: Any, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TrainerError(f"TrainingLoop: {name} must be a positive int{' or None' if allow_none else ''}, "
                           f"got {value!r}")
    return value


class TrainingLoop:
    """Iterate over a collector's batches with logging, checkpoints, progress and early stopping.

    Args:
        collector: an rlkernel collector (iterable of batches, ``state_dict``, ``reset``).
        total_frames: stop after this many frames.
        state: what a checkpoint saves besides the collector and its environment: a mapping
            of names to objects with ``state_dict()`` and ``load_state_dict()``.
        logger: an :mod:`rlkernel_algos.loggers` logger (``None``: no logging).
        log_interval: log every this many frames, at least ``MIN_LOGS`` times per run, and
            at the end.
        checkpoint_dir: where checkpoints go (``None``: none are written and nothing resumes).
        checkpoint_interval: checkpoint every this many frames (and at the end).
        keep_checkpoints: how many of the newest checkpoints to keep.
        seed: the run's seed (the environment is re-seeded with ``seed + frames`` at checkpoints).
        progress_bar: show frames, frames/s and the recent return.
        stop_at_return: stop once the mean return of the last ``return_window`` episodes
            reaches this; ``None``: train for ``total_frames``.
        return_window: how many recent episodes the mean return covers.
        resume: load the newest checkpoint of ``checkpoint_dir`` (if any) when the iteration
            starts; ``False`` leaves it to :meth:`load_checkpoint`.
    """

    def __init__(
        self,
        collector: Any,
        *,
        total_frames: int,
        state: Mapping[str, Any] | None = None,
        logger: Any = None,
        log_interval: int = 10_000,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        checkpoint_interval: int | None = None,
        keep_checkpoints: int = 2,
        seed: int = 0,
        progress_bar: bool = True,
        stop_at_return: float | None = None,
        return_window: int = 20,
        resume: bool = True,
    ) -> None:
        self.collector = collector
        self.total_frames = _positive("total_frames", total_frames)
        self.state: dict[str, Any] = {}
        for name, obj in (state or {}).items():
            self.add_state(name, obj)
        if stop_at_return is not None and (
            isinstance(stop_at_return, bool) or not isinstance(stop_at_return, (int, float))
            or not math.isfinite(stop_at_return)
        ):
            raise TrainerError(f"TrainingLoop: stop_at_return must be a finite number or None, got {stop_at_return!r}")
        self.logger = logger
        self.log_interval = min(_positive("log_interval", log_interval), max(1, self.total_frames // MIN_LOGS))
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_interval = _positive("checkpoint_interval", checkpoint_interval, allow_none=True)
        self.keep_checkpoints = _positive("keep_checkpoints", keep_checkpoints)
        self.seed = int(seed)
        self.progress_bar = progress_bar
        self.stop_at_return = None if stop_at_return is None else float(stop_at_return)
        self.returns = EpisodeReturnTracker(_positive("return_window", return_window))
        self.resume = bool(resume)
        self.frames = 0
        """Frames collected so far, the current batch included."""
        self.batch_frames = 0
        """Frames of the current batch (``frames - batch_frames`` were collected before it)."""
        self.session_frames = 0
        """Frames collected by this process (0 when a resumed run had nothing left to do)."""
        self.optim_steps = 0
        self.reached_target = False
        self.elapsed = 0.0
        self.fps = 0.0
        self._sums: dict[str, torch.Tensor | float] = {}
        self._counts: dict[str, int] = {}
        self._logged = 0
        self._checkpointed = 0

    def add_state(self, name: str, obj: Any) -> None:
        """Save ``obj`` (with ``state_dict`` and ``load_state_dict``) in checkpoints under ``name``."""
        if name in _RESERVED:
            raise TrainerError(f"TrainingLoop: the state name {name!r} is reserved ({', '.join(_RESERVED)})")
        if not (callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))):
            raise TrainerError(
                f"TrainingLoop: state[{name!r}] ({type(obj).__name__}) has no state_dict()/load_state_dict()"
            )
        self.state[name] = obj

    # ------------------------------------------------------------------ the loop
    def __iter__(self) -> Iterator[TensorDictBase]:
        """Resume from the newest checkpoint, then yield batches until ``total_frames`` (or the target)."""
        if self.resume and self.checkpoint_dir is not None:
            found = latest_checkpoint(self.checkpoint_dir)
            if found is not None:
                self.load_checkpoint(found)
        bar = ProgressBar(self.total_frames, initial=self.frames, enabled=self.progress_bar)
        start, start_frames, before = time.perf_counter(), self.frames, self.elapsed
        iterator = iter(self.collector)
        try:
            while self.frames < self.total_frames:
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                self.batch_frames = batch.numel()
                self.frames += self.batch_frames
                self.session_frames += self.batch_frames
                self.returns.update(batch)
                yield batch
                session = time.perf_counter() - start
                self.elapsed = before + session
                self.fps = (self.frames - start_frames) / max(session, 1e-9)
                bar.update(self.batch_frames, self.fps, self.returns.mean_return)
                if self.frames - self._logged >= self.log_interval:
                    self.log()
                if self._stop_return_met():
                    self.reached_target = True
                    break
                if (self.checkpoint_dir is not None and self.checkpoint_interval is not None
                        and self.frames - self._checkpointed >= self.checkpoint_interval
                        and self.frames < self.total_frames):
                    self.save_checkpoint()
            if self._logged != self.frames:
                self.log()
            if self.checkpoint_dir is not None and self._checkpointed != self.frames:
                self.save_checkpoint()
        finally:
            bar.close()

    @property
    def done_fraction(self) -> float:
        """The fraction of ``total_frames`` collected before the current batch (for annealing)."""
        return (self.frames - self.batch_frames) / self.total_frames

    def _stop_return_met(self) -> bool:
        mean = self.returns.mean_return
        return (self.stop_at_return is not None and len(self.returns.returns) >= self.returns.window
                and mean is not None and mean >= self.stop_at_return)

    # ------------------------------------------------------------------ metrics
    def record(self, values: Mapping[str, Any] | None = None, **more: Any) -> None:
        """Add scalar values (tensors or numbers) to the next log line, averaged over the calls."""
        for source in ({} if values is None else values, more):
            for key, value in source.items():
                if isinstance(value, torch.Tensor):
                    if value.numel() != 1:
                        continue
                    value = value.detach().reshape(())
                self._sums[key] = self._sums.get(key, 0.0) + value
                self._counts[key] = self._counts.get(key, 0) + 1

    def record_update(self, values: Mapping[str, Any] | None = None, **more: Any) -> None:
        """:meth:`record` one optimiser step's values (its loss terms, ``grad_norm``) and count the step."""
        self.optim_steps += 1
        self.record(values, **more)

    def current_metrics(self) -> dict[str, float]:
        """What the next log line holds: the recent return, the recorded means, the counters and the speed."""
        out: dict[str, float] = {}
        if self.returns.mean_return is not None:
            out["return"] = self.returns.mean_return
        if self.returns.mean_length is not None:
            out["episode_length"] = self.returns.mean_length
        out["episodes"] = float(self.returns.episodes)
        out.update({key: float(total) / self._counts[key] for key, total in self._sums.items()})
        out["optim_steps"] = float(self.optim_steps)
        out["fps"] = self.fps
        out["wall_time_s"] = self.elapsed
        return out

    def log(self) -> None:
        """Write :meth:`current_metrics` at the current frame count, then start a new line."""
        metrics = self.current_metrics()
        self._sums, self._counts, self._logged = {}, {}, self.frames
        if self.logger is None:
            return
        for name, value in metrics.items():
            self.logger.log_scalar(name, value, step=self.frames)
        if callable(getattr(self.logger, "flush", None)):
            self.logger.flush()  # each line reaches the file: a crash loses nothing logged

    def final_metrics(self) -> dict[str, float]:
        """Frames, optimiser steps, wall time, speed and the recent return."""
        out = {"frames": float(self.frames), "optim_steps": float(self.optim_steps), "wall_time_s": self.elapsed,
               "episodes": float(self.returns.episodes), "fps": self.fps}
        if self.returns.mean_return is not None:
            out["return"] = self.returns.mean_return
        if self.stop_at_return is not None:
            out["reached_target"] = float(self.reached_target)
        return out

    # ------------------------------------------------------------------ checkpoints
    def _env(self) -> Any:
        return getattr(self.collector, "env", None)

    def _restart_episodes(self, env_seed: int) -> None:
        env = self._env()
        if env is not None and callable(getattr(env, "set_seed", None)):
            env.set_seed(env_seed)
        if callable(getattr(self.collector, "reset", None)):
            self.collector.reset()
        self.returns.drop_unfinished()  # the episodes in progress were cut short

    def save_checkpoint(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write a checkpoint (default ``checkpoint_dir/checkpoint-<frames>.pt``) and restart the episodes."""
        default = path is None
        if path is None:
            if self.checkpoint_dir is None:
                raise TrainerError("save_checkpoint: give a path (the loop has no checkpoint_dir)")
            path = checkpoint_path(self.checkpoint_dir, self.frames)
        env = self._env()
        state = {
            "version": _VERSION,
            "kind": "loop",
            "counters": {"frames": self.frames, "optim_steps": self.optim_steps, "logged": self._logged,
                         "elapsed": self.elapsed},
            "state": {name: obj.state_dict() for name, obj in self.state.items()},
            "collector": self.collector.state_dict(),
            "env": env.state_dict() if env is not None and callable(getattr(env, "state_dict", None)) else None,
            "returns": self.returns.state_dict(),
        }
        env_seed = (self.seed + self.frames) % 2**31
        self._restart_episodes(env_seed)
        state["env_seed"] = env_seed
        state["rng"] = get_rng_state()
        written = save_checkpoint_file(state, path)
        self._checkpointed = self.frames
        if default:
            for old in sorted(self.checkpoint_dir.glob("checkpoint-*.pt"))[: -self.keep_checkpoints]:
                old.unlink(missing_ok=True)
        return written

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` (a file, or a folder: its newest)."""
        saved = load_checkpoint_file(path)
        if saved.get("kind") != "loop" or saved.get("version") != _VERSION:
            raise TrainerError(f"checkpoint {path} was not written by a TrainingLoop (version {_VERSION})")
        names, expected = set(saved["state"]), set(self.state)
        if names != expected:
            raise TrainerError(
                f"checkpoint {path} holds state {sorted(names)} but this loop saves {sorted(expected)}: the run "
                f"was made by another recipe or version; give a new run directory"
            )
        for name, obj in self.state.items():
            obj.load_state_dict(saved["state"][name])
        self.collector.load_state_dict(saved["collector"])
        env = self._env()
        if saved["env"] is not None and env is not None:
            env.load_state_dict(saved["env"])
        self.returns.load_state_dict(saved["returns"])
        counters = saved["counters"]
        self.frames, self.optim_steps = int(counters["frames"]), int(counters["optim_steps"])
        self._logged, self.elapsed = int(counters["logged"]), float(counters["elapsed"])
        self._checkpointed = self.frames
        self._sums, self._counts = {}, {}
        self._restart_episodes(int(saved["env_seed"]))
        set_rng_state(saved["rng"])
