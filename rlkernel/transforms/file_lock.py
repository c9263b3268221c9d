"""A lock between processes that survives any pickling: an ``flock`` on a file.

``multiprocessing`` locks can only be handed to processes at creation; a factory that
travels as bytes (``ParallelEnv`` sends its factories through cloudpickle) cannot carry
one. :class:`FileLock` is just a path, so it can: every process that enters it takes an
exclusive ``flock`` on the same file. POSIX only.

>>> import tempfile, os
>>> lock = FileLock(os.path.join(tempfile.mkdtemp(), "stats.lock"))
>>> with lock:
...     pass
"""

from __future__ import annotations

import os
from typing import Any

from rlkernel.transforms._utils import TransformError


class FileLock:
    """An exclusive lock on ``path`` shared by every process that uses the same path."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd: int | None = None
        self._pid: int | None = None

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked or unpickled copy opens its own
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    def __enter__(self) -> FileLock:
        try:
            import fcntl
        except ImportError as err:  # pragma: no cover - not POSIX
            raise TransformError("FileLock needs fcntl (POSIX); use a multiprocessing lock instead") from err
        fcntl.flock(self._descriptor(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self._descriptor(), fcntl.LOCK_UN)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"FileLock({self.path!r})"
