"""Fast reads and writes of TensorDict leaves on the collector's hot path.

``TensorDict.get``/``set`` parse and validate the key and the value on every call (about
1.5 us for a string key, 3 us for a nested one). On a plain ``TensorDict`` the collector
reads and writes through tensordict's key-tuple methods instead (about 0.4 us), with keys
turned into tuples once; any other ``TensorDictBase`` goes through the public methods.
Writes through :func:`put` skip validation: use it only for values taken from a
TensorDict of the same batch size (the environment's output, checked by ``EnvBase``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.envs.step import NestedKey

__all__ = ["as_path", "gather", "put", "put_many"]

_FAST = hasattr(TensorDict, "_get_tuple") and hasattr(TensorDict, "_set_tuple")


def as_path(key: NestedKey) -> tuple[str, ...]:
    """``"a"`` -> ``("a",)``; a tuple key stays as it is."""
    return (key,) if isinstance(key, str) else tuple(key)


def gather(td: TensorDictBase, paths: Sequence[tuple[str, ...]]) -> list[torch.Tensor | None]:
    """The values at ``paths`` (``None`` where a key is missing)."""
    if _FAST and type(td) is TensorDict:
        get = td._get_tuple
        return [get(path, None) for path in paths]
    return [td.get(path, None) for path in paths]


def put(td: TensorDictBase, path: tuple[str, ...], value: torch.Tensor | TensorDictBase) -> None:
    """``td[path] = value`` without validation (see the module docstring)."""
    if _FAST and type(td) is TensorDict:
        td._set_tuple(path, value, validated=True, inplace=False)
    else:
        td.set(path, value)


def put_many(td: TensorDictBase, pairs: Sequence[tuple[tuple[str, ...], int]], values: Sequence[torch.Tensor]) -> None:
    """``td[path] = values[index]`` for each ``(path, index)`` of ``pairs``, without validation."""
    if _FAST and type(td) is TensorDict:
        set_tuple = td._set_tuple
        for path, index in pairs:
            set_tuple(path, values[index], validated=True, inplace=False)
    else:
        for path, index in pairs:
            td.set(path, values[index])
