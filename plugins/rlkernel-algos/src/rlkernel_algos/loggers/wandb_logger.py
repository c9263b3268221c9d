"""``WandbLogger``: Weights & Biases runs, offline by default (no account, no network).

Needs the ``wandb`` package (``pip install "rlkernel-algos[wandb]"``). The run is written
under ``log_dir/wandb/offline-run-*``; ``wandb sync`` uploads it later. ``mode="online"``
(or ``WANDB_MODE=online``) logs live.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rlkernel_algos.loggers.base import Logger, LoggerError

__all__ = ["WandbLogger"]


class WandbLogger(Logger):
    """Log to a wandb run.

    Args:
        log_dir: where wandb writes the run (``log_dir/wandb/...``).
        project: the wandb project.
        name: the run's name (default: the folder's name).
        mode: ``"offline"`` (default, unless ``WANDB_MODE`` says otherwise), ``"online"`` or
            ``"disabled"``.
        **init_kwargs: more arguments of ``wandb.init``.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        *,
        project: str = "rlkernel",
        name: str | None = None,
        mode: str | None = None,
        **init_kwargs: Any,
    ) -> None:
        try:
            import wandb
        except ImportError as err:
            raise LoggerError(
                f"WandbLogger needs the 'wandb' package ({err}); install it with: pip install 'rlkernel-algos[wandb]'"
            ) from err
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        mode = mode or os.environ.get("WANDB_MODE", "offline")
        if mode not in ("offline", "online", "disabled"):
            raise LoggerError(f"WandbLogger: mode must be 'offline', 'online' or 'disabled', got {mode!r}")
        self.mode = mode
        settings = wandb.Settings(silent=True, console="off")
        self._run: Any = wandb.init(
            project=project, name=name or self.log_dir.name, dir=str(self.log_dir), mode=mode,
            settings=settings, reinit="create_new", **init_kwargs,
        )

    @property
    def run_dir(self) -> Path:
        """The folder of this run's files (``.../wandb/offline-run-...``)."""
        return Path(self._run.dir).parent

    def _log_scalar(self, name: str, value: float, step: int) -> None:
        if self._run is None:
            raise LoggerError(f"WandbLogger: the run in {self.log_dir} is closed")
        self._run.log({name: value, "frames": step})

    def _log_hparams(self, hparams: dict[str, Any]) -> None:
        self._run.config.update(hparams, allow_val_change=True)

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
