"""The rlkernel plugin of rlkernel-cext: registers the C++ tree kernels, lazily.

Found through the ``rlkernel`` entry point ``cext``. Registration only records
``"module:attribute"`` strings: neither torch nor the compiled module is imported until
the sampler (or a user) looks a kernel up. Set ``RLKERNEL_KERNELS=torch`` to make the
core use its pure-torch kernels instead, or ``RLKERNEL_DISABLE_PLUGINS=cext`` to switch
the plugin off entirely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import rlkernel

if TYPE_CHECKING:
    from rlkernel.registries import Registry

RLKERNEL_API_VERSION = 1


@rlkernel.hookimpl
def rlkernel_register(registry: Registry) -> None:
    """Register the compiled sum tree and min tree as kernels."""
    registry.kernels.register(
        "sum_tree:cpp",
        "rlkernel_cext.trees:SumTree",
        doc="Sum tree with batched update and prefix-sum search, in C++ (float32/float64).",
    )
    registry.kernels.register(
        "min_tree:cpp",
        "rlkernel_cext.trees:MinTree",
        doc="Min tree with batched update, in C++ (float32/float64).",
    )
