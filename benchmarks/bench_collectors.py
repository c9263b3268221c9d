"""Collector throughput (frames/s) on CartPole-v1 with a 4-64-64-2 tanh MLP sampling actions.

Three cases, each measured side by side in rounds (hand-written, rlkernel, TorchRL, then
again). Reported: the median wall-clock frames/s of each side, and each ratio as the median
over rounds of that round's ratio of CPU-time frames/s (wall time for ``multi``): on a
shared machine, CPU time cancels most of the drift other processes cause.

* ``single``: one env -- ``SyncDataCollector(GymEnv("CartPole-v1"), policy)``;
* ``vector``: ``SyncDataCollector(GymEnv("CartPole-v1", num_envs=8), policy)``;
* ``multi``: ``MultiSyncDataCollector`` with 2 workers of ``GymEnv(..., num_envs=4)``.

References:

* *hand-written*: the practical limit -- a plain loop over ``gymnasium.make`` (single) or
  gymnasium's ``SyncVectorEnv`` (vector; 2 processes of 4 envs for multi) calling the same
  torch module (MLP + ``torch.multinomial`` sampling) under ``no_grad``; no storage.
* *TorchRL* (when ``.nox/reference/bin/python`` exists; if that venv has no gymnasium,
  this venv's gymnasium is linked onto its ``PYTHONPATH``): its ``Collector`` /
  ``MultiSyncCollector`` over its ``GymEnv`` with the same policy module.

Bars: rlkernel >= 0.6 x hand-written and >= 3 x TorchRL in each case. Every side runs
torch on one thread; start-up (process spawn, first batch) is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from benchmarks.reference import torchrl_python

ENV_ID = "CartPole-v1"
TORCHRL_PYTHON = Path(torchrl_python())
BAR_HAND, BAR_TORCHRL = 0.6, 3.0


class CategoricalSample(nn.Module):
    """Logits ``(..., n)`` (one or two dims) -> one category per row, by ``torch.multinomial``."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.multinomial(logits.softmax(-1), 1).squeeze(-1)


def make_net() -> nn.Module:
    """The 4-64-64-2 tanh MLP that outputs logits."""
    return nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))


def make_policy():
    """The policy every collector gets: a TensorDictModule observation -> action."""
    from tensordict.nn import TensorDictModule

    return TensorDictModule(nn.Sequential(make_net(), CategoricalSample()), ["observation"], ["action"])


# ---------------------------------------------------------------------- hand-written
def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    """(wall, cpu) seconds since ``start``."""
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _hand_loop(num_envs: int | None, steps: int) -> tuple[int, tuple[float, float]]:
    """``(frames, (wall, cpu) seconds)`` of a plain gymnasium loop calling the same policy."""
    import gymnasium

    policy = nn.Sequential(make_net(), CategoricalSample())
    with torch.no_grad():
        if num_envs is None:
            env = gymnasium.make(ENV_ID)
            obs, _ = env.reset(seed=0)
            start = _clock()
            for _ in range(steps):
                action = policy(torch.as_tensor(obs)).item()
                obs, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    obs, _ = env.reset()
            return steps, _since(start)
        venv = gymnasium.make_vec(ENV_ID, num_envs, vectorization_mode="sync")
        obs, _ = venv.reset(seed=0)
        start = _clock()
        for _ in range(steps):
            obs, *_ = venv.step(policy(torch.as_tensor(obs)).numpy())
        seconds = _since(start)
        venv.close()
        return steps * num_envs, seconds


def _hand_worker(num_envs: int, steps: int, barrier, queue) -> None:
    torch.set_num_threads(1)
    import gymnasium

    gymnasium.make_vec(ENV_ID, num_envs, vectorization_mode="sync").close()  # warm the imports
    barrier.wait()
    start = time.monotonic()
    frames, _ = _hand_loop(num_envs, steps)
    queue.put((frames, start, time.monotonic()))


