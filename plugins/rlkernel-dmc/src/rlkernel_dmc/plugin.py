"""The module named by the ``rlkernel`` entry point ``dmc``: cheap, imports no backend.

Registers the pattern ``dmc:*/*``: ``rlkernel.make_env("dmc:cartpole/swingup")`` calls
``DMControlEnv("cartpole", "swingup")``. The names provider lists ``dmc:<domain>/<task>`` for
every task of ``dm_control.suite.ALL_TASKS``; it runs (importing dm_control) only when a name
is looked up or the names are expanded, never during plugin discovery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import rlkernel

if TYPE_CHECKING:
    from rlkernel.registries import Registry

RLKERNEL_API_VERSION = 1


@rlkernel.hookimpl
def rlkernel_register(registry: Registry) -> None:
    """Register every DeepMind Control Suite task as ``dmc:<domain>/<task>`` (lazily)."""
    registry.envs.register(
        "dmc:*/*",
        "rlkernel_dmc.envs:DMControlEnv",
        names="rlkernel_dmc.registry_names:registered_env_names",
        doc="A DeepMind Control Suite task: dmc:<domain>/<task>, e.g. dmc:cartpole/swingup.",
    )
