"""The hooks a plugin may implement: the whole plugin contract in one module.

rlkernel finds plugins through the ``rlkernel`` entry-point group. Each entry point names
a module; that module declares the core API version it was written for and implements one
or more of the hooks below with :data:`hookimpl`::

    # rlkernel_myenv/plugin.py
    import rlkernel

    RLKERNEL_API_VERSION = 1

    @rlkernel.hookimpl
    def rlkernel_register(registry):
        registry.envs.register("myenv:Maze-v0", "rlkernel_myenv.envs:MazeEnv")

The core's own built-in pieces are registered through these same hooks
(:mod:`rlkernel.builtins`), exactly as a third party's are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import argparse

    from rlkernel.registries import Registry

PROJECT_NAME = "rlkernel"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Decorator that marks a function of a plugin module as a hook implementation.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def rlkernel_register(registry: Registry) -> None:
    """Register the factories a plugin provides, by name, without importing its backend.

    Called once per plugin, the first time anything asks the process-wide registry for a
    name. ``registry`` has one named registry per kind of thing: ``envs``, ``transforms``,
    ``kernels``, ``losses``, ``algos``, ``datasets`` and ``loggers``. Give each factory as a
    lazy ``"package.module:attribute"`` string, so that the heavy backend (gymnasium,
    mujoco, ...) is imported only when the factory is first used::

        registry.envs.register("gym:*", "rlkernel_gym.envs:GymEnv",
                               names="rlkernel_gym.envs:registered_env_names")
        registry.losses.register("ppo", "rlkernel_algos.objectives:ClipPPOLoss")

    Names are namespaced by plugin (``gym:``, ``dmc:``, ...). A name containing ``*`` is a
    pattern served by one factory, which receives the parts matched by ``*`` as its first
    positional arguments. An exception raised here makes the core skip the whole plugin
    (what it registered is withdrawn) and report the error in ``rlkernel plugins``.
    """


@hookspec
def rlkernel_add_commands(commands: argparse._SubParsersAction) -> None:
    """Add sub-commands to the ``rlkernel`` command line (as ``llm`` plugins do with ``register_commands``).

    ``commands`` is the argparse sub-parsers object of ``rlkernel``; add parsers to it and
    give each a ``func`` default taking the parsed arguments and returning the exit status::

        @rlkernel.hookimpl
        def rlkernel_add_commands(commands):
            hello = commands.add_parser("hello", help="say hello")
            hello.add_argument("--name", default="world")
            hello.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

    Called when the ``rlkernel`` command builds its parser, after discovery. Keep the module
    that defines the parsers cheap to import (no torch): import heavy modules inside ``func``.
    The core owns ``--version``, ``plugins``, ``list`` and ``envs``; a plugin whose hook
    raises, or adds a command that is already taken, is reported and its commands skipped.
    """
