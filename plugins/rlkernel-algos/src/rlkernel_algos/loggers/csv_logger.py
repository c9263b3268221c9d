"""``CSVLogger``: scalars in a long-format CSV file (``step,name,value``), hparams in JSON.

>>> import tempfile, pathlib
>>> folder = tempfile.mkdtemp()
>>> with CSVLogger(folder) as logger:
...     logger.log_scalar("return", 21.5, step=1000)
...     logger.log_hparams({"lr": 3e-4, "net": {"cells": 64}})
>>> print(pathlib.Path(folder, "metrics.csv").read_text(), end="")
step,name,value
1000,return,21.5
>>> print(pathlib.Path(folder, "hparams.json").read_text())
{"lr": 0.0003, "net/cells": 64}
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from rlkernel_algos.loggers.base import Logger, LoggerError

__all__ = ["CSVLogger", "read_metrics"]

HEADER = ("step", "name", "value")


class CSVLogger(Logger):
    """Append scalars to ``log_dir/filename`` as rows ``step,name,value``.

    Values are written with ``repr`` (shortest exact form). An existing file is appended to
    (a resumed run continues its file); its header must be ``step,name,value``.

    Args:
        log_dir: the folder (created if needed).
        filename: the CSV file's name.
        flush_every: flush the file after this many rows (and on ``flush``/``close``).
    """

    def __init__(
        self, log_dir: str | os.PathLike[str], filename: str = "metrics.csv", *, flush_every: int = 64
    ) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.log_dir / filename
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists:
            with self.path.open(newline="") as f:
                first = next(csv.reader(f), None)
            if tuple(first or ()) != HEADER:
                raise LoggerError(f"CSVLogger: {self.path} exists and is not a step,name,value metrics file")
        self._file: Any = self.path.open("a", newline="")
        self._writer = csv.writer(self._file, lineterminator="\n")
        if not exists:
            self._writer.writerow(HEADER)
        self.flush_every = max(1, int(flush_every))
        self._unflushed = 0

    def _log_scalar(self, name: str, value: float, step: int) -> None:
        if self._file is None:
            raise LoggerError(f"CSVLogger: {self.path} is closed")
        self._writer.writerow((step, name, repr(value)))
        self._unflushed += 1
        if self._unflushed >= self.flush_every:
            self.flush()

    def _log_hparams(self, hparams: dict[str, Any]) -> None:
        (self.log_dir / "hparams.json").write_text(json.dumps(hparams))

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
            self._unflushed = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_metrics(path: str | os.PathLike[str]) -> dict[str, list[tuple[int, float]]]:
    """Read a :class:`CSVLogger` file: ``{name: [(step, value), ...]}`` in file order."""
    series: dict[str, list[tuple[int, float]]] = {}
    with Path(path).open(newline="") as f:
        rows = csv.reader(f)
        if tuple(next(rows, ())) != HEADER:
            raise LoggerError(f"{path} is not a step,name,value metrics file")
        for step, name, value in rows:
            series.setdefault(name, []).append((int(step), float(value)))
    return series
