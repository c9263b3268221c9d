"""A memory-mapped copy of a Minari dataset, reused while its source files are unchanged.

Folder: ``<cache_dir>/<dataset_id>/<fingerprint>/``, holding a
:class:`~rlkernel.data.LazyMemmapStorage` and, once it is completely written, the marker
``rlkernel-minari.json`` (the row count). The fingerprint hashes what the copy depends on:
the reader's format version, the source file's path, size and modification time, the
content of ``metadata.json`` and the layout options. A changed source gets a new folder;
a fill that was interrupted (fewer rows than the marker says, or no marker) is redone.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from rlkernel_gym.datasets.errors import DatasetFormatError
from rlkernel_gym.datasets.hdf5_reader import MAIN_FILE
from rlkernel_gym.datasets.metadata import METADATA_FILE, MinariMetadata

__all__ = ["cache_folder", "completed_rows", "mark_complete"]

#: Bumped whenever the cached layout changes, so that old copies are not reused.
CACHE_FORMAT = 1
MARKER = "rlkernel-minari.json"


def cache_folder(cache_dir: str | os.PathLike[str], metadata: MinariMetadata, **options: object) -> Path:
    """The folder of the copy of ``metadata``'s dataset made with the layout ``options``."""
    main_file = metadata.data_path / MAIN_FILE
    try:
        stat = main_file.stat()
    except OSError as err:
        raise DatasetFormatError(f"{main_file}: missing or unreadable ({err.strerror})") from err
    meta_digest = hashlib.sha256((metadata.data_path / METADATA_FILE).read_bytes()).hexdigest()
    key = json.dumps(
        [CACHE_FORMAT, str(main_file.resolve()), stat.st_size, stat.st_mtime_ns, meta_digest, sorted(options.items())]
    )
    return Path(cache_dir) / metadata.dataset_id / hashlib.sha256(key.encode()).hexdigest()[:20]


def completed_rows(folder: Path) -> int | None:
    """The row count of a completely written copy in ``folder``, else ``None``."""
    try:
        content = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    rows = content.get("rows") if isinstance(content, dict) else None
    return rows if isinstance(rows, int) and not isinstance(rows, bool) and rows > 0 else None


def mark_complete(folder: Path, rows: int) -> None:
    """Record that the copy in ``folder`` holds all its ``rows`` (written atomically)."""
    tmp = folder / (MARKER + ".tmp")
    tmp.write_text(json.dumps({"format": CACHE_FORMAT, "rows": rows}))
    os.replace(tmp, folder / MARKER)
