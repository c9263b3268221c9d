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
    from rlkernel.registries import Registry

RLKERNEL_API_VERSION = 1


@rlkernel.hookimpl
def rlkernel_register(registry: Registry) -> None:
    """Register the losses (and, later, the recipes) of rlkernel-algos, lazily."""
    # ---- losses (rlkernel_algos.objectives) ---------------------------------------------
    # The objectives' registrations go here, one per loss, e.g.
    #   registry.losses.register("ppo", "rlkernel_algos.objectives:ClipPPOLoss")
    # ---- end of losses ------------------------------------------------------------------
