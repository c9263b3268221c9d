"""Loggers: ``log_scalar(name, value, step)``, ``log_hparams(dict)``, ``close()``.

Registered by name in ``rlkernel.registry.loggers``: ``csv`` (:class:`CSVLogger`, no extra
dependency), ``tensorboard`` (:class:`TensorboardLogger`, needs ``tensorboard``) and
``wandb`` (:class:`WandbLogger`, offline by default, needs ``wandb``)::

    >>> import rlkernel, tempfile
    >>> logger = rlkernel.registry.loggers.make("csv", tempfile.mkdtemp())
    >>> logger.log_scalar("return", 10.0, step=0); logger.close()

Names are imported on first use: the tensorboard and wandb modules import their backend
only when a logger is built.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Logger": "rlkernel_algos.loggers.base",
    "LoggerError": "rlkernel_algos.loggers.base",
    "CSVLogger": "rlkernel_algos.loggers.csv_logger",
    "read_metrics": "rlkernel_algos.loggers.csv_logger",
    "TensorboardLogger": "rlkernel_algos.loggers.tensorboard_logger",
    "WandbLogger": "rlkernel_algos.loggers.wandb_logger",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = sorted(_LAZY)
