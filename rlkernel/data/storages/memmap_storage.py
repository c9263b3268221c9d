"""A tensor storage in memory-mapped files that a new process can reopen.

Folder layout (``scratch_dir``)::

    storage.json        format, max_size, layout (keys, row shapes, dtypes) and packing
                        (which leaves share buffer i): written once
    counters.memmap     one int64 holding (len, cursor): rewritten on every write
    leaves/<i>.memmap   buffer i: its leaves' rows side by side (raw data)

The rows are written straight into shared file mappings, then the counter, so a process
killed at any point (even by SIGKILL) leaves a folder whose counter covers only rows
fully written: reopening it (``LazyMemmapStorage(max_size, scratch_dir=same)``) gives back
every row of every write that returned, the length and the write cursor.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import torch
from tensordict import MemoryMappedTensor

from rlkernel.data.errors import StorageError
from rlkernel.data.storages.layout import Layout
from rlkernel.data.storages.packing import Packing
from rlkernel.data.storages.tensor_storage import TensorStorage

__all__ = ["LazyMemmapStorage"]

_FORMAT = "rlkernel.LazyMemmapStorage"
_VERSION = 1


def _write_json(path: Path, content: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(content, indent=1))
    os.replace(tmp, path)


class LazyMemmapStorage(TensorStorage):
    """Rows in memory-mapped files under ``scratch_dir``, allocated on the first write.

    ``LazyMemmapStorage(max_size, scratch_dir=None)``. With ``scratch_dir=None`` a
    temporary folder is used and removed with the storage. When ``scratch_dir`` already
    holds a storage it is reopened with its rows, length and cursor (``max_size`` must
    match). Only one process should write to a folder at a time.

    >>> import tempfile, torch
    >>> from tensordict import TensorDict
    >>> folder = tempfile.mkdtemp()
    >>> storage = LazyMemmapStorage(10, scratch_dir=folder)
    >>> storage.set(torch.arange(3), TensorDict({"obs": torch.ones(3, 2)}, [3]))
    >>> len(LazyMemmapStorage(10, scratch_dir=folder))   # e.g. in another process
    3
    """

    def __init__(self, max_size: int, scratch_dir: str | os.PathLike[str] | None = None, device: Any = None):
        super().__init__(max_size, device)
        if self.device is not None and self.device.type != "cpu":
            raise StorageError(f"LazyMemmapStorage keeps its rows on the CPU, got device={device!r}")
        if scratch_dir is None:
            folder = Path(tempfile.mkdtemp(prefix="rlkernel-memmap-"))
            self._finalizer: Any = weakref.finalize(self, shutil.rmtree, folder, True)
        else:
            folder = Path(scratch_dir)
            folder.mkdir(parents=True, exist_ok=True)
            self._finalizer = None
        self.scratch_dir = folder
        self._counter: torch.Tensor | None = None
        if (folder / "storage.json").exists():
            self._reopen()

    # -- files -------------------------------------------------------------------------
    def _reopen(self) -> None:
        meta = json.loads((self.scratch_dir / "storage.json").read_text())
        if meta.get("format") != _FORMAT:
            raise StorageError(f"{self.scratch_dir}/storage.json was not written by a LazyMemmapStorage")
        if int(meta["max_size"]) != self.max_size:
            raise StorageError(
                f"{self.scratch_dir} holds a storage of max_size {meta['max_size']}; reopen it with "
                f"that max_size (got {self.max_size}) or use another scratch_dir"
            )
        layout = Layout.from_state(meta["layout"])
        packing = Packing(layout, meta["groups"])
        self._buffers = [
            MemoryMappedTensor.from_filename(self._leaf_file(i), g.dtype, (self.max_size, g.width), mode="r+")
            for i, g in enumerate(packing.groups)
        ]
        self._leaves = packing.views(self._buffers)
        self._packing = packing
        self.layout = layout
        self._counter = self._open_counter(create=False)
        length, cursor = divmod(int(self._counter[0]), self.max_size + 1)
        if not (0 <= length <= self.max_size and 0 <= cursor < self.max_size):
            raise StorageError(f"{self.scratch_dir}/counters.memmap is corrupt (len={length}, cursor={cursor})")
        self._len, self._cursor = length, cursor

    def _leaf_file(self, i: int) -> Path:
        return self.scratch_dir / "leaves" / f"{i}.memmap"

    def _open_counter(self, *, create: bool) -> torch.Tensor:
        path = self.scratch_dir / "counters.memmap"
        if create:
            return MemoryMappedTensor.zeros(1, dtype=torch.int64, filename=path, existsok=True)
        return MemoryMappedTensor.from_filename(path, torch.int64, (1,), mode="r+")

    def _allocate(self, layout: Layout, packing: Packing, device: torch.device) -> list[torch.Tensor]:
        (self.scratch_dir / "leaves").mkdir(exist_ok=True)
        buffers = [
            MemoryMappedTensor.empty(
                (self.max_size, g.width), dtype=g.dtype, filename=self._leaf_file(i), existsok=True
            )
            for i, g in enumerate(packing.groups)
        ]
        self._counter = self._open_counter(create=True)
        meta = {
            "format": _FORMAT,
            "version": _VERSION,
            "max_size": self.max_size,
            "layout": layout.to_state(),
            "groups": packing.membership(),
        }
        _write_json(self.scratch_dir / "storage.json", meta)
        return buffers

    def _flush(self) -> None:
        # One aligned int64 store, so that a kill can never leave half an update:
        # len and cursor are packed as len * (max_size + 1) + cursor.
        if self._counter is not None:
            self._counter[0] = self._len * (self.max_size + 1) + self._cursor

    def __repr__(self) -> str:
        return f"LazyMemmapStorage(max_size={self.max_size}, len={self._len}, scratch_dir={str(self.scratch_dir)!r})"
