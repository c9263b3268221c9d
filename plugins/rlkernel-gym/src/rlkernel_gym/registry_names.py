"""The names ``gym:*`` serves: one per id in ``gymnasium.registry``.

This module is imported only when the registry needs the names (a lookup such as
``"gym:CartPole-v1" in rlkernel.registry.envs``), never during plugin discovery. The registry
is read on every call, so ids registered with ``gymnasium.register`` later are found too.
"""

from __future__ import annotations

import gymnasium

PREFIX = "gym:"


def registered_env_names() -> list[str]:
    """``["gym:Acrobot-v1", "gym:CartPole-v1", ...]``: every id gymnasium can make.

    >>> "gym:CartPole-v1" in registered_env_names()
    True
    """
    return [PREFIX + env_id for env_id in gymnasium.registry]
