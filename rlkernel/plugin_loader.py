"""Plugin discovery: built-ins first, then the ``rlkernel`` entry-point group.

Discovery is forgiving. A plugin that cannot be imported, declares an API version this
core does not support, or raises in its registration hook is skipped with one warning;
everything it had registered is withdrawn and ``rlkernel plugins`` shows why. Set
``RLKERNEL_DISABLE_PLUGINS=name1,name2`` (entry-point or distribution names, or ``all``
for every installed plugin) to switch plugins off.
"""

from __future__ import annotations

import os
import traceback
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from rlkernel import hookspecs
from rlkernel._version import API_VERSION, SUPPORTED_API_VERSIONS, __version__
from rlkernel.registries import KINDS, Registry

ENTRY_POINT_GROUP = "rlkernel"
DISABLE_ENV_VAR = "RLKERNEL_DISABLE_PLUGINS"
#: The core's own plugins, registered through the same hook as third-party ones.
BUILTIN_PLUGINS = (("core", "rlkernel.builtins"),)


class PluginWarning(UserWarning):
    """Emitted once for each plugin that is skipped because it failed."""


@dataclass
class PluginInfo:
    """What discovery knows about one plugin."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    status: str = "pending"  # "loaded", "failed" or "disabled"
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "loaded"


def disabled_plugins() -> set[str]:
    """The plugin names switched off by ``RLKERNEL_DISABLE_PLUGINS``."""
    raw = os.environ.get(DISABLE_ENV_VAR, "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def plugin_manager(registry: Registry) -> pluggy.PluginManager:
    """The pluggy manager holding ``registry``'s plugins (made on first use)."""
    if registry._manager is None:
        manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        registry._manager = manager
    return registry._manager


def _check_api_version(module: Any, name: str) -> None:
    declared = getattr(module, "RLKERNEL_API_VERSION", None)
    if declared is None:
        raise ImportError(
            f"plugin {name!r} does not declare the core API version it needs; add "
            f"'RLKERNEL_API_VERSION = {API_VERSION}' to its plugin module"
        )
    if declared not in SUPPORTED_API_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_API_VERSIONS))
        raise ImportError(
            f"plugin {name!r} needs rlkernel API version {declared}, but rlkernel "
            f"{__version__} provides API version {supported}; install a version of the "
            "plugin made for this rlkernel, or upgrade rlkernel"
        )


def register_module(registry: Registry, module: Any, name: str, info: PluginInfo | None = None) -> PluginInfo:
    """Register one plugin module with pluggy and run its registration hook.

    On any failure the plugin is unregistered, what it registered is withdrawn and the
    returned :class:`PluginInfo` carries the error; one :class:`PluginWarning` is emitted.
    """
    if info is None:
        module_name = module.__name__ if isinstance(module, ModuleType) else type(module).__name__
        info = PluginInfo(name=name, module=module_name)
    if all(p.name != info.name for p in registry._plugins):
        registry._plugins.append(info)
    manager = plugin_manager(registry)
    registry.current_plugin = name
    try:
        _check_api_version(module, name)
        manager.register(module, name=name)
        unknown = [h.name for h in manager.get_hookcallers(module) or () if h.spec is None]
        if unknown:
            raise pluggy.PluginValidationError(
                module, f"unknown hook(s) {', '.join(unknown)}; the hooks are listed in rlkernel.hookspecs"
            )
        for impl in manager.hook.rlkernel_register.get_hookimpls():
            if impl.plugin is module:
                kwargs = {"registry": registry}
                impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        info.status = "loaded"
    except Exception as err:
        if manager.is_registered(module):
            manager.unregister(module)
        for kind in KINDS:
            registry[kind].withdraw_plugin(name)
        info.registered.clear()
        _fail(info, err)
    finally:
        registry.current_plugin = None
    return info


def _fail(info: PluginInfo, err: BaseException) -> None:
    info.status = "failed"
    where = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    at = f" (at {where.filename}:{where.lineno})" if where else ""
    info.error = f"{type(err).__name__}: {err}{at}"
    dist = f" from {info.distribution}" if info.distribution else ""
    warnings.warn(
        f"rlkernel plugin {info.name!r}{dist} was skipped: {info.error}. "
        f"Run 'rlkernel plugins' for details or set {DISABLE_ENV_VAR}={info.name} to silence this.",
        PluginWarning,
        stacklevel=4,
    )


def _entry_points() -> list[metadata.EntryPoint]:
    seen: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        seen.setdefault(ep.name, ep)  # the first on sys.path wins, as for imports
    return sorted(seen.values(), key=lambda ep: ep.name)


def load_all(registry: Registry) -> None:
    """Register the built-in plugins, then every installed, enabled plugin."""
    import importlib

    for name, module_name in BUILTIN_PLUGINS:
        info = PluginInfo(name=name, module=module_name, distribution="rlkernel", version=__version__)
        try:
            module = importlib.import_module(module_name)
        except Exception as err:
            registry._plugins.append(info)
            _fail(info, err)
            continue
        register_module(registry, module, name, info)

    disabled = disabled_plugins()
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            name=ep.name,
            module=ep.value,
            distribution=dist.name if dist else None,
            version=dist.version if dist else None,
        )
        registry._plugins.append(info)
        if {"all", ep.name, info.distribution} & disabled:
            info.status = "disabled"
            info.error = f"disabled by {DISABLE_ENV_VAR}"
            continue
        try:
            module = ep.load()
        except Exception as err:
            _fail(info, err)
            continue
        register_module(registry, module, ep.name, info)
