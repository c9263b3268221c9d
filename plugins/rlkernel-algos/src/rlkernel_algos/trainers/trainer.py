"""The :class:`Trainer`: collect, optimise, log, checkpoint; extended through hooks.

>>> trainer = Trainer(collector, loss, torch.optim.Adam(loss.parameters(), 3e-4),  # doctest: +SKIP
...                   total_frames=100_000, optim_steps_per_batch=10, logger=CSVLogger("run"),
...                   checkpoint_dir="run/checkpoints", checkpoint_interval=25_000, seed=0)
>>> ReplayBufferHook(buffer).register(trainer)                                        # doctest: +SKIP
>>> trainer.register_op("post_optim", SoftUpdate(loss, tau=0.005).step)              # doctest: +SKIP
>>> metrics = trainer.train()                                                         # doctest: +SKIP

See :mod:`rlkernel_algos.trainers.hooks` for the hook points and when each runs.

The Trainer is hooks around a :class:`~rlkernel_algos.trainers.TrainingLoop`, which does
its counting, logging, progress bar, early stop and checkpoints (they resume exactly: see
:mod:`rlkernel_algos.trainers.loop`).
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase

from rlkernel_algos.trainers.checkpoint import latest_checkpoint, seed_everything
from rlkernel_algos.trainers.hooks import HookTable, TrainerError
from rlkernel_algos.trainers.loop import TrainingLoop
from rlkernel_algos.trainers.returns import EpisodeReturnTracker

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


class Trainer:
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
        total_frames = _count("total_frames", total_frames)
        if collector_total is not None and 0 <= collector_total < total_frames:
            raise TrainerError(
                f"Trainer: total_frames={total_frames} is more than the collector's total_frames={collector_total}"
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
        if logger is not None and not callable(getattr(logger, "log_scalar", None)):
            raise TrainerError(f"Trainer: logger must have a log_scalar() method, got {type(logger).__name__}")
        self.collector = collector
        self.loss_module = loss_module
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        if seed is not None:
            seed_everything(seed)
        state: dict[str, Any] = {"loss_module": loss_module, "optimizer": optimizer}
        if lr_scheduler is not None:
            state["lr_scheduler"] = lr_scheduler
        #: The bookkeeping: frames, returns, logs, progress, checkpoints, early stop.
        self.loop = TrainingLoop(
            collector, total_frames=total_frames, state=state, logger=logger, log_interval=log_interval,
            checkpoint_dir=checkpoint_dir, checkpoint_interval=checkpoint_interval,
            keep_checkpoints=keep_checkpoints, seed=seed or 0, progress_bar=progress_bar,
            stop_at_return=stop_at_return, return_window=return_window, resume=False,
        )
        self.hooks = HookTable()
        self.modules: dict[str, Any] = {}
        self._params = [p for group in optimizer.param_groups for p in group["params"]]
        self._iterator: Any = None

    # ------------------------------------------------------------------ the loop's view
    @property
    def total_frames(self) -> int:
        """Frames to train for."""
        return self.loop.total_frames

    @property
    def collected_frames(self) -> int:
        """Frames collected so far."""
        return self.loop.frames

    @property
    def optim_steps(self) -> int:
        """Optimisation steps taken so far."""
        return self.loop.optim_steps

    @property
    def returns(self) -> EpisodeReturnTracker:
        """The returns of the recent episodes."""
        return self.loop.returns

    @property
    def reached_target(self) -> bool:
        """Whether training stopped at ``stop_at_return``."""
        return self.loop.reached_target

    @property
    def checkpoint_dir(self) -> Path | None:
        """Where checkpoints go."""
        return self.loop.checkpoint_dir

    # ------------------------------------------------------------------ extension
    def register_op(self, point: str, fn: Callable[..., Any]) -> None:
        """Run ``fn`` at the hook point ``point`` (see :data:`~rlkernel_algos.trainers.hooks.HOOK_POINTS`)."""
        self.hooks.register(point, fn)

    def register_module(self, name: str, module: Any) -> None:
        """Save ``module.state_dict()`` in checkpoints under ``name`` and restore it on load."""
        if not isinstance(name, str) or not name:
            raise TrainerError(f"register_module: the name must be a non-empty string, got {name!r}")
        if name in self.modules or name in self.loop.state:
            raise TrainerError(f"register_module: {name!r} is already registered")
        for method in ("state_dict", "load_state_dict"):
            if not callable(getattr(module, method, None)):
                raise TrainerError(f"register_module: {type(module).__name__} has no {method}() method")
        self.modules[name] = module
        self.loop.add_state(name, module)

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict[str, float]:
        """Run until ``total_frames`` frames were collected (or the target return); return the final metrics."""
        for batch in self.loop:
            self._step(batch)
        return self.loop.final_metrics()

    def _step(self, batch: TensorDictBase) -> None:
        hooks, loop = self.hooks, self.loop
        batch = hooks.transform("batch_process", batch)
        loop.record(hooks.collect_logs("pre_steps_log", batch))
        if self.collected_frames >= self.optim_start_frames and self.optim_steps_per_batch:
            hooks.call("pre_optim_steps")
            for _ in range(self.optim_steps_per_batch):
                self._optim_step(hooks.transform("process_optim_batch", batch))
            if self.lr_scheduler is not None:
                self.lr_scheduler.step()
            self.collector.update_policy_weights_()
        hooks.call("post_steps")
        loop.record(hooks.collect_logs("post_steps_log", batch))
        loop.record(lr=float(self.optimizer.param_groups[0]["lr"]))

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
        extra = {}
        if self.clip_grad_norm is not None:
            extra["grad_norm"] = torch.nn.utils.clip_grad_norm_(self._params, self.clip_grad_norm)
        self.optimizer.step()
        self.hooks.call("post_optim")
        self.loop.record_update(losses, **extra)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write a checkpoint (default ``checkpoint_dir/checkpoint-<frames>.pt``); see :class:`TrainingLoop`."""
        return self.loop.save_checkpoint(path)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Restore a checkpoint (a file, or a folder: its newest) before :meth:`train`."""
        self.loop.load_checkpoint(path)

    def resume(self) -> bool:
        """Load the newest checkpoint of ``checkpoint_dir`` if there is one; return whether one was found."""
        if self.checkpoint_dir is None:
            raise TrainerError("resume: the trainer has no checkpoint_dir")
        found = latest_checkpoint(self.checkpoint_dir)
        if found is None:
            return False
        self.load_checkpoint(found)
        return True

    def final_metrics(self) -> dict[str, float]:
        """Frames, optimisation steps, wall time, speed and the recent return."""
        return self.loop.final_metrics()
