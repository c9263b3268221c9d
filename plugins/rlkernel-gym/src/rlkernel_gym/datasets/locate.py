"""Where Minari datasets live on disk, and which ones are there.

Cheap on purpose (standard library only): the registry's names provider for ``minari:*``
runs :func:`local_dataset_names` whenever a ``minari:`` name is looked up.

Minari's layout, which this module follows exactly::

    <root>/                              MINARI_DATASETS_PATH, else ~/.minari/datasets
      <namespace>/.../<name>-v<N>/       the dataset id, namespaces are folders
        data/metadata.json               dataset-level metadata (spaces, totals, env spec)
        data/main_data.hdf5              the episodes

A folder holding a ``data`` folder is a dataset (Minari's own rule); other non-hidden
folders are namespaces and are searched below.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

from rlkernel_gym.datasets.errors import DatasetError, DatasetNotFoundError

__all__ = [
    "DATASETS_PATH_ENV",
    "PREFIX",
    "dataset_folder",
    "default_root",
    "list_local_datasets",
    "local_dataset_names",
    "not_found",
]

#: The environment variable Minari reads for its local datasets folder.
DATASETS_PATH_ENV = "MINARI_DATASETS_PATH"
#: The registry prefix: ``minari:<dataset_id>``.
PREFIX = "minari:"

_ID_RE = re.compile(r"[-\w]+(?:/[-\w]+)*")
_MAX_DEPTH = 8  # namespaces nest; a bound keeps a misplaced root from walking a whole disk


def default_root() -> Path:
    """Minari's local datasets folder: ``$MINARI_DATASETS_PATH``, else ``~/.minari/datasets``.

    Unlike Minari, never creates the folder.
    """
    path = os.environ.get(DATASETS_PATH_ENV)
    if path:
        return Path(path).expanduser()
    return Path.home() / ".minari" / "datasets"


def _root_label(root: str | os.PathLike[str] | None) -> tuple[Path, str]:
    if root is not None:
        return Path(root).expanduser(), "the root argument"
    if os.environ.get(DATASETS_PATH_ENV):
        return default_root(), f"${DATASETS_PATH_ENV}"
    return default_root(), f"Minari's default folder (set ${DATASETS_PATH_ENV} to change it)"


def check_dataset_id(dataset_id: object) -> str:
    """Return ``dataset_id`` if it is a Minari id (``[namespace/]name[-vN]``), else raise."""
    if not isinstance(dataset_id, str) or not _ID_RE.fullmatch(dataset_id):
        raise DatasetError(
            f"{dataset_id!r} is not a Minari dataset id: expected '(namespace/)name-v<version>' made of "
            "letters, digits, '_' and '-', e.g. 'D4RL/door/human-v2' or 'cartpole/random-v0'"
        )
    return dataset_id


def dataset_folder(dataset_id: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The ``data`` folder of ``dataset_id`` under ``root`` (default: :func:`default_root`).

    Raises :class:`DatasetNotFoundError` (naming the folder searched, the local datasets
    and the closest ids) when there is no such folder.
    """
    check_dataset_id(dataset_id)
    base, _ = _root_label(root)
    folder = base / dataset_id / "data"
    if not folder.is_dir():
        raise not_found(dataset_id, root)
    return folder


def list_local_datasets(root: str | os.PathLike[str] | None = None) -> list[str]:
    """The ids of the datasets under ``root`` (default: :func:`default_root`), sorted.

    >>> import tempfile
    >>> list_local_datasets(tempfile.mkdtemp())
    []
    """
    base, _ = _root_label(root)
    found: list[str] = []

    def walk(folder: Path, parts: tuple[str, ...]) -> None:
        if len(parts) > _MAX_DEPTH:
            return
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for child in children:
            if (child / "data").is_dir():
                found.append("/".join((*parts, child.name)))
            else:
                walk(child, (*parts, child.name))

    if base.is_dir():
        walk(base, ())
    return sorted(found)


def local_dataset_names() -> list[str]:
    """``["minari:<id>", ...]`` for the datasets in Minari's local folder (the names provider
    of the registry's ``minari:*`` pattern)."""
    return [PREFIX + dataset_id for dataset_id in list_local_datasets()]


def not_found(dataset_id: str, root: str | os.PathLike[str] | None = None) -> DatasetNotFoundError:
    """The error for a dataset id that is not under ``root``: names the folder searched,
    what is there and the closest ids."""
    base, label = _root_label(root)
    if not base.is_dir():
        where = f"the datasets folder {str(base)!r} ({label}) does not exist"
    else:
        local = list_local_datasets(root)
        close = difflib.get_close_matches(dataset_id, local, n=3, cutoff=0.4)
        shown = ", ".join(local[:20]) + (f", ... ({len(local)} in all)" if len(local) > 20 else "")
        where = f"searched {str(base / dataset_id / 'data')!r} ({label}); local datasets: {shown or 'none'}"
        if close:
            where += f"; closest: {', '.join(close)}"
    return DatasetNotFoundError(
        f"no Minari dataset {dataset_id!r}: {where}. rlkernel never downloads datasets: fetch it "
        f"with `minari download {dataset_id}` (into ${DATASETS_PATH_ENV}) or pass root= the folder holding it"
    )
