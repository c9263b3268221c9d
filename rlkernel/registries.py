"""Named registries: where plugins announce their factories and users look them up.

The process-wide :data:`registry` holds one :class:`NamedRegistry` per kind of thing
(``envs``, ``transforms``, ``kernels``, ``losses``, ``algos``, ``datasets``, ``loggers``).
Plugins are discovered lazily, the first time one of them is read::

    >>> import rlkernel
    >>> "testing:counting" in rlkernel.registry.envs
    True
    >>> env = rlkernel.make_env("testing:counting", max_count=3)

A factory is a callable or a lazy ``"module:attribute"`` string; the string is imported
the first time the name is looked up, never at registration.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rlkernel.errors import PluginError, RegistryError, UnknownNameError

if TYPE_CHECKING:
    from rlkernel.plugin_loader import PluginInfo

KINDS = ("envs", "transforms", "kernels", "losses", "algos", "datasets", "loggers")

Factory = Callable[..., Any] | str


def resolve_target(target: Factory, *, plugin: str | None = None) -> Any:
    """Return the object a factory stands for, importing ``"module:attr"`` strings.

    >>> resolve_target("os.path:join")  # doctest: +ELLIPSIS
    <function join at ...>
    """
    if not isinstance(target, str):
        return target
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise RegistryError(f"lazy factory {target!r} must have the form 'package.module:attr'")
    owner = f" (registered by plugin {plugin!r})" if plugin else ""
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise PluginError(f"cannot import {module_name!r} for factory {target!r}{owner}: {err}") from err
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as err:
            raise PluginError(
                f"module {module_name!r} has no attribute {attr_path!r} (factory {target!r}{owner})"
            ) from err
    return obj


@dataclass
class Entry:
    """One registration: a name (or pattern), its factory and who registered it."""

    name: str
    target: Factory
    plugin: str | None = None
    names: Factory | None = None
    doc: str | None = None
    _resolved: Any = field(default=None, repr=False)
    _regex: re.Pattern[str] | None = field(default=None, repr=False)

    @property
    def is_pattern(self) -> bool:
        return "*" in self.name

    def resolve(self) -> Any:
        if self._resolved is None:
            self._resolved = resolve_target(self.target, plugin=self.plugin)
        return self._resolved

    def match(self, name: str) -> tuple[str, ...] | None:
        """Return the parts of ``name`` matched by the pattern's ``*``, or None."""
        if self._regex is None:
            parts = (re.escape(p) for p in self.name.split("*"))
            self._regex = re.compile("(.+?)".join(parts) + r"\Z", re.DOTALL)
        found = self._regex.match(name)
        return found.groups() if found else None

    def _provider_names(self) -> list[str] | None:
        if self.names is None:
            return None
        provider = resolve_target(self.names, plugin=self.plugin)
        return list(provider() if callable(provider) else provider)

    def served_names(self) -> list[str] | None:
        """The concrete names a pattern serves, when the plugin told how to list them."""
        listed = self._provider_names()
        return None if listed is None else [n for n in listed if self.match(n) is not None]

    def serves(self, name: str) -> bool:
        """Whether this pattern serves ``name`` (a membership test, without listing)."""
        if self.match(name) is None:
            return False
        listed = self._provider_names()
        return listed is None or name in listed


