"""Checkpointing of the :class:`~rlkernel_algos.trainers.Trainer`: what is saved, and how a run resumes.

**Exact resume.** A checkpoint holds the loss module (networks and target networks), the
optimiser, the learning-rate scheduler, the collector's counters and policy, the
environment's transform buffers (``env.state_dict()``), every module registered with
:meth:`Trainer.register_module` (a replay buffer's contents), the frame and step counters,
and the states of torch's, numpy's and Python's random generators. Environments cannot be
saved mid-episode, so a checkpoint is an episode boundary: right after saving, the trainer
re-seeds the environment (``env.set_seed(seed + frames)``) and resets the collector, and a
run resumed from the checkpoint does the same. The uninterrupted run and the resumed one
then continue with bit-identical parameters.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rlkernel_algos.trainers.checkpoint import (
    checkpoint_path,
    get_rng_state,
    latest_checkpoint,
    load_checkpoint_file,
    save_checkpoint_file,
    set_rng_state,
)
from rlkernel_algos.trainers.hooks import TrainerError

__all__ = ["CheckpointMixin"]

_VERSION = 1


class CheckpointMixin:
    """``state_dict``, ``save_checkpoint``, ``load_checkpoint`` and ``resume`` of the Trainer.

    Reads and writes the trainer's attributes (``collector``, ``loss_module``, ``optimizer``,
    ``lr_scheduler``, ``modules``, ``returns``, ``checkpoint_dir``, ``keep_checkpoints``,
    ``seed`` and the counters).
    """

    collector: Any
    loss_module: Any
    optimizer: Any
    lr_scheduler: Any
    modules: dict[str, Any]
    returns: Any
    checkpoint_dir: Path | None
    keep_checkpoints: int
    seed: int | None
    collected_frames: int
    optim_steps: int
    iterations: int
    _logged_frames: int
    _checkpointed_frames: int
    _elapsed: float
    _pending: dict[str, Any]
    _pending_count: int
    _hook_logs: dict[str, float]

    # ------------------------------------------------------------------ checkpoints
    def _env(self) -> Any:
        return getattr(self.collector, "env", None)

    def _restart_episodes(self, env_seed: int) -> None:
        """Re-seed the environment and reset the collector (a checkpoint is an episode boundary)."""
        env = self._env()
        if env is not None and callable(getattr(env, "set_seed", None)):
            env.set_seed(env_seed)
        if callable(getattr(self.collector, "reset", None)):
            self.collector.reset()
        self.returns.drop_unfinished()  # the episodes in progress were cut short

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds except the RNG states and the episode restart."""
        env = self._env()
        env_state = env.state_dict() if env is not None and callable(getattr(env, "state_dict", None)) else None
        return {
            "version": _VERSION,
            "counters": {
                "collected_frames": self.collected_frames,
                "optim_steps": self.optim_steps,
                "iterations": self.iterations,
                "logged_frames": self._logged_frames,
                "elapsed": self._elapsed,
            },
            "loss_module": self.loss_module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler is not None else None,
            "collector": self.collector.state_dict(),
            "env": env_state,
            "modules": {name: module.state_dict() for name, module in self.modules.items()},
            "returns": self.returns.state_dict(),
        }

    def save_checkpoint(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write a checkpoint (default ``checkpoint_dir/checkpoint-<frames>.pt``) and restart the episodes.

        Returns the path written. Older checkpoints beyond ``keep_checkpoints`` are removed.
        """
        default = path is None
        if path is None:
            if self.checkpoint_dir is None:
                raise TrainerError("save_checkpoint: give a path (the trainer has no checkpoint_dir)")
            path = checkpoint_path(self.checkpoint_dir, self.collected_frames)
        state = self.state_dict()
        env_seed = ((self.seed or 0) + self.collected_frames) % 2**31
        self._restart_episodes(env_seed)
        state["env_seed"] = env_seed
        state["rng"] = get_rng_state()
        written = save_checkpoint_file(state, path)
        self._checkpointed_frames = self.collected_frames
        if default:
            self._prune()
        return written

    def _prune(self) -> None:
        assert self.checkpoint_dir is not None
        found = sorted(self.checkpoint_dir.glob("checkpoint-*.pt"))
        for old in found[: -self.keep_checkpoints]:
            old.unlink(missing_ok=True)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Restore a checkpoint (a file, or a folder: its newest checkpoint) before :meth:`train`."""
        state = load_checkpoint_file(path)
        if state.get("version") != _VERSION:
            raise TrainerError(f"checkpoint {path} has version {state.get('version')}, this trainer reads {_VERSION}")
        missing = set(state["modules"]) ^ set(self.modules)
        if missing:
            raise TrainerError(
                f"checkpoint {path} holds modules {sorted(state['modules'])} but this trainer registered "
                f"{sorted(self.modules)}; register the same ones (e.g. the replay buffer) before loading"
            )
        counters = state["counters"]
        self.loss_module.load_state_dict(state["loss_module"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.lr_scheduler is not None and state["lr_scheduler"] is not None:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.collector.load_state_dict(state["collector"])
        env = self._env()
        if state["env"] is not None and env is not None:
            env.load_state_dict(state["env"])
        for name, module in self.modules.items():
            module.load_state_dict(state["modules"][name])
        self.returns.load_state_dict(state["returns"])
        self.collected_frames = int(counters["collected_frames"])
        self.optim_steps = int(counters["optim_steps"])
        self.iterations = int(counters["iterations"])
        self._logged_frames = int(counters["logged_frames"])
        self._elapsed = float(counters["elapsed"])
        self._checkpointed_frames = self.collected_frames
        self._pending, self._pending_count, self._hook_logs = {}, 0, {}
        self._restart_episodes(int(state["env_seed"]))
        set_rng_state(state["rng"])

    def resume(self) -> bool:
        """Load the newest checkpoint of ``checkpoint_dir`` if there is one; return whether one was found."""
        if self.checkpoint_dir is None:
            raise TrainerError("resume: the trainer has no checkpoint_dir")
        found = latest_checkpoint(self.checkpoint_dir)
        if found is None:
            return False
        self.load_checkpoint(found)
        return True
