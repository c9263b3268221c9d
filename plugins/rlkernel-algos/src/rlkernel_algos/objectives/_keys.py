"""Key names for the losses: the error they raise, nested keys and their flat keyword names.

A loss reads nested TensorDict keys (``"observation"``, ``("next", "reward")``). Its
TensorDict-free call takes the same tensors as keyword arguments, named by joining the
parts of each key with ``_``: ``("next", "observation")`` is ``next_observation``. The
entries a loss reads only under ``"next"`` (``reward``, ``done``, ``terminated``,
``truncated``) may also be passed without the prefix (``reward=...``).
"""

from __future__ import annotations

from collections.abc import Iterable

from tensordict.utils import NestedKey, unravel_key

from rlkernel.errors import RLKernelError

__all__ = ["LossKeyError", "as_key", "flat_name", "flat_names", "next_key"]

# Keys that a loss only ever reads at the next step: they may be passed without "next_".
STEP_KEYS = ("reward", "done", "terminated", "truncated")


class LossKeyError(RLKernelError, KeyError):
    """A loss was given an unknown key name, or its input lacks an entry it reads.

    The message names the loss, the key and what was expected (the valid names, or the
    entries the input holds).
    """

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0]) if self.args else ""


def as_key(key: object, *, what: str) -> NestedKey:
    """Normalise a nested key (``"a"``, ``("a", "b")``); raise :class:`LossKeyError` otherwise."""
    if isinstance(key, str) or (isinstance(key, tuple) and key and all(isinstance(k, str) for k in key)):
        return unravel_key(key)
    raise LossKeyError(f"{what}: a key is a string or a non-empty tuple of strings, got {key!r}")


def next_key(key: NestedKey) -> tuple[str, ...]:
    """``key`` under ``"next"``: ``"reward"`` -> ``("next", "reward")``."""
    return ("next", key) if isinstance(key, str) else ("next", *key)


def flat_name(key: NestedKey) -> str:
    """The keyword name of a nested key: its parts joined by ``_``."""
    return key if isinstance(key, str) else "_".join(key)


def flat_names(keys: Iterable[NestedKey]) -> dict[str, NestedKey]:
    """Map each keyword name to its nested key, including the un-prefixed step keys.

    >>> flat_names(["observation", ("next", "observation"), ("next", "reward")])
    {'observation': 'observation', 'next_observation': ('next', 'observation'), \
'next_reward': ('next', 'reward'), 'reward': ('next', 'reward')}
    """
    keys = list(keys)
    names: dict[str, NestedKey] = {flat_name(k): k for k in keys}
    for key in keys:
        if isinstance(key, tuple) and key[0] == "next":
            short = flat_name(key[1:] if len(key) > 2 else key[1])
            last = key[-1]
            if last in STEP_KEYS and short not in names:
                names[short] = key
    return names
