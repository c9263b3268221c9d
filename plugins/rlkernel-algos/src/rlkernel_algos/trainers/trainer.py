"""The :class:`Trainer`: collect, optimise, log, checkpoint; extended through hooks.

>>> trainer = Trainer(collector, loss, torch.optim.Adam(loss.parameters(), 3e-4),  # doctest: +SKIP
...                   total_frames=100_000, optim_steps_per_batch=10, logger=CSVLogger("run"),
...                   checkpoint_dir="run/checkpoints", checkpoint_interval=25_000, seed=0)
>>> ReplayBufferHook(buffer).register(trainer)                                        # doctest: +SKIP
>>> trainer.register_op("post_optim", SoftUpdate(loss, tau=0.005).step)              # doctest: +SKIP
>>> metrics = trainer.train()                                                         # doctest: +SKIP

See :mod:`rlkernel_algos.trainers.hooks` for the hook points and when each runs.

Checkpoints resume a run exactly: see :mod:`rlkernel_algos.trainers.state`.
"""

from __future__ import annotations

import math
import operator
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase

from rlkernel_algos.trainers.checkpoint import seed_everything
from rlkernel_algos.trainers.hooks import HookTable, TrainerError
from rlkernel_algos.trainers.loop import MIN_LOGS
from rlkernel_algos.trainers.progress import ProgressBar
from rlkernel_algos.trainers.returns import EpisodeReturnTracker
from rlkernel_algos.trainers.state import CheckpointMixin

__all__ = ["Trainer"]



