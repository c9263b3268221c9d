"""Reading a Minari ``main_data.hdf5`` with h5py into rlkernel's step layout.

:class:`EpisodeFile` checks the file against ``metadata.json`` when it opens it: every
``episode_<i>`` group is there and the step total matches. :meth:`EpisodeFile.chunks` then
reads episode by episode: each HDF5 dataset (a *source*) is looked up once, checked (row
count, row shape, dtype; see :mod:`~rlkernel_gym.datasets.columns`), read once (the
observations serve both ``observation`` and ``("next", "observation")``) and copied into
preallocated numpy buffers, handed out as TensorDicts of up to ``chunk_rows`` rows that
share those buffers: a consumer must copy a chunk (a replay buffer's ``extend`` does)
before asking for the next one.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from tensordict import TensorDict

from rlkernel_gym.datasets.columns import EPISODE_KEY, Column, info_columns, plan_columns
from rlkernel_gym.datasets.errors import DatasetError, DatasetFormatError
from rlkernel_gym.datasets.metadata import MinariMetadata
from rlkernel_gym.spaces import nest

__all__ = ["MAIN_FILE", "EpisodeFile"]

MAIN_FILE = "main_data.hdf5"
_EPISODE_RE = re.compile(r"episode_(\d+)")


@dataclass(frozen=True)
class Episode:
    """One episode group: its id (the ``i`` of ``episode_<i>``), name and step count."""

    id: int
    name: str
    steps: int


class EpisodeFile:
    """An open, checked ``main_data.hdf5``; use as a context manager.

    Args:
        metadata: the dataset's checked ``metadata.json``.
        include_infos: read the numeric entries of each episode's ``infos`` group.
    """

    def __init__(self, metadata: MinariMetadata, *, include_infos: bool = True) -> None:
        self.metadata = metadata
        self.path: Path = metadata.data_path / MAIN_FILE
        if not self.path.is_file():
            present = sorted(p.name for p in metadata.data_path.iterdir())
            raise DatasetFormatError(f"{self.path}: missing; the data folder holds {present}")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise DatasetFormatError(f"{self.path}: not a readable HDF5 file ({err})") from err
        try:
            self.episodes = self._find_episodes()
            self.columns = plan_columns(metadata)
            if include_infos:
                self.columns += info_columns(self._info_entries())
            self._check_totals()
            grouped: dict[str, list[Column]] = {}
            for col in self.columns:
                grouped.setdefault(col.source, []).append(col)
            self._sources = list(grouped.items())
        except BaseException:
            self._file.close()
            raise

    # -- context -------------------------------------------------------------------------
    def close(self) -> None:
        """Close the HDF5 file."""
        self._file.close()

    def __enter__(self) -> EpisodeFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def total_steps(self) -> int:
        """The number of steps (rows) in the file."""
        return sum(ep.steps for ep in self.episodes)

    # -- checks --------------------------------------------------------------------------
    def _bad(self, what: str) -> DatasetFormatError:
        return DatasetFormatError(f"{self.path}: {what}")

    def _find_episodes(self) -> list[Episode]:
        found: dict[int, tuple[str, h5py.Group]] = {}
        for name, node in self._file.items():
            match = _EPISODE_RE.fullmatch(name)
            if match and isinstance(node, h5py.Group):
                found[int(match.group(1))] = (name, node)
        expected = self.metadata.total_episodes
        missing = [i for i in range(expected) if i not in found]
        if missing or len(found) != expected:
            shown = ", ".join(f"episode_{i}" for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
            detail = f"; missing groups: {shown}" if missing else ""
            raise self._bad(
                f"metadata.json declares {expected} episodes but the file holds {len(found)} episode "
                f"groups{detail} (incomplete or corrupt file)"
            )
        episodes = []
        for i in range(expected):
            name, group = found[i]
            rewards = group.get("rewards")
            if rewards is None:
                raise self._bad(f"group {name!r} lacks ['rewards'] (has {sorted(group)})")
            shape = rewards.shape if isinstance(rewards, h5py.Dataset) else None
            if not shape:
                raise self._bad(f"{name}/rewards is not a dataset of one reward per step")
            episodes.append(Episode(i, name, int(shape[0])))
        return episodes

    def _info_entries(self) -> list[tuple[str, tuple[int, ...], np.dtype, int]]:
        """Numeric entries of the first non-empty episode's ``infos``, with their row
        shape, dtype and how many rows beyond ``T`` they hold (1: reset info included)."""
        probe = next((ep for ep in self.episodes if ep.steps), None)
        if probe is None or "infos" not in self._file[probe.name]:
            return []
        group = self._file[probe.name]["infos"]
        entries: list[tuple[str, tuple[int, ...], np.dtype, int]] = []
        skipped: list[str] = []

        def visit(path: str, node: Any) -> None:
            if not isinstance(node, h5py.Dataset):
                return
            if node.ndim == 0 or node.dtype.kind not in "biuf":
                skipped.append(path)
                return
            extra = node.shape[0] - probe.steps
            if extra not in (0, 1):
                raise self._bad(
                    f"{probe.name}/infos/{path} has {node.shape[0]} rows for an episode of {probe.steps} "
                    f"steps (expected {probe.steps + 1}, or {probe.steps})"
                )
            entries.append((path, tuple(node.shape[1:]), node.dtype, extra))

        group.visititems(visit)
        if skipped:
            warnings.warn(
                f"{self.path}: info entries {skipped} are not numeric arrays and are left out",
                stacklevel=3,
            )
        return entries

    def _check_totals(self) -> None:
        total = self.total_steps
        if total != self.metadata.total_steps:
            raise self._bad(
                f"metadata.json declares total_steps={self.metadata.total_steps} but the episodes hold "
                f"{total} steps (incomplete or corrupt file)"
            )

    def _nodes(self, ep: Episode, group: h5py.Group) -> list[tuple[h5py.Dataset, bool]]:
        """The datasets of one episode, one per source, checked against the plan, each with
        whether it holds JPEG frames. (h5py's ``shape``/``dtype`` are slow: read once.)"""
        nodes = []
        for source, cols in self._sources:
            node = group.get(source)
            if not isinstance(node, h5py.Dataset):
                top = source.split("/", 1)[0]
                if top not in group:
                    raise self._bad(f"group {ep.name!r} lacks {[top]} (has {sorted(group)})")
                raise self._bad(f"{ep.name}/{source} is missing (needed for {_show(cols[0].key)})")
            col, shape, dtype = cols[0], node.shape, node.dtype
            rows = ep.steps + col.extra
            if not shape or shape[0] != rows:
                got = shape[0] if shape else "a scalar"
                raise self._bad(f"{ep.name}/{source} has {got} rows; an episode of {ep.steps} steps needs {rows}")
            jpeg = _is_jpeg(col, shape, dtype)
            if not jpeg:
                if int(np.prod(shape[1:])) != int(np.prod(col.event)):
                    raise self._bad(
                        f"{ep.name}/{source} holds rows of shape {tuple(shape[1:])}; {_show(col.key)} needs {col.event}"
                    )
                if not col.flag and not np.can_cast(dtype, col.dtype, "same_kind"):
                    raise self._bad(f"{ep.name}/{source} holds {dtype} values; {_show(col.key)} needs {col.dtype}")
            nodes.append((node, jpeg))
        return nodes

    # -- reading -------------------------------------------------------------------------
    def chunks(self, chunk_rows: int) -> Iterator[TensorDict]:
        """TensorDicts of up to ``chunk_rows`` consecutive steps, in episode order, sharing
        one set of buffers (copy each before taking the next). Each episode's datasets are
        checked when it is reached: a :class:`DatasetFormatError` may come after some chunks."""
        total = self.total_steps
        rows = max(1, min(chunk_rows, total))
        buffers = {col.key: np.empty((rows, *col.event), dtype=col.dtype) for col in self.columns}
        episode_ids = np.empty(rows, dtype=np.int64)
        pos = 0
        for ep in self.episodes:
            if not ep.steps:
                continue
            group = self._file[ep.name]
            nodes = self._nodes(ep, group)
            start = 0
            while start < ep.steps:
                n = min(ep.steps - start, rows - pos)
                for (node, jpeg), (source, cols) in zip(nodes, self._sources):
                    count = n + cols[0].extra
                    if jpeg:
                        values = np.empty((count, *cols[0].event), dtype=np.uint8)
                        _decode_jpeg(node, start, values, f"{self.path}: {ep.name}/{source}")
                    elif start == 0 and count == ep.steps + cols[0].extra:
                        values = node[()]  # the whole dataset: h5py's fastest read
                    else:
                        values = node[start : start + count]
                    for col in cols:
                        _put(col, values[col.shift : col.shift + n], buffers[col.key][pos : pos + n])
                episode_ids[pos : pos + n] = ep.id
                pos += n
                start += n
                if pos == rows:
                    yield _as_tensordict(buffers, episode_ids, pos)
                    pos = 0
        if pos:
            yield _as_tensordict(buffers, episode_ids, pos)


def _put(col: Column, values: np.ndarray, dest: np.ndarray) -> None:
    """Copy source rows into a column's buffer rows (cast, reshaped, made 0-based)."""
    if col.flag and values.dtype != bool:
        values = values != 0
    dest[...] = values.reshape(dest.shape)
    if col.offset is not None:
        dest -= col.offset


def _show(key: tuple[str, ...]) -> str:
    return repr(key[0]) if len(key) == 1 else repr(key)


def _is_jpeg(col: Column, shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """Whether an image column is stored as JPEG frames (variable-length bytes, or one
    fixed-length byte row per frame) rather than raw pixels."""
    if not col.image:
        return False
    return h5py.check_vlen_dtype(dtype) is not None or (len(shape) == 2 and dtype == np.uint8)


def _decode_jpeg(node: h5py.Dataset, first: int, out: np.ndarray, where: str) -> None:
    try:
        from PIL import Image
    except ImportError as err:
        raise DatasetError(f"{where} holds JPEG frames; decoding them needs Pillow (pip install pillow)") from err
    frames = node[first : first + out.shape[0]]
    for i, frame in enumerate(frames):
        try:
            image = np.asarray(Image.open(io.BytesIO(np.asarray(frame, dtype=np.uint8).tobytes())))
        except OSError as err:
            raise DatasetFormatError(f"{where}: frame {first + i} is not a readable JPEG image ({err})") from err
        if image.shape != out.shape[1:]:
            raise DatasetFormatError(
                f"{where}: frame {first + i} decodes to shape {image.shape}, the space says {out.shape[1:]}"
            )
        out[i] = image


def _as_tensordict(buffers: dict[tuple[str, ...], np.ndarray], episode_ids: np.ndarray, n: int) -> TensorDict:
    flat: dict[tuple[str, ...], Any] = {key: torch.from_numpy(buf[:n]) for key, buf in buffers.items()}
    terminated = flat[("next", "terminated")]
    flat[("next", "done")] = terminated | flat[("next", "truncated")]
    not_done = torch.zeros_like(terminated)
    for name in ("done", "terminated", "truncated"):
        flat[(name,)] = not_done
    flat[(EPISODE_KEY,)] = torch.from_numpy(episode_ids[:n])
    return TensorDict(nest(flat), batch_size=[n])
