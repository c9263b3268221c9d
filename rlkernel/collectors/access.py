"""Fast reads and writes of TensorDict leaves on the collector's hot path.

``TensorDict.get``/``set`` parse and validate the key and the value on every call (about
1.5 us for a string key, 3 us for a nested one). On a plain ``TensorDict`` the collector
reads and writes with keys turned into tuples once, through
:mod:`rlkernel._compat.tensordict` (about 0.4 us); any other ``TensorDictBase`` goes
through the public methods. Writes through :func:`put` skip validation: use it only for
values taken from a TensorDict of the same batch size (the environment's output, checked
by ``EnvBase``).
"""

from __future__ import annotations

from rlkernel._compat import tensordict as td_compat
from rlkernel.envs.step import NestedKey

__all__ = ["as_path", "gather", "put", "put_many"]


def as_path(key: NestedKey) -> tuple[str, ...]:
    """``"a"`` -> ``("a",)``; a tuple key stays as it is."""
    return (key,) if isinstance(key, str) else tuple(key)


#: The values at ``paths`` (``None`` where a key is missing).
gather = td_compat.get_paths
#: ``put(td, path, value)``: ``td[path] = value`` without validation (see the module docstring).
put = td_compat.set_validated
#: ``put_many(td, pairs, values)``: ``td[path] = values[index]`` for each ``(path, index)``, without validation.
put_many = td_compat.set_many_validated
