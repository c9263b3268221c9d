"""The core's own plugin: built-in pieces registered through the public hook.

Like pytest's default plugins, the core's transforms, kernels and test environment are
registered exactly as a third-party plugin registers its own, by this module's
``rlkernel_register`` hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlkernel.hookspecs import hookimpl

if TYPE_CHECKING:
    from rlkernel.registries import Registry

RLKERNEL_API_VERSION = 1


@hookimpl
def rlkernel_register(registry: Registry) -> None:
    """Register the core's environments, transforms and kernels (all lazily)."""
    registry.envs.register(
        "testing:counting",
        "rlkernel.testing:CountingEnv",
        doc="A tiny deterministic environment for tests and plugin authors.",
    )
    registry.envs.register(
        "testing:cartpole",
        "rlkernel.testing:CartPoleEnv",
        doc="Cart-pole balancing in pure torch (two discrete actions, optional pixels), for tests.",
    )
    registry.envs.register(
        "testing:cartpole-continuous",
        "rlkernel.testing:ContinuousCartPoleEnv",
        doc="The pure-torch cart-pole with a continuous force in [-1, 1], for tests.",
    )
    registry.kernels.register("sum_tree:torch", "rlkernel.data.kernels.torch_trees:SumTree")
    registry.kernels.register("min_tree:torch", "rlkernel.data.kernels.torch_trees:MinTree")
    from rlkernel.transforms import TRANSFORM_NAMES  # a tuple of names: imports no torch

    for name in TRANSFORM_NAMES:
        registry.transforms.register(name, f"rlkernel.transforms:{name}")
