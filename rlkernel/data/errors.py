"""Errors raised by the replay buffers, their storages, samplers, writers and kernels.

Each derives from :class:`rlkernel.errors.RLKernelError` (catch everything rlkernel raises
on purpose) and from the built-in exception a Python programmer would expect::

    >>> from rlkernel.data.errors import EmptyBufferError, BufferError
    >>> issubclass(EmptyBufferError, BufferError) and issubclass(BufferError, ValueError)
    True
"""

from __future__ import annotations

from rlkernel.errors import RLKernelError

__all__ = [
    "BufferError",
    "BufferIndexError",
    "EmptyBufferError",
    "KernelError",
    "PriorityError",
    "StorageError",
]


class BufferError(RLKernelError, ValueError):  # shadows the builtin on purpose: the usual name
    """A replay buffer, storage, sampler or writer got an argument it cannot use."""


class StorageError(BufferError):
    """Data does not fit the storage: wrong type, keys, shapes or dtypes, or a bad index."""


class EmptyBufferError(BufferError):
    """Sampling was asked of a buffer (or a storage) that holds nothing yet."""


class PriorityError(BufferError):
    """A priority is negative, infinite or NaN, or does not match its indices."""


class KernelError(RLKernelError, RuntimeError):
    """A tree kernel was asked for that is not installed, or is broken."""


class BufferIndexError(BufferError, IndexError):
    """A row index is out of range, or not an integer."""
