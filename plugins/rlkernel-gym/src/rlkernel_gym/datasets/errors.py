"""The errors raised when reading offline datasets.

Each derives from :class:`rlkernel.errors.RLKernelError` and from the built-in exception a
Python programmer would expect::

    >>> issubclass(DatasetNotFoundError, FileNotFoundError), issubclass(DatasetFormatError, ValueError)
    (True, True)
"""

from __future__ import annotations

from rlkernel.errors import RLKernelError

__all__ = ["DatasetError", "DatasetFormatError", "DatasetNotFoundError"]


class DatasetError(RLKernelError, ValueError):
    """A dataset was asked for with an argument rlkernel cannot use (``download=True``, a
    malformed id, an unusable storage)."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """No dataset of that id under the folder searched; the message names the folder, the
    local datasets and the closest ids."""


class DatasetFormatError(DatasetError):
    """A dataset's files are missing, incomplete, corrupt or in a format rlkernel cannot
    read; the message names the file and what is wrong in it."""