def _count(name: str, value: Any, *, allow_none: bool = False, allow_zero: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        raise TrainerError(f"Trainer: {name} must be an int, got the bool {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TrainerError(f"Trainer: {name} must be an int, got {type(value).__name__} {value!r}") from None
    if number < 0 or (number == 0 and not allow_zero):
        raise TrainerError(f"Trainer: {name} must be {'>= 0' if allow_zero else '> 0'}, got {number}")
    return number


def _is_loss_term(key: Any) -> bool:
    return isinstance(key, str) and (key == "loss" or key.startswith("loss_"))


class Trainer(CheckpointMixin):
    """Train ``loss_module`` on batches from ``collector`` with ``optimizer``.

    Args:
        collector: an rlkernel collector (iterable of batches; ``state_dict``,
            ``load_state_dict``, ``update_policy_weights_``, and ``env``/``reset`` for exact
            resume).
        loss_module: a loss returning a TensorDict; the terms named ``loss`` or ``loss_*``
            are summed and minimised, every other scalar is logged.
        optimizer: a ``torch.optim`` optimiser over the parameters to train.

    Keyword Args:
        total_frames: stop after this many frames (default: the collector's ``total_frames``).
        frames_per_batch: checked against the collector's (optional).
        optim_steps_per_batch: optimisation steps after each collected batch.
        optim_start_frames: no optimisation before this many frames were collected (the
            random warm-up of off-policy methods).
        clip_grad_norm: clip the global gradient norm (``None``: no clipping; the norm is
            then not computed).
        lr_scheduler: a ``torch.optim.lr_scheduler`` stepped once per batch (after its
            optimisation steps).
        logger: an :mod:`rlkernel_algos.loggers` logger (``None``: no logging).
        log_interval: log every this many frames, and at least every ``total_frames / 20``
            (a short run still draws a learning curve), and at the end.
        checkpoint_dir: where checkpoints go (``None``: none are written).
        checkpoint_interval: checkpoint every this many frames (and at the end); ``None``:
            only at the end.
        keep_checkpoints: how many of the newest checkpoints to keep.
        progress_bar: show a tqdm bar with frames/s and the recent return.
        seed: seeds torch, numpy and ``random`` now (seed the networks' initialisation
            before building them), and the environment re-seeding at checkpoints.
        return_window: the recent return is the mean of this many last episodes.
        stop_at_return: stop early, after the batch in which the mean return of the last
            ``return_window`` finished episodes (at least that many have finished) reaches
            this value; ``None``: train for ``total_frames``. ``reached_target`` says whether
            it happened, and the final metrics hold ``reached_target`` (0 or 1).
    """

    def __init__(
        self,
        collector: Any,
        loss_module: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        total_frames: int | None = None,
        frames_per_batch: int | None = None,
        optim_steps_per_batch: int = 1,
        optim_start_frames: int = 0,
        clip_grad_norm: float | None = None,
        lr_scheduler: Any = None,
        logger: Any = None,
        log_interval: int = 10_000,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        checkpoint_interval: int | None = None,
        keep_checkpoints: int = 2,
        progress_bar: bool = True,
        seed: int | None = None,
        return_window: int = 20,
        stop_at_return: float | None = None,
    ) -> None:
        if not isinstance(loss_module, torch.nn.Module):
            raise TrainerError(f"Trainer: loss_module must be a torch.nn.Module, got {type(loss_module).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TrainerError(f"Trainer: optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if not (hasattr(collector, "__iter__") and callable(getattr(collector, "state_dict", None))):
            raise TrainerError(
                f"Trainer: collector must be an rlkernel collector (iterable, with state_dict), "
                f"got {type(collector).__name__}"
            )
        collector_total = getattr(collector, "total_frames", -1)
        if total_frames is None:
            if collector_total is None or collector_total < 0:
                raise TrainerError("Trainer: give total_frames (the collector runs without end)")
            total_frames = collector_total
        self.total_frames = _count("total_frames", total_frames)
        if collector_total is not None and 0 <= collector_total < self.total_frames:
            raise TrainerError(
                f"Trainer: total_frames={self.total_frames} is more than the collector's total_frames={collector_total}"
            )
        collector_batch = getattr(collector, "frames_per_batch", None)
        if frames_per_batch is not None and collector_batch is not None and frames_per_batch != collector_batch:
            raise TrainerError(
                f"Trainer: frames_per_batch={frames_per_batch} but the collector makes batches of {collector_batch}"
            )
        self.frames_per_batch = frames_per_batch if frames_per_batch is not None else collector_batch
        self.optim_steps_per_batch = _count("optim_steps_per_batch", optim_steps_per_batch, allow_zero=True)
        self.optim_start_frames = _count("optim_start_frames", optim_start_frames, allow_zero=True)
        if clip_grad_norm is not None and not float(clip_grad_norm) > 0:
            raise TrainerError(f"Trainer: clip_grad_norm must be > 0 or None, got {clip_grad_norm!r}")
        self.clip_grad_norm = None if clip_grad_norm is None else float(clip_grad_norm)
        self.log_interval = min(_count("log_interval", log_interval), max(1, self.total_frames // MIN_LOGS))
        self.checkpoint_interval = _count("checkpoint_interval", checkpoint_interval, allow_none=True)
        self.keep_checkpoints = _count("keep_checkpoints", keep_checkpoints)
        if logger is not None and not callable(getattr(logger, "log_scalar", None)):
            raise TrainerError(f"Trainer: logger must have a log_scalar() method, got {type(logger).__name__}")
        self.collector = collector
        self.loss_module = loss_module
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.logger = logger
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.progress_bar = bool(progress_bar)
        self.seed = seed
        if seed is not None:
            seed_everything(seed)
        self.hooks = HookTable()
        self.modules: dict[str, Any] = {}
        self.returns = EpisodeReturnTracker(_count("return_window", return_window))
        if stop_at_return is not None and (
            isinstance(stop_at_return, bool) or not isinstance(stop_at_return, (int, float))
            or not math.isfinite(stop_at_return)
        ):
            raise TrainerError(f"Trainer: stop_at_return must be a finite number or None, got {stop_at_return!r}")
        self.stop_at_return = None if stop_at_return is None else float(stop_at_return)
        self.reached_target = False
        self._params = [p for group in optimizer.param_groups for p in group["params"]]
        # counters (saved in checkpoints)
        self.collected_frames = 0
        self.optim_steps = 0
        self.iterations = 0
        self._logged_frames = 0
        self._checkpointed_frames = 0
        self._elapsed = 0.0
        self._pending: dict[str, torch.Tensor] = {}
        self._pending_count = 0
        self._hook_logs: dict[str, float] = {}
        self._iterator: Any = None

    # ------------------------------------------------------------------ extension
    def register_op(self, point: str, fn: Callable[..., Any]) -> None:
        """Run ``fn`` at the hook point ``point`` (see :data:`~rlkernel_algos.trainers.hooks.HOOK_POINTS`)."""
        self.hooks.register(point, fn)

    def register_module(self, name: str, module: Any) -> None:
        """Save ``module.state_dict()`` in checkpoints under ``name`` and restore it on load."""
        if not isinstance(name, str) or not name:
            raise TrainerError(f"register_module: the name must be a non-empty string, got {name!r}")
        if name in self.modules:
            raise TrainerError(f"register_module: {name!r} is already registered")
        for method in ("state_dict", "load_state_dict"):
            if not callable(getattr(module, method, None)):
                raise TrainerError(f"register_module: {type(module).__name__} has no {method}() method")
        self.modules[name] = module

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict[str, float]:
        """Run until ``total_frames`` frames were collected; return the final metrics."""
        bar = ProgressBar(self.total_frames, initial=self.collected_frames, enabled=self.progress_bar)
        start = time.perf_counter() - self._elapsed
        start_frames = self.collected_frames
        session_start = time.perf_counter()
        try:
            while self.collected_frames < self.total_frames:
                batch = self._next_batch()
                if batch is None:
                    break
                frames = batch.numel()
                self.collected_frames += frames
                self.iterations += 1
                self.returns.update(batch)
                self._step(batch)
                self._elapsed = time.perf_counter() - start
                session = time.perf_counter() - session_start
                fps = (self.collected_frames - start_frames) / max(session, 1e-9)
                bar.update(frames, fps, self.returns.mean_return)
                if self.collected_frames - self._logged_frames >= self.log_interval:
                    self._log(fps)
                if (
                    self.checkpoint_dir is not None
                    and self.checkpoint_interval is not None
                    and self.collected_frames - self._checkpointed_frames >= self.checkpoint_interval
                    and self.collected_frames < self.total_frames
                ):
                    self.save_checkpoint()
                if self._stop_return_met():
                    self.reached_target = True
                    break
            session = time.perf_counter() - session_start
            fps = (self.collected_frames - start_frames) / max(session, 1e-9)
            if self._logged_frames != self.collected_frames:
                self._log(fps)
            if self.checkpoint_dir is not None and self._checkpointed_frames != self.collected_frames:
                self.save_checkpoint()
        finally:
            bar.close()
            if self.logger is not None and callable(getattr(self.logger, "flush", None)):
                self.logger.flush()
        return self.final_metrics(fps)

    def _stop_return_met(self) -> bool:
        returns = self.returns
        return (
            self.stop_at_return is not None
            and len(returns.returns) >= returns.window
            and returns.mean_return is not None
            and returns.mean_return >= self.stop_at_return
        )

    def _next_batch(self) -> TensorDictBase | None:
        if self._iterator is None:
            self._iterator = iter(self.collector)
        try:
            return next(self._iterator)
        except StopIteration:
            return None

    def _step(self, batch: TensorDictBase) -> None:
        hooks = self.hooks
        batch = hooks.transform("batch_process", batch)
        self._hook_logs.update(hooks.collect_logs("pre_steps_log", batch))
        if self.collected_frames >= self.optim_start_frames and self.optim_steps_per_batch:
            hooks.call("pre_optim_steps")
            for _ in range(self.optim_steps_per_batch):
                self._optim_step(hooks.transform("process_optim_batch", batch))
            if self.lr_scheduler is not None:
                self.lr_scheduler.step()
            self.collector.update_policy_weights_()
        hooks.call("post_steps")
        self._hook_logs.update(hooks.collect_logs("post_steps_log", batch))

    def _optim_step(self, minibatch: TensorDictBase) -> None:
        losses = self.loss_module(minibatch)
        losses = self.hooks.post_loss(losses, minibatch)
        terms = [value for key, value in losses.items() if _is_loss_term(key)]
        if not terms:
            raise TrainerError(
                f"Trainer: {type(self.loss_module).__name__} returned no 'loss' or 'loss_*' term "
                f"(it returned {sorted(map(str, losses.keys()))})"
            )
        total = terms[0] if len(terms) == 1 else torch.stack([t.reshape(()) for t in terms]).sum()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        pending = self._pending
        if self.clip_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(self._params, self.clip_grad_norm)
            pending["grad_norm"] = pending.get("grad_norm", 0.0) + norm.detach()
        self.optimizer.step()
        self.hooks.call("post_optim")
        self.optim_steps += 1
        for key, value in losses.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                pending[key] = pending.get(key, 0.0) + value.detach().reshape(())
        self._pending_count += 1

    # ------------------------------------------------------------------ logging
    def current_metrics(self, fps: float | None = None) -> dict[str, float]:
        """What the next log line will hold: averaged loss terms, returns, speed, hooks' values."""
        out: dict[str, float] = {}
        if self.returns.mean_return is not None:
            out["return"] = self.returns.mean_return
        if self.returns.mean_length is not None:
            out["episode_length"] = self.returns.mean_length
        out["episodes"] = float(self.returns.episodes)
        if self._pending_count:
            for key, value in self._pending.items():
                out[key] = float(value) / self._pending_count
        out["lr"] = float(self.optimizer.param_groups[0]["lr"])
        out["optim_steps"] = float(self.optim_steps)
        if fps is not None:
            out["fps"] = fps
        out["wall_time_s"] = self._elapsed
        out.update(self._hook_logs)
        return out

    def _log(self, fps: float) -> None:
        metrics = self.current_metrics(fps)
        self._pending, self._pending_count, self._hook_logs = {}, 0, {}
        self._logged_frames = self.collected_frames
        if self.logger is None:
            return
        for name, value in metrics.items():
            self.logger.log_scalar(name, value, step=self.collected_frames)
        if callable(getattr(self.logger, "flush", None)):
            self.logger.flush()  # each log line reaches the file: a crash loses nothing logged

    def final_metrics(self, fps: float | None = None) -> dict[str, float]:
        """Frames, optimisation steps, wall time, speed and the recent return."""
        out = {
            "frames": float(self.collected_frames),
            "optim_steps": float(self.optim_steps),
            "wall_time_s": self._elapsed,
            "episodes": float(self.returns.episodes),
        }
        if fps is not None:
            out["fps"] = fps
        if self.returns.mean_return is not None:
            out["return"] = self.returns.mean_return
        if self.stop_at_return is not None:
            out["reached_target"] = float(self.reached_target)
        return out
