"""Which distribution provides a namespace or a command, for errors about a missing plugin.

The core imports no plugin; it only knows, as text, which of the project's own distributions
serves which namespace of names (``gym:`` ...) and which ``rlkernel`` sub-command, so that
asking for one that is absent says what to install, or that the plugin is disabled::

    >>> NAMESPACES["dmc"]
    'rlkernel-dmc'
    >>> COMMANDS["train"]
    'rlkernel-algos'

A third-party plugin needs no entry here: its names and commands exist once it is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlkernel.registries import Registry

__all__ = ["COMMANDS", "KINDS", "NAMESPACES", "provider_hint"]

#: namespace of a registered name (the part before ``:``) -> the distribution that serves it
NAMESPACES = {
    "gym": "rlkernel-gym",
    "minari": "rlkernel-gym",
    "dmc": "rlkernel-dmc",
    "pettingzoo": "rlkernel-marl",
    "vmas": "rlkernel-marl",
}

#: ``rlkernel`` sub-command -> the distribution that adds it
COMMANDS = {"train": "rlkernel-algos", "eval": "rlkernel-algos"}

#: registry kind -> the distribution that fills it (kinds the core fills itself are absent)
KINDS = {"losses": "rlkernel-algos", "algos": "rlkernel-algos", "loggers": "rlkernel-algos"}


def provider_hint(distribution: str, registry: Registry) -> str:
    """Why ``distribution`` provides nothing here: not installed, disabled, or failed to load.

    >>> from rlkernel.registries import Registry
    >>> provider_hint("rlkernel-nothing", Registry(discover=False))
    'rlkernel-nothing provides it and is not installed: pip install rlkernel-nothing'
    """
    from rlkernel.plugin_loader import DISABLE_ENV_VAR

    for info in registry.plugins:
        if info.distribution != distribution:
            continue
        if info.status == "disabled":
            return (
                f"{distribution} provides it and is installed, but its plugin {info.name!r} is disabled "
                f"by {DISABLE_ENV_VAR}"
            )
        if info.status == "failed":
            return (
                f"{distribution} provides it and is installed, but its plugin {info.name!r} failed to load: "
                f"{info.error} (see 'rlkernel plugins')"
            )
    return f"{distribution} provides it and is not installed: pip install {distribution}"
