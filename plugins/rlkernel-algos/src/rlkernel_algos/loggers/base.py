"""The logger contract: ``log_scalar(name, value, step)``, ``log_hparams(dict)``, ``close()``."""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from rlkernel.errors import RLKernelError

__all__ = ["Logger", "LoggerError", "check_scalar", "flatten_hparams"]


class LoggerError(RLKernelError, ValueError):
    """A logger was given a bad name, value or step, or its backend is missing."""


def check_scalar(owner: str, name: Any, value: Any, step: Any) -> tuple[str, float, int]:
    """``(name, float(value), int(step))``, or a :class:`LoggerError` naming what is wrong."""
    if not isinstance(name, str) or not name or any(c in name for c in ",\n\r"):
        raise LoggerError(f"{owner}.log_scalar: name must be a non-empty string without ',' or newlines, got {name!r}")
    if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise LoggerError(f"{owner}.log_scalar({name!r}): value must be a real number, got {type(value).__name__}")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise LoggerError(f"{owner}.log_scalar({name!r}): step must be an int >= 0, got {step!r}")
    return name, float(value), int(step)


def flatten_hparams(hparams: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a/b": value}``; values other than numbers, strings, bools and None as ``str``."""
    if not isinstance(hparams, Mapping):
        raise LoggerError(f"log_hparams takes a dict, got {type(hparams).__name__}")
    out: dict[str, Any] = {}
    for key, value in hparams.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_hparams(value, f"{name}/"))
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


class Logger(ABC):
    """Base of every logger. Subclasses implement :meth:`_log_scalar` and may override the rest.

    A logger is a context manager: leaving the ``with`` block closes it.
    """

    def log_scalar(self, name: str, value: float, step: int) -> None:
        """Record ``value`` of the series ``name`` at ``step`` (frames, usually)."""
        name, value, step = check_scalar(type(self).__name__, name, value, step)
        if math.isnan(value):
            value = float("nan")
        self._log_scalar(name, value, step)

    @abstractmethod
    def _log_scalar(self, name: str, value: float, step: int) -> None: ...

    def log_hparams(self, hparams: Mapping[str, Any]) -> None:
        """Record the run's hyper-parameters (a dict; nested dicts are flattened to ``a/b``)."""
        self._log_hparams(flatten_hparams(hparams))

    def _log_hparams(self, hparams: dict[str, Any]) -> None:  # noqa: B027 - optional for subclasses
        """Write flattened hyper-parameters (default: nothing)."""

    def flush(self) -> None:  # noqa: B027 - optional for subclasses
        """Push what was logged to its destination."""

    def close(self) -> None:  # noqa: B027 - optional for subclasses
        """Flush and release the destination (idempotent)."""

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
