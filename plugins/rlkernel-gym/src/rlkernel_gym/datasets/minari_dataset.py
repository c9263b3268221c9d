"""``MinariDataset``: a local Minari dataset as a replay buffer in rlkernel's step layout."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from rlkernel.data import LazyMemmapStorage, LazyTensorStorage, TensorDictReplayBuffer
from rlkernel.data.samplers import Sampler
from rlkernel.data.storages import Storage
from rlkernel_gym.datasets.cache import cache_folder, completed_rows, mark_complete
from rlkernel_gym.datasets.columns import EPISODE_KEY
from rlkernel_gym.datasets.errors import DatasetError
from rlkernel_gym.datasets.hdf5_reader import EpisodeFile
from rlkernel_gym.datasets.locate import dataset_folder, default_root
from rlkernel_gym.datasets.metadata import MinariMetadata, read_metadata

__all__ = ["MinariDataset"]

#: Rows read from the HDF5 file per write into the storage (bounds the extra memory).
CHUNK_ROWS = 1 << 16


class MinariDataset(TensorDictReplayBuffer):
    """A Minari dataset read from a local folder into a :class:`TensorDictReplayBuffer`.

    rlkernel never downloads: the dataset must already sit under ``root`` (fetch it with
    ``minari download <id>``). The buffer holds one row per step, in the layout
    :class:`~rlkernel_gym.GymEnv` writes (see :mod:`rlkernel_gym.datasets.columns`)::

        observation (or the Dict observation's entries), action, done, terminated, truncated,
        episode, [info],
        next: {observation..., reward, done, terminated, truncated, [info]}

    ``episode`` is the Minari episode id, so ``SliceSampler(traj_key="episode", ...)`` draws
    slices within episodes.

    Args:
        dataset_id: the Minari id, e.g. ``"D4RL/door/human-v2"``.
        root: the datasets folder; default ``$MINARI_DATASETS_PATH``, else
            ``~/.minari/datasets`` (Minari's own rule).
        split_trajs: one row per episode instead of one per step: rows of shape
            ``[max_len]``, zero padded, with a ``("collector", "mask")`` entry as
            :func:`rlkernel.collectors.split_trajectories` gives.
        download: must stay ``False``; ``True`` raises :class:`DatasetError`.
        batch_size, sampler, transform, prefetch: as for :class:`TensorDictReplayBuffer`.
        storage: an empty storage able to hold every row; default a
            :class:`LazyTensorStorage` in RAM, or with ``cache_dir`` a
            :class:`LazyMemmapStorage` there.
        cache_dir: keep a memory-mapped copy under ``cache_dir/<dataset_id>/<fingerprint>``
            and reuse it while the source files are unchanged (the HDF5 file is then not
            opened; see :mod:`rlkernel_gym.datasets.cache`).
        include_infos: read the numeric ``infos`` entries (as ``info`` / ``("next", "info")``).

    Attributes: ``dataset_id``, ``metadata`` (:class:`MinariMetadata`: env id, totals,
    spaces and specs), ``from_cache`` (whether the rows came from ``cache_dir``).

    Raises :class:`DatasetNotFoundError` (naming the folder searched and the local datasets)
    or :class:`DatasetFormatError` (naming the file and what is missing or wrong). Each
    episode is checked as it is read, so a bad episode late in the file is reported after
    the rows before it were written: a ``storage`` you passed may then hold those rows.

    >>> rb = MinariDataset("cartpole/random-v0", batch_size=32)  # doctest: +SKIP
    >>> rb.sample()["next", "reward"].shape                         # doctest: +SKIP
    torch.Size([32, 1])
    """

    def __init__(
        self,
        dataset_id: str,
        *,
        root: str | os.PathLike[str] | None = None,
        split_trajs: bool = False,
        download: bool = False,
        batch_size: int | None = None,
        sampler: Sampler | None = None,
        storage: Storage | None = None,
        transform: Callable[[Any], Any] | None = None,
        prefetch: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        include_infos: bool = True,
    ) -> None:
        if download:
            raise DatasetError(
                f"MinariDataset({dataset_id!r}, download=True): rlkernel never downloads datasets. Fetch it "
                f"yourself (`minari download {dataset_id}`, into $MINARI_DATASETS_PATH or "
                f"{default_root()}), then load it with download=False"
            )
        if storage is not None and cache_dir is not None:
            raise DatasetError("pass either storage= or cache_dir= (which makes a LazyMemmapStorage), not both")
        data_path = dataset_folder(dataset_id, root)
        self.dataset_id = dataset_id
        self.metadata: MinariMetadata = read_metadata(dataset_id, data_path)
        self.split_trajs = bool(split_trajs)
        self.from_cache = False
        buffer_args = {"sampler": sampler, "batch_size": batch_size, "transform": transform, "prefetch": prefetch}
        folder = None
        if cache_dir is not None:
            folder = cache_folder(cache_dir, self.metadata, split_trajs=self.split_trajs, infos=include_infos)
            rows = completed_rows(folder)
            if rows is not None:
                storage = LazyMemmapStorage(rows, scratch_dir=folder)
                if len(storage) == rows:  # a complete copy: the HDF5 file is not even opened
                    super().__init__(storage=storage, **buffer_args)
                    self.sampler.extend(torch.arange(rows))
                    self.from_cache = True
                    return
        with EpisodeFile(self.metadata, include_infos=include_infos) as source:
            steps = source.total_steps
            if steps == 0:
                raise DatasetError(f"{source.path}: the dataset holds no steps, there is nothing to sample")
            rows = sum(1 for ep in source.episodes if ep.steps) if self.split_trajs else steps
            if folder is not None:
                storage = LazyMemmapStorage(rows, scratch_dir=folder)
                storage.empty()  # an interrupted or stale fill: start over
            elif storage is None:
                storage = LazyTensorStorage(rows)
            else:
                _check_storage(storage, rows, dataset_id)
            super().__init__(storage=storage, **buffer_args)
            if self.split_trajs:
                self._fill_split(source, steps)
            else:
                for chunk in source.chunks(CHUNK_ROWS):
                    self.extend(chunk)
        if folder is not None:
            mark_complete(folder, rows)

    def _fill_split(self, source: EpisodeFile, steps: int) -> None:
        from rlkernel.collectors.trajectories import MASK_KEY, split_trajectories

        (flat,) = source.chunks(steps)
        self.extend(split_trajectories(flat, traj_key=EPISODE_KEY, mask_key=MASK_KEY))

    def __repr__(self) -> str:
        return (
            f"MinariDataset({self.dataset_id!r}, steps={self.metadata.total_steps}, "
            f"episodes={self.metadata.total_episodes}, storage={self.storage!r}, sampler={self.sampler!r}, "
            f"batch_size={self.batch_size})"
        )


def _check_storage(storage: Any, rows: int, dataset_id: str) -> None:
    if not isinstance(storage, Storage):
        raise DatasetError(f"MinariDataset({dataset_id!r}): storage must be an rlkernel Storage, got {storage!r}")
    if storage.max_size < rows:
        raise DatasetError(
            f"MinariDataset({dataset_id!r}): the storage holds at most {storage.max_size} rows but the dataset "
            f"has {rows}; a smaller storage would overwrite the first rows"
        )
    if len(storage):
        raise DatasetError(
            f"MinariDataset({dataset_id!r}): the storage already holds {len(storage)} rows; pass an empty "
            "storage, or cache_dir= to reuse a memory-mapped copy"
        )