class NamedRegistry:
    """A mapping from names to factories, for one kind of thing (envs, losses, ...).

    >>> reg = NamedRegistry("demo")
    >>> reg.register("demo:sum", sum)
    >>> reg["demo:sum"]([1, 2])
    3
    >>> reg.register("demo:*", "builtins:str")  # a pattern, served by one factory
    >>> reg["demo:hello"]()
    'hello'
    """

    def __init__(self, kind: str, owner: Registry | None = None) -> None:
        self.kind = kind
        self._owner = owner
        self._exact: dict[str, Entry] = {}
        self._patterns: dict[str, Entry] = {}
        self._lock = threading.RLock()

    # -- writing -------------------------------------------------------------------
    def register(
        self,
        name: str,
        factory: Factory,
        *,
        names: Factory | None = None,
        doc: str | None = None,
        replace: bool = False,
    ) -> None:
        """Register ``factory`` under ``name``.

        ``factory`` is a callable or a lazy ``"module:attr"`` string (not imported now).
        A ``name`` containing ``*`` is a pattern: looking up ``"gym:CartPole-v1"`` in a
        registry holding ``"gym:*"`` returns the factory with ``"CartPole-v1"`` bound as its
        first argument. ``names`` (callable or lazy string) lists the concrete names a
        pattern serves, so that membership tests and suggestions can be exact. Registering
        a taken name raises :class:`RegistryError` unless ``replace=True``.
        """
        if not isinstance(name, str) or not name.strip():
            raise RegistryError(f"{self.kind}: a name must be a non-empty string, got {name!r}")
        if not (callable(factory) or isinstance(factory, str)):
            raise RegistryError(
                f"{self.kind}: factory for {name!r} must be a callable or a 'module:attr' "
                f"string, got {type(factory).__name__}"
            )
        if isinstance(factory, str) and factory.count(":") != 1:
            raise RegistryError(
                f"{self.kind}: lazy factory {factory!r} for {name!r} must have the form "
                "'package.module:attr'"
            )
        plugin = self._owner.current_plugin if self._owner is not None else None
        entry = Entry(name=name, target=factory, plugin=plugin, names=names, doc=doc)
        table = self._patterns if entry.is_pattern else self._exact
        with self._lock:
            old = table.get(name)
            if old is not None and not replace:
                by = f" by plugin {old.plugin!r}" if old.plugin else ""
                raise RegistryError(
                    f"{self.kind}: {name!r} is already registered{by}; "
                    "pass replace=True to override it"
                )
            table[name] = entry
            if self._owner is not None:
                self._owner.record_registration(self.kind, name, plugin)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (an exact name or a pattern)."""
        with self._lock:
            if self._exact.pop(name, None) is None and self._patterns.pop(name, None) is None:
                raise self._unknown(name)

    def withdraw_plugin(self, plugin: str) -> None:
        """Remove everything ``plugin`` registered (used when its registration failed)."""
        with self._lock:
            for table in (self._exact, self._patterns):
                for key in [k for k, e in table.items() if e.plugin == plugin]:
                    del table[key]

    # -- reading -------------------------------------------------------------------
    def _ready(self) -> None:
        if self._owner is not None:
            self._owner.load_plugins()

    def entry(self, name: str) -> tuple[Entry, tuple[str, ...]]:
        """Return the entry serving ``name`` and the parts its pattern matched.

        Raises :class:`UnknownNameError`, listing the closest registered names.
        """
        self._ready()
        if not isinstance(name, str):
            raise RegistryError(f"{self.kind}: names are strings, got {type(name).__name__}")
        exact = self._exact.get(name)
        if exact is not None:
            return exact, ()
        # Longest (most specific) pattern first.
        for pattern in sorted(self._patterns, key=len, reverse=True):
            entry = self._patterns[pattern]
            parts = entry.match(name)
            if parts is None or not entry.serves(name):
                continue
            return entry, parts
        raise self._unknown(name)

    def __getitem__(self, name: str) -> Any:
        entry, parts = self.entry(name)
        obj = entry.resolve()
        return functools.partial(obj, *parts) if parts else obj

    def get(self, name: str, default: Any = None) -> Any:
        """Like ``self[name]`` but returns ``default`` for an unknown name."""
        try:
            return self[name]
        except UnknownNameError:
            return default

    def make(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Build the thing registered as ``name``: ``self[name](*args, **kwargs)``."""
        return self[name](*args, **kwargs)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.entry(name)
        except UnknownNameError:
            return False
        return True

    def names(self, *, expand: bool = False) -> list[str]:
        """Registered names, sorted; patterns as written unless ``expand`` lists what
        each pattern serves (which may import the plugin's backend)."""
        self._ready()
        found = list(self._exact)
        for entry in self._patterns.values():
            served = entry.served_names() if expand else None
            found.extend(served if served is not None else [entry.name])
        return sorted(set(found))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._ready()
        return len(self._exact) + len(self._patterns)

    @property
    def item_name(self) -> str:
        """What one entry is called in messages: ``"env"`` for ``envs``, ``"loss"`` for ``losses``."""
        return self.kind[:-2] if self.kind.endswith("sses") else self.kind.removesuffix("s")

    def __repr__(self) -> str:
        return f"NamedRegistry({self.kind!r}, {len(self)} entries)"

    def _unknown(self, name: str) -> UnknownNameError:
        """The error for an unknown ``name``: the closest names, or which plugin would serve it.

        Only the patterns of ``name``'s own namespace are expanded into the names they serve
        (expanding ``dmc:*/*`` imports dm_control), so the answer comes in well under a second.
        """
        from rlkernel.plugin_hints import KINDS, NAMESPACES, provider_hint

        namespace = name.partition(":")[0] if ":" in name else None
        candidates = list(self._exact)
        for entry in self._patterns.values():
            served = None
            if entry.name.partition(":")[0] == namespace:
                try:
                    served = entry.served_names()
                except Exception:
                    served = None
            candidates.extend(served if served is not None else [entry.name])
        same_namespace = sorted(c for c in candidates if namespace is not None and c.partition(":")[0] == namespace)
        if namespace in NAMESPACES and not same_namespace and self._owner is not None:
            return UnknownNameError(
                f"unknown {self.item_name} name {name!r}: the namespace {namespace!r} is not registered; "
                + provider_hint(NAMESPACES[namespace], self._owner)
            )
        close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5) or same_namespace[:5]
        hint = f"; closest registered names: {', '.join(close)}" if close else ""
        if not candidates:
            hint = f"; nothing is registered in {self.kind}"
            if self.kind in KINDS and self._owner is not None:
                hint += f" ({provider_hint(KINDS[self.kind], self._owner)})"
        return UnknownNameError(f"unknown {self.item_name} name {name!r}{hint}")


