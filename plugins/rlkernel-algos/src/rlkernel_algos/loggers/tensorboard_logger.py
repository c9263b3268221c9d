"""``TensorboardLogger``: TensorBoard event files through ``torch.utils.tensorboard``.

Needs the ``tensorboard`` package (``pip install "rlkernel-algos[tensorboard]"``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rlkernel_algos.loggers.base import Logger, LoggerError

__all__ = ["TensorboardLogger"]


class TensorboardLogger(Logger):
    """Write scalars and hyper-parameters as TensorBoard events under ``log_dir``.

    Args:
        log_dir: the folder of the event files (``tensorboard --logdir`` it).
        flush_secs: how often the writer flushes on its own.
    """

    def __init__(self, log_dir: str | os.PathLike[str], *, flush_secs: int = 30) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise LoggerError(
                f"TensorboardLogger needs the 'tensorboard' package ({err}); "
                "install it with: pip install 'rlkernel-algos[tensorboard]'"
            ) from err
        self.log_dir = Path(log_dir)
        self._writer: Any = SummaryWriter(log_dir=str(self.log_dir), flush_secs=flush_secs)

    def _log_scalar(self, name: str, value: float, step: int) -> None:
        if self._writer is None:
            raise LoggerError(f"TensorboardLogger: {self.log_dir} is closed")
        self._writer.add_scalar(name, value, global_step=step)

    def _log_hparams(self, hparams: dict[str, Any]) -> None:
        clean = {k: ("None" if v is None else v) for k, v in hparams.items()}
        self._writer.add_hparams(clean, {}, run_name=".")

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
