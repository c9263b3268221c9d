"""The learning benchmark: train each recipe on its target task with 3 seeds, evaluate, write a table.

``python -m rlkernel_algos.recipes.learn [--only NAME ...] [--skip NAME ...] [--seeds 0 1 2]
[--jobs 2] [--root runs/learn] [--write docs/results.md]`` runs the tasks of :data:`TASKS`.
Each seed of a task is exactly what a user would type, in its own process::

    rlkernel train ALGO --env ENV --frames N --seed S --run-dir ROOT/TASK/seed-S --no-progress
    rlkernel eval ROOT/TASK/seed-S --episodes 10

and leaves its run directory (config, metrics, curve, checkpoints, ``eval.json``) and a
``result.json`` (commands, wall time, return). A task is met when the **median** over its
seeds of the evaluation return reaches the target. The table lists every task whose seeds
have results, so tasks can be run separately and the table still lists them all.
``--jobs`` runs that many seeds at once (each uses one torch thread).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SEEDS", "TASKS", "Task", "main", "render_table", "run_seed"]

EVAL_EPISODES = 10
EVAL_SEED = 12345
SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Task:
    """One learning target: train ``algo`` on ``env`` for ``frames`` frames; the median eval must reach ``target``."""

    name: str
    algo: str
    env: str
    frames: int
    target: float
    long: bool = False

    def train_argv(self, seed: int, run_dir: Path | str) -> list[str]:
        """The ``rlkernel train`` arguments of one seed."""
        return ["train", self.algo, "--env", self.env, "--frames", str(self.frames), "--seed", str(seed),
                "--run-dir", str(run_dir), "--no-progress"]

    def train_command(self, seed: int, run_dir: Path | str) -> str:
        """The ``rlkernel train`` command of one seed, as a user types it."""
        return "rlkernel " + " ".join(self.train_argv(seed, run_dir))


TASKS: tuple[Task, ...] = (
    Task("ppo-cartpole", "ppo", "gym:CartPole-v1", 100_000, 475.0),
    Task("dqn-cartpole", "dqn", "gym:CartPole-v1", 100_000, 475.0),
    Task("a2c-cartpole", "a2c", "gym:CartPole-v1", 500_000, 450.0),
    Task("ddpg-pendulum", "ddpg", "gym:Pendulum-v1", 20_000, -200.0),
    Task("td3-pendulum", "td3", "gym:Pendulum-v1", 20_000, -200.0),
    Task("sac-pendulum", "sac", "gym:Pendulum-v1", 20_000, -200.0),
    Task("sac-invertedpendulum", "sac", "gym:InvertedPendulum-v5", 30_000, 950.0),
    Task("ppo-invertedpendulum", "ppo", "gym:InvertedPendulum-v5", 100_000, 950.0),
    Task("sac-dmc-cartpole-balance", "sac", "dmc:cartpole/balance", 30_000, 900.0),
    Task("ppo-dmc-cartpole-balance", "ppo", "dmc:cartpole/balance", 200_000, 800.0),
    Task("sac-hopper", "sac", "gym:Hopper-v5", 100_000, 1500.0, long=True),
)


def _cli(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "rlkernel_algos.cli", *argv], capture_output=True, text=True,
                          env=env)


def run_seed(task: Task, seed: int, root: Path) -> dict:
    """Train then evaluate one seed of ``task`` into ``root/<task>/seed-<seed>`` (replacing an earlier run),
    each in its own process through the CLI; return (and save as ``result.json``) what happened."""
    run_dir = root / task.name / f"seed-{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    start = time.perf_counter()
    trained = _cli(task.train_argv(seed, run_dir))
    train_wall = time.perf_counter() - start
    if trained.returncode != 0:
        raise RuntimeError(f"{task.train_command(seed, run_dir)} failed:\n{trained.stderr[-3000:]}")
    evaluated = _cli(["eval", str(run_dir), "--episodes", str(EVAL_EPISODES), "--seed", str(EVAL_SEED)])
    if evaluated.returncode != 0:
        raise RuntimeError(f"rlkernel eval {run_dir} failed:\n{evaluated.stderr[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    evaluation = json.loads((run_dir / "eval.json").read_text())
    result = {
        "task": task.name, "algo": task.algo, "env": task.env, "seed": seed, "frames": int(summary["frames"]),
        "target": task.target, "train_wall_time_s": train_wall, "fps": summary.get("fps"),
        "train_command": task.train_command(seed, run_dir),
        "eval_command": f"rlkernel eval {run_dir} --episodes {EVAL_EPISODES}",
        "mean": evaluation["mean"], "std": evaluation["std"], "returns": evaluation["returns"],
    }
    (run_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def task_results(task: Task, root: Path) -> list[dict]:
    """The ``result.json`` of every seed of ``task`` under ``root``, by seed."""
    found = sorted((root / task.name).glob("seed-*/result.json"))
    return sorted((json.loads(p.read_text()) for p in found), key=lambda r: r["seed"])


def render_table(root: Path) -> str:
    """The Markdown results of every task under ``root``: per-seed returns, their median, the verdict."""
    rows = []
    for task in TASKS:
        results = task_results(task, root)
        if not results:
            rows.append(f"| {task.algo} | {task.env} | {task.frames:,} | not run | | | | >= {task.target:g} | |")
            continue
        median = statistics.median(r["mean"] for r in results)
        wall = statistics.median(r["train_wall_time_s"] for r in results)
        seeds = ", ".join(str(r["seed"]) for r in results)
        per_seed = ", ".join(f"{r['mean']:.1f}" for r in results)
        verdict = "yes" if median >= task.target else "**no**"
        rows.append(
            f"| {task.algo} | {task.env} | {results[0]['frames']:,} | {seeds} | {wall:.0f} s | {per_seed} "
            f"| {median:.1f} | >= {task.target:g} | {verdict} |"
        )
    header = (
        "| algo | env | frames | seeds | train wall time (median) | eval return per seed (10 episodes, "
        "deterministic) | median | target | met |\n"
        "| --- | --- | ---: | --- | ---: | --- | ---: | ---: | --- |"
    )
    return header + "\n" + "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected tasks' seeds, then print (and with ``--write``, save) the results table."""
    parser = argparse.ArgumentParser(prog="python -m rlkernel_algos.recipes.learn", description=__doc__)
    parser.add_argument("--only", nargs="*", default=None, help="task names to run (default: all)")
    parser.add_argument("--skip", nargs="*", default=(), help="task names not to run")
    parser.add_argument("--skip-long", action="store_true", help="skip the long tasks (sac-hopper)")
    parser.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS), help="seeds to run (default 0 1 2)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once, each in its own process")
    parser.add_argument("--root", default="runs/learn", help="where the runs go")
    parser.add_argument("--write", default=None, help="write the table into this Markdown file (between markers)")
    parser.add_argument("--table-only", action="store_true", help="run nothing; rebuild the table")
    args = parser.parse_args(argv)
    names = {t.name for t in TASKS}
    for name in [*(args.only or ()), *args.skip]:
        if name not in names:
            parser.error(f"unknown task {name!r} (tasks: {', '.join(sorted(names))})")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    root = Path(args.root)
    if not args.table_only:
        chosen = [t for t in TASKS if (args.only is None or t.name in args.only) and t.name not in args.skip
                  and not (t.long and args.skip_long)]
        runs = [(task, seed) for task in chosen for seed in args.seeds]

        def one(item: tuple[Task, int]) -> None:
            task, seed = item
            print(f"== {task.train_command(seed, root / task.name / f'seed-{seed}')}", flush=True)
            result = run_seed(task, seed, root)
            print(f"   {task.name} seed {seed}: eval {result['mean']:.1f} ± {result['std']:.1f} "
                  f"(target >= {task.target:g}), train {result['train_wall_time_s']:.0f} s", flush=True)

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(one, runs))
    table = render_table(root)
    print(table)
    if args.write:
        write_table(Path(args.write), table)
    return 0


BEGIN, END = "<!-- learn:begin -->", "<!-- learn:end -->"


def write_table(path: Path, table: str) -> None:
    """Replace the text between the markers of ``path`` with ``table`` (append the block if absent)."""
    import torch

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
