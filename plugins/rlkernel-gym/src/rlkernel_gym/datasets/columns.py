"""Which HDF5 dataset fills which TensorDict entry: the read plan of a Minari dataset.

A Minari episode group ``episode_<i>`` holding ``T`` steps has::

    observations    T + 1 rows (reset observation, then one per step); a group for Dict
                    spaces (one dataset per entry), with ``_index_<j>`` entries for Tuple
    actions         T rows (same nesting as observations)
    rewards         T rows
    terminations    T rows of bools
    truncations     T rows of bools
    infos           optional group; each entry T + 1 rows (reset info, then one per step)

and rlkernel's step layout, one row per step ``t``, is (as :class:`~rlkernel_gym.GymEnv`
writes it)::

    observation (or the Dict entries)   observations[t]
    action                              actions[t]         (Discrete values 0-based)
    done, terminated, truncated         False              (a stored step never starts done)
    info/<entry>                        infos/<entry>[t]
    episode                             i
    next/observation (or Dict entries)  observations[t + 1]
    next/reward                         rewards[t]         (float32, shape (1,))
    next/terminated, next/truncated     terminations[t], truncations[t]   (shape (1,))
    next/done                           terminated or truncated
    next/info/<entry>                   infos/<entry>[t + 1]

A :class:`Column` is one such entry read from one HDF5 dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlkernel_gym.datasets.errors import DatasetFormatError
from rlkernel_gym.datasets.metadata import MinariMetadata

__all__ = ["EPISODE_KEY", "Column", "plan_columns"]

Key = tuple[str, ...]
EPISODE_KEY = "episode"
INFO_KEY = "info"
#: Root keys of the step layout that a Dict observation entry may not take.
RESERVED = frozenset({"action", "next", "done", "terminated", "truncated", EPISODE_KEY, INFO_KEY})


@dataclass(frozen=True)
class Column:
    """One TensorDict entry, read from the HDF5 dataset ``source`` of each episode group.

    Row ``t`` of the entry is row ``t + shift`` of the source, which holds ``T + extra``
    rows in an episode of ``T`` steps. ``event`` and ``dtype`` are the entry's row shape
    and dtype; ``offset`` (a Discrete ``start``) is subtracted after reading; ``flag``
    columns are bools read as ``value != 0``; ``image`` columns may hold JPEG frames.
    """

    key: Key
    source: str
    shift: int
    extra: int
    event: tuple[int, ...]
    dtype: np.dtype
    offset: np.ndarray | None = None
    flag: bool = False
    image: bool = False


def _source(root: str, path: tuple[object, ...]) -> str:
    parts = [root] + [f"_index_{p}" if isinstance(p, int) else str(p) for p in path]
    return "/".join(parts)


def _is_image(event: tuple[int, ...], dtype: np.dtype) -> bool:
    return dtype == np.uint8 and len(event) in (2, 3) and event[0] >= 32 and event[1] >= 32


def plan_columns(metadata: MinariMetadata) -> list[Column]:
    """The columns of the observations, actions, rewards and done flags (infos are found
    per file by :func:`info_columns`)."""
    columns: list[Column] = []
    obs = metadata.observation_layout
    clash = sorted({leaf.key[0] for leaf in obs.leaves} & RESERVED)
    if clash:
        raise DatasetFormatError(
            f"{metadata.data_path}: the Dict observation space has entries {clash}, which clash with the "
            f"step layout's own keys {sorted(RESERVED)}"
        )
    for leaf in obs.leaves:
        source = _source("observations", leaf.path)
        event = tuple(leaf.spec.shape)
        image = metadata.jpeg_encoding and _is_image(event, leaf.dtype)
        for shift, key in ((0, leaf.key), (1, ("next", *leaf.key))):
            columns.append(Column(key, source, shift, 1, event, leaf.dtype, leaf.offset, image=image))
    act = metadata.action_layout
    for leaf in act.leaves:
        event = tuple(leaf.spec.shape)
        image = metadata.jpeg_encoding and _is_image(event, leaf.dtype)
        source = _source("actions", leaf.path)
        columns.append(Column(leaf.key, source, 0, 0, event, leaf.dtype, leaf.offset, image=image))
    columns.append(Column(("next", "reward"), "rewards", 0, 0, (1,), np.dtype(np.float32)))
    columns.append(Column(("next", "terminated"), "terminations", 0, 0, (1,), np.dtype(bool), flag=True))
    columns.append(Column(("next", "truncated"), "truncations", 0, 0, (1,), np.dtype(bool), flag=True))
    return columns


def info_columns(entries: list[tuple[str, tuple[int, ...], np.dtype, int]]) -> list[Column]:
    """Columns for the info entries ``(path under infos/, row shape, dtype, extra rows)``:
    ``T + 1`` rows give ``info/<path>`` and ``next/info/<path>``, ``T`` rows only the latter."""
    columns = []
    for path, event, dtype, extra in entries:
        key = (INFO_KEY, *path.split("/"))
        source = f"infos/{path}"
        if extra == 1:
            columns.append(Column(key, source, 0, 1, event, dtype))
        columns.append(Column(("next", *key), source, extra, extra, event, dtype))
    return columns