def hand_multi(workers: int, num_envs: int, steps: int) -> float:
    """Frames/s of ``workers`` processes each running the vector loop (start-up not timed)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_hand_worker, args=(num_envs, steps, barrier, queue)) for _ in range(workers)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    frames = sum(r[0] for r in results)
    return frames / (max(r[2] for r in results) - min(r[1] for r in results))


def hand(case: str, frames: int) -> tuple[float, float]:
    """(wall, cpu) frames/s of the hand-written loop (multi: wall for both)."""
    if case == "multi":
        fps = hand_multi(2, 4, frames // 8)
        return fps, fps
    num_envs = None if case == "single" else 8
    done, (wall, cpu) = _hand_loop(num_envs, frames // (num_envs or 1))
    return done / wall, done / cpu


# ---------------------------------------------------------------------- rlkernel
def rlkernel(case: str, frames: int, batches: int) -> tuple[float, float]:
    """(wall, cpu) frames/s of rlkernel's collector over ``batches`` batches after a warm-up one."""
    from functools import partial

    from rlkernel.collectors import MultiSyncDataCollector, SyncDataCollector
    from rlkernel_gym import GymEnv

    policy = make_policy()
    if case == "multi":
        collector = MultiSyncDataCollector(
            [partial(GymEnv, ENV_ID, num_envs=4)] * 2, policy, frames_per_batch=frames, seed=0
        )
    else:
        env = GymEnv(ENV_ID, num_envs=None if case == "single" else 8)
        collector = SyncDataCollector(env, policy, frames_per_batch=frames, seed=0)
    try:
        iterator = iter(collector)
        next(iterator)
        start = _clock()
        for _ in range(batches):
            next(iterator)
        wall, cpu = _since(start)
        return batches * frames / wall, batches * frames / (wall if case == "multi" else cpu)
    finally:
        collector.shutdown()


# ---------------------------------------------------------------------- TorchRL
TORCHRL_SCRIPT = """
import json, sys, time, torch
from torch import nn
torch.set_num_threads(1)
import gymnasium
from tensordict.nn import TensorDictModule
from torchrl.envs import GymEnv, GymWrapper
from torchrl.collectors import Collector, MultiSyncCollector

class CategoricalSample(nn.Module):
    def forward(self, logits):
        return torch.multinomial(logits.softmax(-1), 1).squeeze(-1)

def make_env(num_envs=None):
    if num_envs is None:
        return GymEnv("CartPole-v1", categorical_action_encoding=True)
    # the same gymnasium SyncVectorEnv as the other sides (TorchRL's GymEnv(num_envs=) is async)
    vec = gymnasium.make_vec("CartPole-v1", num_envs, vectorization_mode="sync",
                             vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP})
    return GymWrapper(vec, categorical_action_encoding=True)

def make_env4():
    return make_env(4)

if __name__ == "__main__":
    case, frames, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    net = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2),
                        CategoricalSample())
    policy = TensorDictModule(net, ["observation"], ["action"])
    if case == "multi":
        collector = MultiSyncCollector([make_env4, make_env4], policy, frames_per_batch=frames, total_frames=-1)
    else:
        env = make_env(None if case == "single" else 8)
        collector = Collector(env, policy, frames_per_batch=frames, total_frames=-1)
    it = iter(collector)
    next(it)
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(it)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    collector.shutdown()
    print(json.dumps({"wall": batches * frames / wall, "cpu": batches * frames / (wall if case == "multi" else cpu)}))
"""


def _overlay(tmp: Path) -> Path:
    """A folder holding links to this interpreter's gymnasium (and its one pure-Python dependency)."""
    import farama_notifications
    import gymnasium

    folder = tmp / "overlay"
    folder.mkdir(exist_ok=True)
    for module in (gymnasium, farama_notifications):
        source = Path(module.__file__).parent
        link = folder / source.name
        if not link.exists():
            link.symlink_to(source)
    return folder


