"""The names ``dmc:*/*`` serves: ``dmc:<domain>/<task>`` for every task of the suite.

Imported only when the registry needs the names, never during plugin discovery.
"""

from __future__ import annotations

from dm_control import suite

PREFIX = "dmc:"


def registered_env_names() -> list[str]:
    """``["dmc:acrobot/swingup", ..., "dmc:walker/walk", ...]``.

    >>> "dmc:cartpole/swingup" in registered_env_names()
    True
    """
    return [f"{PREFIX}{domain}/{task}" for domain, task in suite.ALL_TASKS]
