"""Wall time for PPO to solve CartPole-v1: rlkernel's recipe vs TorchRL 0.14 vs Stable-Baselines3.

All three train with rl-zoo's CartPole-v1 hyper-parameters: 8 environments, 32 steps each per
batch (256 frames), 20 epochs of one 256-frame minibatch, gamma 0.98, GAE lambda 0.8, Adam at
1e-3 and clip range 0.2 both annealed linearly to 0 over 100k frames, no entropy bonus, value
coefficient 0.5, gradient norm clipped at 0.5, normalised advantages, separate 64-64 tanh
actor and critic. One torch thread.

**The criterion**, the same in the three: the clock starts right before the environments are
made (after the imports) and stops after the first batch at which the mean return of the last
20 finished training episodes (stochastic policy, all environments pooled, in the order they
ended) is at least 475. Every run is a fresh process; each seed runs the three sides in turn,
so drifting load touches them alike. The result per side is the median over seeds of the
seconds to solve (a side that does not solve within 100k frames on a seed counts as
``inf`` there and is reported).

* ours: ``rlkernel_algos.recipes.ppo`` with ``steps_per_env=32 epochs=20 stop_at_return=475``
  (the user-facing recipe, writing its run folder; the learning-curve picture drawn after
  the stop is not timed);
* TorchRL: ``benchmarks/ppo_solve_torchrl.py``; Stable-Baselines3:
  ``benchmarks/ppo_solve_sb3.py`` -- both run by the reference interpreter
  (``.nox/reference``, see :mod:`benchmarks.reference`).

    python -m benchmarks ppo_solve [--seeds 0 1 2]     # --quick: a low target, one seed
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.reference import torchrl_python

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPTS = {"torchrl": HERE / "ppo_solve_torchrl.py", "sb3": HERE / "ppo_solve_sb3.py"}
QUOTED_SECONDS = {"torchrl": 10.4, "sb3": 4.6}  # the figures, used only when a side cannot run
WINDOW = 20  # episodes in the mean (the recipes' trainer window)


def solve_with_rlkernel(seed: int, target: float, max_frames: int) -> dict:
    """Train the PPO recipe until ``target`` (in this process); the timing record."""
    start = time.perf_counter()
    import rlkernel_algos.recipes.runs as runs
    from rlkernel_algos.recipes.ppo import PPOConfig, train

    stopped: list[float] = []
    runs.plot_learning_curve = lambda *args, **kwargs: stopped.append(time.perf_counter())  # drawn after: not timed
    config = PPOConfig(seed=seed, steps_per_env=32, epochs=20, minibatch_size=256, total_frames=max_frames,
                       stop_at_return=target, progress_bar=False, checkpoint_interval=10 * max_frames,
                       log_interval=10 * max_frames)
    with tempfile.TemporaryDirectory() as folder:
        import_seconds = time.perf_counter() - start
        start = time.perf_counter()
        metrics = train(config, Path(folder) / "run")
    return {
        "library": "rlkernel", "seed": seed, "reached": bool(metrics.get("reached_target")),
        "seconds": stopped[0] - start, "frames": int(metrics["frames"]), "episodes": int(metrics["episodes"]),
        "final_mean_return": metrics.get("return"), "import_seconds": import_seconds,
    }


def _command(side: str, python: str, seed: int, target: float, max_frames: int) -> list[str]:
    flags = ["--seed", str(seed), "--target", str(target), "--max-frames", str(max_frames)]
    if side == "rlkernel":
        return [sys.executable, "-m", "benchmarks.bench_ppo_solve", "--child", *flags]
    return [python, str(SCRIPTS[side]), *flags, "--window", str(WINDOW)]


def run_side(side: str, python: str, seed: int, target: float, max_frames: int) -> dict:
    """One fresh process training ``side`` on ``seed``; its JSON record (or the error)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(_command(side, python, seed, target, max_frames), capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"library": side, "seed": seed, "error": (proc.stderr or proc.stdout).strip()[-600:]}
    return json.loads(lines[-1])


def _median_seconds(records: list[dict]) -> float:
    return statistics.median(r["seconds"] if r.get("reached") else math.inf for r in records)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="bench_ppo_solve", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="target 60, one seed, 20k frames")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--target", type=float, default=475.0)
    parser.add_argument("--max-frames", type=int, default=100_000)
    parser.add_argument("--torchrl-python", default=torchrl_python(), help="interpreter with TorchRL and SB3")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import torch

        torch.set_num_threads(1)
        print(json.dumps(solve_with_rlkernel(args.seed, args.target, args.max_frames)), flush=True)
        return {}
    if args.quick:
        args.seeds, args.target, args.max_frames = args.seeds[:1], 60.0, 20_000
    sides = ["rlkernel"]
    reference = Path(args.torchrl_python).exists()
    if reference:
        sides += ["torchrl", "sb3"]
    records: dict[str, list[dict]] = {side: [] for side in sides}
    for seed in args.seeds:
        for side in sides:
            record = run_side(side, args.torchrl_python, seed, args.target, args.max_frames)
            records[side].append(record)
            shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in record.items()}
            print(f"  {side:8s} {shown}", flush=True)
    result: dict = {"target": args.target, "window": WINDOW, "max_frames": args.max_frames,
                    "seeds": args.seeds, "runs": records}
    for side, found in records.items():
        errors = [r for r in found if "error" in r]
        if errors:
            raise RuntimeError(f"bench_ppo_solve: the {side} side failed: {errors[0]['error']}")
        result[f"{side}_median_s"] = _median_seconds(found)
        result[f"{side}_solved"] = sum(bool(r.get("reached")) for r in found)
        result[f"{side}_median_frames"] = statistics.median(r["frames"] for r in found)
        result[f"{side}_median_fps"] = statistics.median(r["frames"] / r["seconds"] for r in found)
    ours = result["rlkernel_median_s"]
    for side in ("torchrl", "sb3"):
        theirs = result.get(f"{side}_median_s")
        result[f"{side}_source"] = "measured" if theirs is not None else "quoted, not measured"
        theirs = QUOTED_SECONDS[side] if theirs is None else theirs
        result[f"speedup_vs_{side}"] = theirs / ours if ours > 0 else math.nan
        print(f"rlkernel {ours:.2f} s vs {side} {theirs:.2f} s ({result[f'{side}_source']}): "
              f"{result[f'speedup_vs_{side}']:.2f}x faster", flush=True)
    return result


if __name__ == "__main__":
    main()
