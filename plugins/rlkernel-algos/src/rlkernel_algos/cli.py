"""``rlkernel train`` and ``rlkernel eval``: run a registered recipe, evaluate its policy.

::

    rlkernel train                                   # PPO on gym:CartPole-v1
    rlkernel train sac --env gym:Pendulum-v1 --frames 20000 --seed 1 batch_size=128
    rlkernel eval runs/ppo-gym_CartPole-v1-0-20250101-120000 --episodes 10

rlkernel-algos adds these commands to ``rlkernel`` through the ``rlkernel_add_commands``
hook (:mod:`rlkernel_algos.plugin`). The recipes come from ``rlkernel.registry.algos``
(rlkernel-algos registers ``ppo``, ``a2c``, ``dqn``, ``ddpg``, ``td3``, ``sac``; other plugins
may add more). ``key=value`` arguments set fields of the recipe's config dataclass, typed
by the field. An unknown algorithm, environment or config key is reported with the closest
names and exit status 2.

This module imports no torch at import time: only the command functions do, when they run.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlkernel.cli import run_command
from rlkernel.errors import RLKernelError
from rlkernel.registries import registry

__all__ = ["add_commands", "cmd_eval", "cmd_train", "main"]

DEFAULT_ALGO = "ppo"


class UsageError(RLKernelError, ValueError):
    """A command-line argument is wrong (exit status 2)."""


def _fail(message: str) -> int:
    print(f"rlkernel: error: {message}", file=sys.stderr)
    return 2


def _split_positionals(items: Sequence[str]) -> tuple[str | None, list[str]]:
    """``(algo or None, ["key=value", ...])`` from the positional arguments of ``train``."""
    algo: str | None = None
    overrides: list[str] = []
    for item in items:
        if "=" in item:
            overrides.append(item)
        elif algo is None and not overrides:
            algo = item
        else:
            raise UsageError(
                f"unexpected argument {item!r}: give the algorithm first, then key=value config overrides"
            )
    return algo, overrides


def _options_first(parser: argparse.ArgumentParser) -> None:
    """Let ``parser`` take its positional arguments anywhere among its options.

    argparse matches a ``nargs="*"`` positional once, at its first position, so
    ``train sac --env X lr=1`` would reject ``lr=1``. This moves every positional token
    after the options (keeping each option with its value) before the normal parsing.
    """
    takes_value = {opt for action in parser._actions if action.nargs != 0 for opt in action.option_strings}

    def parse_known_args(args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        tokens = list(sys.argv[1:] if args is None else args)
        options: list[str] = []
        positionals: list[str] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if token == "--":
                positionals.extend(tokens[i + 1:])
                break
            if token.startswith("-") and len(token) > 1 and not token[1].isdigit():
                options.append(token)
                if token in takes_value and i + 1 < len(tokens):
                    options.append(tokens[i + 1])
                    i += 1
            else:
                positionals.append(token)
            i += 1
        return argparse.ArgumentParser.parse_known_args(parser, options + positionals, namespace)

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def _recipe(algo: str) -> Any:
    algos = registry.algos
    if algo not in algos:
        names = algos.names()
        close = difflib.get_close_matches(algo, names, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = f" (registered: {', '.join(names)})" if names else " (none is registered)"
        raise UsageError(f"unknown algorithm {algo!r}{known}{hint}")
    return algos[algo]


def _check_env(name: str) -> None:
    if name not in registry.envs:
        registry.envs.entry(name)  # raises UnknownNameError with the closest names


def cmd_train(args: argparse.Namespace) -> int:
    """``rlkernel train``: build the config, make the run directory, train, print the summary."""
    try:
        algo, overrides = _split_positionals(args.args)
        algo = algo or DEFAULT_ALGO
        recipe = _recipe(algo)
        fields: dict[str, Any] = {}
        if args.frames is not None:
            fields["total_frames"] = args.frames
        if args.seed is not None:
            fields["seed"] = args.seed
        if args.no_progress:
            fields["progress_bar"] = False
        config = recipe.make_config(args.env, overrides, **fields)
        if args.show_config:  # the fields and their defaults: no environment is needed to read them
            print(recipe.describe())
            return 0
        _check_env(config.env)
    except RLKernelError as err:
        return _fail(str(err))
    from rlkernel_algos.recipes.runs import completed_summary, default_run_dir
    from rlkernel_algos.trainers import latest_checkpoint

    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(algo, config.env, config.seed, args.runs_root)
    done = completed_summary(run_dir, config.total_frames)
    if done is not None:
        shown = f", return {done['return']:.1f}" if "return" in done else ""
        print(f"{run_dir} is a complete run ({done['frames']:,.0f} frames{shown}): nothing to train. Evaluate it with "
              f"'rlkernel eval {run_dir}', train it further with a larger --frames, or give another --run-dir for a "
              f"fresh run.")
        return 0
    print(f"rlkernel train {algo}: env {config.env}, {config.total_frames} frames, seed {config.seed} -> {run_dir}")
    found = latest_checkpoint(run_dir / "checkpoints")
    if found is not None:
        print(f"resuming from {found}")
    start = time.perf_counter()
    try:
        metrics = recipe.train(config, run_dir)
    except RLKernelError as err:  # e.g. a recipe for continuous actions given a discrete env
        return _fail(str(err))
    wall = time.perf_counter() - start
    shown = ", ".join(f"{k} {v:,.4g}" for k, v in metrics.items())
    print(f"done in {wall:.1f} s: {shown}")
    print(f"evaluate with: rlkernel eval {run_dir} --episodes 10")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """``rlkernel eval``: run the deterministic policy of a run for N episodes; print mean +- std."""
    from rlkernel_algos.recipes.config import read_config

    run_dir = Path(args.run_dir)
    try:
        if args.episodes < 1:
            raise UsageError(f"--episodes must be >= 1, got {args.episodes}")
        algo, _ = read_config(run_dir / "config.json")
        recipe = _recipe(algo)
        trained = recipe.load_policy(run_dir)
    except RLKernelError as err:
        return _fail(str(err))
    from rlkernel_algos.recipes.evaluation import evaluate, summarize

    env = trained.make_env(num_envs=args.num_envs)
    try:
        start = time.perf_counter()
        returns = evaluate(trained.policy, env, args.episodes, seed=args.seed)
        wall = time.perf_counter() - start
    finally:
        env.close()
    summary = {"algo": algo, "env": trained.config.env, "seed": args.seed, **summarize(returns), "wall_time_s": wall}
    (run_dir / "eval.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"{algo} on {trained.config.env}: return {summary['mean']:.1f} ± {summary['std']:.1f} "
        f"over {args.episodes} episodes (min {summary['min']:.1f}, max {summary['max']:.1f})"
    )
    return 0


def add_commands(commands: Any) -> None:
    """Add the ``train`` and ``eval`` sub-commands to ``commands`` (an argparse sub-parsers object)."""
    train = commands.add_parser(
        "train",
        help="train a registered algorithm on an environment (default: ppo on gym:CartPole-v1)",
        description="Train ALGO (default ppo) on --env with the recipe's config; key=value sets a config field.",
    )
    train.add_argument("args", nargs="*", metavar="ARG",
                       help="the algorithm (ppo, a2c, dqn, ddpg, td3, sac, ...) and config overrides")
    train.add_argument("--env", default=None,
                       help="a registered environment (default: the recipe's, e.g. gym:CartPole-v1)")
    train.add_argument("--frames", type=int, default=None, help="environment frames to train for")
    train.add_argument("--seed", type=int, default=None, help="random seed")
    train.add_argument("--run-dir", default=None, help="the run directory (default: runs/<algo>-<env>-<seed>-<time>)")
    train.add_argument("--runs-root", default="runs", help="where default run directories go")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--show-config", action="store_true", help="print the config fields and exit")
    train.set_defaults(func=cmd_train)
    _options_first(train)

    evaluate = commands.add_parser(
        "eval", help="evaluate the deterministic policy of a training run",
        description="Run the trained policy of RUN_DIR deterministically; print and save (eval.json) the return.",
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by 'rlkernel train'")
    evaluate.add_argument("--episodes", type=int, default=10, help="episodes to run (default 10)")
    evaluate.add_argument("--seed", type=int, default=12345, help="seed of the evaluation environments")
    evaluate.add_argument("--num-envs", type=int, default=None, help="evaluate in N environments at once")
    evaluate.set_defaults(func=cmd_eval)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``train``/``eval`` alone, as ``rlkernel train ...`` runs them through the plugin hook."""
    parser = argparse.ArgumentParser(prog="rlkernel")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND"))
    return run_command(parser, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
