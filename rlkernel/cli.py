"""The ``rlkernel`` command line.

The core owns ``rlkernel --version``, ``rlkernel plugins`` and ``rlkernel list KIND``; they
answer without importing torch: they only read entry points and the plugins' registration
hooks. Every other sub-command comes from a plugin's ``rlkernel_add_commands`` hook
(rlkernel-algos adds ``train`` and ``eval``); the core imports no plugin.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rlkernel._version import API_VERSION, __version__
from rlkernel.errors import RLKernelError
from rlkernel.registries import KINDS, registry


def _cmd_plugins(args: argparse.Namespace) -> int:
    plugins = registry.plugins
    if not plugins:
        print("no plugins found")
        return 0
    for info in plugins:
        dist = f"{info.distribution} {info.version}" if info.distribution else "(no distribution)"
        print(f"{info.name:<12} {dist:<28} {info.status}")
        if info.error:
            print(f"    error: {info.error}")
        for kind, names in sorted(info.registered.items()):
            shown = ", ".join(sorted(names)) if args.verbose or len(names) <= 6 else (
                ", ".join(sorted(names)[:6]) + f", ... ({len(names)} in all; -v shows all)"
            )
            print(f"    {kind}: {shown}")
    failed = [p.name for p in plugins if p.status == "failed"]
    return 1 if failed and args.strict else 0


def _cmd_list(args: argparse.Namespace) -> int:
    try:
        names = registry[args.kind].names(expand=args.expand)
    except RLKernelError as err:
        print(f"rlkernel: error: {err}", file=sys.stderr)
        return 2
    for name in names:
        print(name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rlkernel`` command."""
    parser = argparse.ArgumentParser(
        prog="rlkernel", description="rlkernel: reinforcement learning for PyTorch, as plugins."
    )
    parser.add_argument(
        "--version", action="version", version=f"rlkernel {__version__} (plugin API {API_VERSION})"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    plugins = commands.add_parser("plugins", help="list plugins, what they registered, or why they failed")
    plugins.add_argument("-v", "--verbose", action="store_true", help="show every registered name")
    plugins.add_argument("--strict", action="store_true", help="exit with 1 if a plugin failed")
    plugins.set_defaults(func=_cmd_plugins)

    listing = commands.add_parser("list", help="list the names registered for one kind")
    listing.add_argument("kind", help=f"one of: {', '.join(KINDS)}")
    listing.add_argument(
        "--expand", action="store_true", help="list every name a pattern serves (may import backends)"
    )
    listing.set_defaults(func=_cmd_list)

    envs = commands.add_parser("envs", help="same as 'list envs'")
    envs.add_argument("--expand", action="store_true", help="list every name a pattern serves")
    envs.set_defaults(func=_cmd_list, kind="envs")

    _add_plugin_commands(commands)
    return parser


def _add_plugin_commands(commands: argparse._SubParsersAction) -> None:
    """Let every loaded plugin add its sub-commands; a plugin whose hook fails is reported, not fatal."""
    from rlkernel.plugin_loader import plugin_manager

    registry.load_plugins()
    manager = plugin_manager(registry)
    for impl in manager.hook.rlkernel_add_commands.get_hookimpls():
        taken = set(commands.choices)
        try:
            impl.function(commands=commands)
        except Exception as err:  # one broken plugin must not break the command line
            for name in set(commands.choices) - taken:
                del commands.choices[name]
            commands._choices_actions[:] = [a for a in commands._choices_actions if a.dest in taken]
            print(f"rlkernel: warning: plugin {impl.plugin_name!r} could not add its commands: "
                  f"{type(err).__name__}: {err}", file=sys.stderr)


def _missing_command(argv: Sequence[str], parser: argparse.ArgumentParser) -> str | None:
    """The error for a sub-command that a known plugin would add but that is absent here."""
    from rlkernel.plugin_hints import COMMANDS, provider_hint

    command = next((a for a in argv if not a.startswith("-")), None)
    choices = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if command is None or command in choices or command not in COMMANDS:
        return None
    return f"no installed plugin adds the command {command!r}: " + provider_hint(COMMANDS[command], registry)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rlkernel`` console script."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    missing = _missing_command(argv, parser)
    if missing is not None:
        print(f"rlkernel: error: {missing}", file=sys.stderr)
        return 2
    return run_command(parser, argv)


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run the chosen sub-command's ``func`` (help and status 0 when none is given)."""
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