class Registry:
    """The set of named registries, filled by plugins on first use.

    ``rlkernel.registry`` is the process-wide instance. Reading any named registry
    triggers plugin discovery once (:meth:`load_plugins`).
    """

    envs: NamedRegistry
    transforms: NamedRegistry
    kernels: NamedRegistry
    losses: NamedRegistry
    algos: NamedRegistry
    datasets: NamedRegistry
    loggers: NamedRegistry

    def __init__(self, *, discover: bool = True) -> None:
        for kind in KINDS:
            setattr(self, kind, NamedRegistry(kind, owner=self))
        self._discover = discover
        self._loaded = False
        self._loading = False
        self._load_lock = threading.RLock()
        self.current_plugin: str | None = None
        self._plugins: list[PluginInfo] = []
        self._manager: Any = None

    def __getitem__(self, kind: str) -> NamedRegistry:
        if kind not in KINDS:
            close = difflib.get_close_matches(kind, KINDS, n=3, cutoff=0.4)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownNameError(f"unknown registry kind {kind!r} (kinds: {', '.join(KINDS)}){hint}")
        return getattr(self, kind)

    def load_plugins(self) -> None:
        """Discover and register the built-in and installed plugins, once.

        Thread-safe: other threads wait until discovery has finished; the discovering
        thread itself (a plugin reading the registry while it registers) sees the registry
        as it is so far.
        """
        if self._loaded or not self._discover:
            return
        with self._load_lock:  # re-entrant: the discovering thread passes, others wait
            if self._loaded or self._loading:
                return
            self._loading = True
            try:
                from rlkernel.plugin_loader import load_all

                load_all(self)
            finally:
                self._loading = False
                self._loaded = True  # load_all isolates plugin failures; never run it twice

    def register_plugin(self, plugin: Any, name: str | None = None) -> PluginInfo:
        """Register an in-process plugin (a module or object with hook implementations)."""
        from rlkernel.plugin_loader import register_module

        self.load_plugins()
        with self._load_lock:
            return register_module(self, plugin, name or getattr(plugin, "__name__", repr(plugin)))

    @property
    def plugins(self) -> list[PluginInfo]:
        """What discovery found: one :class:`~rlkernel.plugin_loader.PluginInfo` each."""
        self.load_plugins()
        return list(self._plugins)

    def record_registration(self, kind: str, name: str, plugin: str | None) -> None:
        for info in self._plugins:
            if info.name == plugin:
                info.registered.setdefault(kind, []).append(name)

    def __repr__(self) -> str:
        return f"Registry(kinds={list(KINDS)})"


#: The process-wide registry.
registry = Registry()
