"""Lazy module attributes: keep ``import package`` cheap, import what is used on first use.

Packages (the core's and plugins') list their public names and where each lives; the
module is imported the first time the name is read::

    # mypackage/__init__.py
    from rlkernel.lazy import lazy_exports

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"GymEnv": "mypackage.envs"}, globals())
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, names: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """Build a module ``__getattr__``, ``__dir__`` and ``__all__`` serving ``names`` lazily.

    ``names`` maps an attribute to the module defining it; when the attribute is the last
    component of that module's name (``{"envs": "pkg.envs"}``), the module itself is served.
    The value is cached in ``namespace`` (the package's ``globals()``) after the first read.
    """

    def __getattr__(name: str) -> Any:
        module_name = names.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(module_name)
        value = module if module_name.endswith("." + name) else getattr(module, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__, sorted(names)
