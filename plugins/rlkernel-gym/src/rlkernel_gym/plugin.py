"""The module named by the ``rlkernel`` entry point ``gym``: cheap, imports no backend.

Registers the pattern ``gym:*``: ``rlkernel.make_env("gym:CartPole-v1", num_envs=8)`` calls
``GymEnv("CartPole-v1", num_envs=8)``. The names provider lists ``gym:<id>`` for every id in
``gymnasium.registry``; it runs (and imports gymnasium) only when a name is looked up or the
names are expanded, never when plugins are discovered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import rlkernel

if TYPE_CHECKING:
    from rlkernel.registries import Registry

RLKERNEL_API_VERSION = 1


@rlkernel.hookimpl
def rlkernel_register(registry: Registry) -> None:
    """Register every gymnasium environment as ``gym:<id>`` and local Minari datasets (lazily)."""
    registry.envs.register(
        "gym:*",
        "rlkernel_gym.envs:GymEnv",
        names="rlkernel_gym.registry_names:registered_env_names",
        doc="Any environment of gymnasium's registry: gym:<id>, e.g. gym:CartPole-v1.",
    )
    registry.datasets.register(
        "minari:*",
        "rlkernel_gym.datasets:MinariDataset",
        names="rlkernel_gym.datasets:local_dataset_names",
        doc="Minari datasets in the local folder ($MINARI_DATASETS_PATH or ~/.minari/datasets): minari:<dataset_id>.",
    )
