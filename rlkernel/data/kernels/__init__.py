"""Tree kernels for prioritized replay, found through the ``kernels`` registry.

A tree kernel is registered under ``"<kind>:<implementation>"``: the core registers the
pure-torch ones as ``sum_tree:torch`` and ``min_tree:torch``; a compiled plugin (such as
``rlkernel-cext``) adds e.g. ``sum_tree:cpp``. Each name maps to a factory
``factory(capacity: int, dtype: torch.dtype = torch.float64)`` returning an object with

* ``capacity``, ``dtype``;
* ``update(index: LongTensor[k], value: Tensor[k]) -> None`` (a repeated index: the last
  one wins; the caller has checked the values);
* ``get(index: LongTensor[k]) -> Tensor[k]`` and ``values() -> Tensor[capacity]``;
* sum trees: ``total() -> float`` and ``find_prefixsum(mass: Tensor[k]) -> LongTensor[k]``,
  for each mass ``m`` in ``[0, total)`` the smallest ``i`` with ``sum(leaves[:i + 1]) > m``
  (the last non-zero leaf when rounding pushes ``m`` past the end);
* min trees: ``min() -> float`` (leaves never written hold ``+inf``);
* optionally, sum trees: ``find_with_values(mass) -> (LongTensor[k], Tensor[k])``, the
  index ``find_prefixsum`` gives and the values ``get`` gives for it, in one call (the
  prioritized sampler uses it when present: one pass over the tree instead of two);
* optionally, sum trees: ``update_with(other, index, value) -> bool``, ``update`` of
  itself and of the min tree ``other`` in one call; it returns False, doing nothing, when
  it cannot update ``other`` (then the sampler calls each tree's ``update``).

:func:`get_tree_kernel` picks one implementation, following ``RLKERNEL_KERNELS``::

    >>> factory = get_tree_kernel("sum_tree", impl="torch")
    >>> factory(8).capacity
    8
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable
from typing import Any

from rlkernel.data.errors import KernelError

__all__ = ["ENV_VAR", "KINDS", "get_tree_kernel", "tree_kernel_names"]

#: ``torch`` forces the pure-torch kernels, any other value (``cpp``) that implementation.
ENV_VAR = "RLKERNEL_KERNELS"
KINDS = ("sum_tree", "min_tree")
_TORCH_FALLBACK = {
    "sum_tree": "rlkernel.data.kernels.torch_trees:SumTree",
    "min_tree": "rlkernel.data.kernels.torch_trees:MinTree",
}


def _kernels_registry(registry: Any) -> Any:
    if registry is None:
        from rlkernel.registries import registry as process_registry

        registry = process_registry
    return registry.kernels


def tree_kernel_names(kind: str, *, registry: Any = None) -> list[str]:
    """The implementations registered for ``kind`` (``["cpp", "torch"]``), sorted."""
    if kind not in KINDS:
        raise KernelError(f"unknown tree kernel kind {kind!r}; kinds: {', '.join(KINDS)}")
    prefix = f"{kind}:"
    return sorted(n[len(prefix) :] for n in _kernels_registry(registry).names() if n.startswith(prefix))


def _torch_fallback(kind: str) -> Callable[..., Any]:
    module, attr = _TORCH_FALLBACK[kind].split(":")
    return getattr(importlib.import_module(module), attr)


def get_tree_kernel(kind: str, impl: str | None = None, *, registry: Any = None) -> Callable[..., Any]:
    """The factory of the ``kind`` tree (``"sum_tree"`` or ``"min_tree"``) to use.

    ``impl`` (or else the ``RLKERNEL_KERNELS`` environment variable) names the
    implementation: ``"torch"`` is the pure-torch one (always available), any other name
    must be registered as ``f"{kind}:{impl}"`` or a :class:`KernelError` says so. With
    neither, a registered non-torch implementation is preferred (``cpp`` first) and the
    pure-torch one is the fallback, also when the registry has no tree kernel at all or
    the preferred one fails to import (with a warning).

    ``registry`` defaults to the process-wide ``rlkernel.registry``.
    """
    names = tree_kernel_names(kind, registry=registry)
    kernels = _kernels_registry(registry)
    wanted = impl if impl is not None else (os.environ.get(ENV_VAR, "").strip() or None)
    if wanted is None:
        preferred = sorted((n for n in names if n != "torch"), key=lambda n: (n != "cpp", n))
        for name in preferred:
            try:
                return kernels[f"{kind}:{name}"]
            except Exception as err:  # a broken plugin must not break sampling
                warnings.warn(
                    f"tree kernel {kind}:{name} could not be loaded ({err}); using the pure-torch one",
                    RuntimeWarning,
                    stacklevel=2,
                )
        wanted = "torch"
    if wanted == "torch":
        return kernels[f"{kind}:torch"] if "torch" in names else _torch_fallback(kind)
    if wanted not in names:
        source = "impl=" if impl is not None else f"{ENV_VAR}="
        raise KernelError(
            f"{source}{wanted!r} asks for the {wanted!r} implementation of {kind}, but the kernels "
            f"registry has no {kind}:{wanted} (registered: {', '.join(names) or 'none'}, plus the "
            f"built-in 'torch'); install the plugin that provides it (rlkernel-cext for 'cpp') "
            f"or set {ENV_VAR}=torch"
        )
    try:
        return kernels[f"{kind}:{wanted}"]
    except Exception as err:
        raise KernelError(f"tree kernel {kind}:{wanted} is registered but cannot be loaded: {err}") from err
