"""The ``rlkernel`` command line.

``rlkernel --version``, ``rlkernel plugins`` and ``rlkernel list KIND`` answer without
importing torch: they only read entry points and the plugins' registration hooks.
``rlkernel train`` and ``rlkernel eval`` run the recipes registered in ``registry.algos``.
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

    from rlkernel.cli_train import add_commands  # train/eval: torch is imported only when they run

    add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rlkernel`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
