"""The learning benchmark: train each recipe on its target task, evaluate it, write a table.

``python -m rlkernel_algos.recipes.learn [--only NAME ...] [--skip NAME ...] [--root runs/learn]
[--write docs/results.md]`` runs the tasks of :data:`TASKS` one after the other (each is what
``rlkernel train`` then ``rlkernel eval RUN_DIR --episodes 10`` do), keeps each run in
``<root>/<task>/``, and writes a Markdown table of every task whose run directory holds an
``eval.json`` -- so tasks can be run separately and the table still lists them all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from rlkernel_algos.recipes import get_recipe
from rlkernel_algos.recipes.evaluation import evaluate, summarize

__all__ = ["TASKS", "Task", "main", "render_table", "run_task"]

EVAL_EPISODES = 10
EVAL_SEED = 12345


@dataclass(frozen=True)
class Task:
    """One learning target: train ``algo`` on ``env`` for ``frames`` frames; eval must reach ``target``."""

    name: str
    algo: str
    env: str
    frames: int
    target: float
    seed: int = 0
    long: bool = False

    def train_command(self, run_dir: Path) -> str:
        """The ``rlkernel train`` command this task runs."""
        return (f"rlkernel train {self.algo} --env {self.env} --frames {self.frames} --seed {self.seed} "
                f"--run-dir {run_dir}")


TASKS: tuple[Task, ...] = (
    Task("ppo-cartpole", "ppo", "gym:CartPole-v1", 100_000, 475.0),
    Task("dqn-cartpole", "dqn", "gym:CartPole-v1", 100_000, 475.0),
    Task("a2c-cartpole", "a2c", "gym:CartPole-v1", 500_000, 450.0),
    Task("ddpg-pendulum", "ddpg", "gym:Pendulum-v1", 20_000, -200.0),
    Task("td3-pendulum", "td3", "gym:Pendulum-v1", 20_000, -200.0),
    Task("sac-pendulum", "sac", "gym:Pendulum-v1", 20_000, -200.0),
    Task("sac-invertedpendulum", "sac", "gym:InvertedPendulum-v5", 30_000, 950.0),
    Task("ppo-invertedpendulum", "ppo", "gym:InvertedPendulum-v5", 100_000, 950.0),
    Task("sac-hopper", "sac", "gym:Hopper-v5", 100_000, 1500.0, long=True),
)


def run_task(task: Task, root: Path, *, progress_bar: bool = False) -> dict:
    """Train and evaluate ``task`` into ``root/<task.name>`` (replacing an earlier run); return eval.json's content."""
    run_dir = root / task.name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    recipe = get_recipe(task.algo)
    config = recipe.make_config(task.env, total_frames=task.frames, seed=task.seed, progress_bar=progress_bar)
    start = time.perf_counter()
    metrics = recipe.train(config, run_dir)
    train_wall = time.perf_counter() - start
    trained = recipe.load_policy(run_dir)
    env = trained.make_env()
    try:
        returns = evaluate(trained.policy, env, EVAL_EPISODES, seed=EVAL_SEED)
    finally:
        env.close()
    result = {
        "task": task.name, "algo": task.algo, "env": task.env, "seed": task.seed, "frames": int(metrics["frames"]),
        "target": task.target, "train_wall_time_s": train_wall, "fps": metrics.get("fps"),
        "train_command": task.train_command(run_dir),
        "eval_command": f"rlkernel eval {run_dir} --episodes {EVAL_EPISODES}",
        **summarize(returns),
    }
    result["passed"] = result["mean"] >= task.target
    (run_dir / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def render_table(root: Path) -> str:
    """The Markdown results of every task with an ``eval.json`` under ``root``."""
    rows = []
    for task in TASKS:
        found = root / task.name / "eval.json"
        if not found.is_file():
            rows.append(f"| {task.algo} | {task.env} | {task.frames:,} | {task.seed} | not run | "
                        f"| >= {task.target:g} | |")
            continue
        r = json.loads(found.read_text())
        verdict = "yes" if r.get("passed") else "**no**"
        rows.append(
            f"| {r['algo']} | {r['env']} | {r['frames']:,} | {r['seed']} | {r['train_wall_time_s']:.0f} s "
            f"| {r['mean']:.1f} ± {r['std']:.1f} | >= {r['target']:g} | {verdict} |"
        )
    header = (
        "| algo | env | frames | seed | train wall time | eval return (10 episodes, deterministic) | target | met |\n"
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
    )
    return header + "\n" + "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected tasks, then print (and with ``--write``, save) the results table."""
    parser = argparse.ArgumentParser(prog="python -m rlkernel_algos.recipes.learn", description=__doc__)
    parser.add_argument("--only", nargs="*", default=None, help="task names to run (default: all)")
    parser.add_argument("--skip", nargs="*", default=(), help="task names not to run")
    parser.add_argument("--skip-long", action="store_true", help="skip the long tasks (sac-hopper)")
    parser.add_argument("--root", default="runs/learn", help="where the runs go")
    parser.add_argument("--write", default=None, help="write the table into this Markdown file (between markers)")
    parser.add_argument("--table-only", action="store_true", help="run nothing; rebuild the table")
    args = parser.parse_args(argv)
    names = {t.name for t in TASKS}
    for name in [*(args.only or ()), *args.skip]:
        if name not in names:
            parser.error(f"unknown task {name!r} (tasks: {', '.join(sorted(names))})")
    root = Path(args.root)
    if not args.table_only:
        for task in TASKS:
            if (args.only is not None and task.name not in args.only) or task.name in args.skip:
                continue
            if task.long and args.skip_long:
                continue
            print(f"== {task.name}: {task.train_command(root / task.name)}", flush=True)
            result = run_task(task, root)
            print(f"   eval {result['mean']:.1f} ± {result['std']:.1f} (target >= {task.target:g}), "
                  f"train {result['train_wall_time_s']:.0f} s", flush=True)
    table = render_table(root)
    print(table)
    if args.write:
        write_table(Path(args.write), table)
    return 0


BEGIN, END = "<!-- learn:begin -->", "<!-- learn:end -->"


def write_table(path: Path, table: str) -> None:
    """Replace the text between the markers of ``path`` with ``table`` (append the block if absent)."""
    machine = (f"_Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}; "
               f"each run uses 1 torch thread; generated {time.strftime('%Y-%m-%d')}._")
    block = f"{BEGIN}\n{table}\n\n{machine}\n{END}"
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text + ("\n" if text and not text.endswith("\n") else "") + block + "\n"
    path.write_text(text)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
