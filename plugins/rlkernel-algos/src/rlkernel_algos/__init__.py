"""rlkernel-algos: modules, distributions, exploration, value estimators and losses.

The package is lazy: ``import rlkernel_algos`` imports none of its sub-packages. Import
what you use from the sub-package that holds it::

    from rlkernel_algos.modules import MLP, ProbabilisticActor, TanhNormal
    from rlkernel_algos.value import GAE, vec_generalized_advantage_estimate

or read it as an attribute (``rlkernel_algos.modules``, ``rlkernel_algos.value``,
``rlkernel_algos.objectives``): the sub-package is imported on first access.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.1.0"

# Sub-packages served on first attribute access. ``objectives`` (the losses) is found the
# same way as the others, so that each sub-package can be added without editing this file.
_SUBPACKAGES = ("modules", "value", "objectives", "trainers", "loggers", "recipes")


def __getattr__(name: str) -> ModuleType:
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBPACKAGES})


__all__ = ["__version__"]