def torchrl_env(tmp: Path) -> dict[str, str] | None:
    """The environment variables to run TorchRL with, or ``None`` when it is not installed.

    If the TorchRL venv has no gymnasium, this venv's gymnasium is put on its
    ``PYTHONPATH`` (pure Python; both venvs have numpy and cloudpickle).
    """
    if not TORCHRL_PYTHON.exists():
        return None
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    for attempt in range(2):
        probe = subprocess.run(
            [str(TORCHRL_PYTHON), "-c", "import torchrl, gymnasium"], capture_output=True, timeout=300, env=env
        )
        if probe.returncode == 0:
            return env
        if attempt == 0:
            env["PYTHONPATH"] = str(_overlay(tmp))
    return None


def torchrl(case: str, frames: int, batches: int, script: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, cpu) frames/s of TorchRL's collector, run in the TorchRL venv."""
    out = subprocess.run(
        [str(TORCHRL_PYTHON), str(script), case, str(frames), str(batches)],
        capture_output=True, text=True, timeout=900, env=env, cwd=script.parent,
    )
    if out.returncode != 0:
        raise RuntimeError(f"TorchRL run failed ({case}):\n{out.stderr[-3000:]}")
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return found["wall"], found["cpu"]


# ---------------------------------------------------------------------- main
def _summary(fps: dict[str, list[tuple[float, float]]]) -> dict:
    """Median wall-clock frames/s per side; ratios as the median of per-round CPU-time ratios.

    Per-round ratios of CPU time (wall time for ``multi``, where work spreads over
    processes) cancel most of the drift that other processes on the machine cause.
    """
    row: dict = {f"{side}_fps": round(statistics.median(w for w, _ in runs)) for side, runs in fps.items() if runs}
    ours = [cpu for _, cpu in fps["rlkernel"]]
    row["vs_hand"] = round(statistics.median(o / h for o, (_, h) in zip(ours, fps["hand"])), 3)
    row["vs_torchrl"] = (
        round(statistics.median(o / t for o, (_, t) in zip(ours, fps["torchrl"])), 2) if fps["torchrl"] else None
    )
    return row



def main(argv: list[str] | None = None) -> dict:
    """Run the three cases; ``--quick`` for a tiny run (no TorchRL). Returns the numbers."""
    parser = argparse.ArgumentParser(prog="bench_collectors")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no TorchRL: checks the benchmark runs")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--cases", default="single,vector,multi")
    parser.add_argument("--no-torchrl", action="store_true")
    args, _ = parser.parse_known_args(argv)
    torch.set_num_threads(1)
    rounds, batches = (1, 2) if args.quick else (args.rounds, args.batches)
    frames = {"single": 400, "vector": 800, "multi": 800} if args.quick else {
        "single": 2000, "vector": 8000, "multi": 8000}
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        trl_env = None if args.quick or args.no_torchrl else torchrl_env(Path(tmp))
        results["torchrl"] = trl_env is not None
        script = Path(tmp) / "torchrl_collectors.py"
        script.write_text(TORCHRL_SCRIPT)
        for case in args.cases.split(","):
            fps: dict[str, list[tuple[float, float]]] = {"hand": [], "rlkernel": [], "torchrl": []}
            for _ in range(rounds):
                fps["hand"].append(hand(case, frames[case] * batches))
                fps["rlkernel"].append(rlkernel(case, frames[case], batches))
                if trl_env is not None:
                    fps["torchrl"].append(torchrl(case, frames[case], batches, script, trl_env))
            results[case] = row = _summary(fps)
            print(
                f"{case:7s} rlkernel {row['rlkernel_fps']:>7} fps | hand-written {row['hand_fps']:>7} fps "
                f"(ratio {row['vs_hand']}, bar {BAR_HAND}) | TorchRL "
                f"{row.get('torchrl_fps', 'n/a')} fps (ratio {row['vs_torchrl']}, bar {BAR_TORCHRL})",
                flush=True,
            )
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
