"""Exploration modes: how policies act (sample, or take the mode/mean/deterministic action).

rlkernel reuses tensordict's interaction type, so every ``tensordict.nn`` probabilistic
module, every rlkernel exploration module and every collector reads the same setting::

    >>> from rlkernel.exploration import ExplorationType, set_exploration_type, exploration_type
    >>> with set_exploration_type(ExplorationType.DETERMINISTIC):
    ...     exploration_type()
    <InteractionType.DETERMINISTIC: 'deterministic'>

``set_exploration_type`` works as a context manager and as a decorator. Outside any
context, :func:`exploration_type` returns :data:`DEFAULT_EXPLORATION_TYPE` (``RANDOM``).
"""

from __future__ import annotations

from tensordict.nn import InteractionType as ExplorationType
from tensordict.nn import set_interaction_type as set_exploration_type

from rlkernel._compat.tensordict import interaction_type as _interaction_type

DEFAULT_EXPLORATION_TYPE = ExplorationType.RANDOM


def exploration_type() -> ExplorationType:
    """The exploration type in force (``RANDOM`` when none was set)."""
    current = _interaction_type()
    return DEFAULT_EXPLORATION_TYPE if current is None else current


__all__ = ["DEFAULT_EXPLORATION_TYPE", "ExplorationType", "exploration_type", "set_exploration_type"]
