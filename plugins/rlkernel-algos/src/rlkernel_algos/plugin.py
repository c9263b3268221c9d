"""The rlkernel plugin of rlkernel-algos: found through the ``rlkernel`` entry point ``algos``.

Importing this module is cheap (no torch, no sub-package): registration only records lazy
``"module:attribute"`` strings, imported the first time a name is looked up::

    >>> import rlkernel
    >>> loss_cls = rlkernel.registry.losses["ppo"]      # imports rlkernel_algos.objectives now

Modules, distributions, exploration modules and value estimators are not looked up by name:
import them from :mod:`rlkernel_algos.modules` and :mod:`rlkernel_algos.value`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import rlkernel

if TYPE_CHECKING:
    import argparse

    from rlkernel.registries import Registry

RLKERNEL_API_VERSION = 1


@rlkernel.hookimpl
def rlkernel_register(registry: Registry) -> None:
    """Register the losses, recipes and loggers of rlkernel-algos, lazily."""
    # ---- losses (rlkernel_algos.objectives) ---------------------------------------------
    registry.losses.register("ppo", "rlkernel_algos.objectives:ClipPPOLoss")
    registry.losses.register("clip_ppo", "rlkernel_algos.objectives:ClipPPOLoss")
    registry.losses.register("kl_ppo", "rlkernel_algos.objectives:KLPENPPOLoss")
    registry.losses.register("a2c", "rlkernel_algos.objectives:A2CLoss")
    registry.losses.register("reinforce", "rlkernel_algos.objectives:ReinforceLoss")
    registry.losses.register("dqn", "rlkernel_algos.objectives:DQNLoss")
    registry.losses.register("distributional_dqn", "rlkernel_algos.objectives:DistributionalDQNLoss")
    registry.losses.register("ddpg", "rlkernel_algos.objectives:DDPGLoss")
    registry.losses.register("td3", "rlkernel_algos.objectives:TD3Loss")
    registry.losses.register("sac", "rlkernel_algos.objectives:SACLoss")
    registry.losses.register("discrete_sac", "rlkernel_algos.objectives:DiscreteSACLoss")
    # ---- end of losses ------------------------------------------------------------------
    for recipe in ("ppo", "a2c", "dqn", "ddpg", "td3", "sac"):
        registry.algos.register(recipe, f"rlkernel_algos.recipes.{recipe}:RECIPE")
    registry.loggers.register("csv", "rlkernel_algos.loggers:CSVLogger")
    registry.loggers.register("tensorboard", "rlkernel_algos.loggers:TensorboardLogger")
    registry.loggers.register("wandb", "rlkernel_algos.loggers:WandbLogger")


@rlkernel.hookimpl
def rlkernel_add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``rlkernel train`` and ``rlkernel eval`` (their module imports no torch)."""
    from rlkernel_algos.cli import add_commands

    add_commands(commands)
