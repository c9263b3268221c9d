"""GAE on ``[64, 2048, 1]`` float32 with episode ends: rlkernel-algos vs a numpy loop vs TorchRL.

Three sides, timed in one run, alternating (median of the rounds; ratios are what count):

* ours: ``rlkernel_algos.value.vec_generalized_advantage_estimate`` (a log-depth scan);
* a numpy reverse loop over time on contiguous ``[T, B]`` float32 arrays (the usual
  hand-written baseline), in this process;
* TorchRL 0.14's ``vec_generalized_advantage_estimate``, in a worker process running
  ``.nox/reference/bin/python`` (or ``--torchrl-python``), which times its own calls on
  the same data, one call per round, between ours. Without that interpreter the figure
  quoted for it (87 ms on this machine) is reported instead, marked as such.

Every side computes the same advantages: the maximum absolute differences to a float64
reference are reported too. All sides use one thread.

    python -m benchmarks gae            # or: python benchmarks/bench_gae.py [--quick]
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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.reference import torchrl_python

TORCHRL_PYTHON = torchrl_python()
TORCHRL_QUOTED_MS = 87.0
GAMMA, LMBDA = 0.99, 0.95

# The TorchRL side: loads the inputs, then times one call per line read on stdin.
WORKER = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate as gae
data = np.load(sys.argv[1])
t = {k: torch.from_numpy(data[k]) for k in data.files}
args = (float(sys.argv[2]), float(sys.argv[3]), t["value"], t["next_value"], t["reward"], t["done"], t["terminated"])
adv, _ = gae(*args)                                   # warm-up, and the result to compare
np.save(sys.argv[4], adv.numpy())
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    t0 = time.perf_counter()
    gae(*args)
    print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)
"""


def make_inputs(batch: int, steps: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values and rewards; episode ends with probability 1/200, half of them truncations."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, steps, 1)
    done = torch.rand(shape, generator=gen) < 1 / 200
    terminated = done & (torch.rand(shape, generator=gen) < 0.5)
    return {
        "value": torch.randn(shape, generator=gen),
        "next_value": torch.randn(shape, generator=gen),
        "reward": torch.randn(shape, generator=gen),
        "done": done,
        "terminated": terminated,
    }


def numpy_loop_gae(inputs: dict[str, np.ndarray], gamma: float, lmbda: float) -> np.ndarray:
    """The hand-written baseline: a reverse loop over time on contiguous ``[T, B]`` arrays."""
    value, next_value, reward = (np.ascontiguousarray(inputs[k][..., 0].T) for k in ("value", "next_value", "reward"))
    done = np.ascontiguousarray(inputs["done"][..., 0].T)
    terminated = np.ascontiguousarray(inputs["terminated"][..., 0].T)
    dtype = value.dtype.type
    delta = reward + dtype(gamma) * next_value * (~terminated) - value
    discount = dtype(gamma * lmbda) * (~done)
    adv = np.empty_like(delta)
    running = np.zeros(delta.shape[1], dtype=delta.dtype)
    for t in range(delta.shape[0] - 1, -1, -1):
        np.multiply(running, discount[t], out=running)
        np.add(running, delta[t], out=running)
        adv[t] = running
    return adv.T[..., None]


def _time(fn: Callable[..., object], *args: object) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def _start_torchrl(python: str, data_path: str, out_path: str) -> subprocess.Popen | None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [python, "-c", WORKER, data_path, str(GAMMA), str(LMBDA), out_path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.strip().startswith("{"):
        err = proc.stderr.read() if proc.stderr else ""
        proc.kill()
        print(f"TorchRL worker failed to start: {err.strip().splitlines()[-1:] or 'no output'}")
        return None
    return proc


def _torchrl_round(proc: subprocess.Popen) -> float:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return float(json.loads(proc.stdout.readline())["seconds"])


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and return its numbers (milliseconds, ratios, max abs differences)."""
    parser = argparse.ArgumentParser(prog="bench_gae")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, two rounds")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--torchrl-python", default=TORCHRL_PYTHON)
    args, _ = parser.parse_known_args(argv)
    from rlkernel_algos.value import vec_generalized_advantage_estimate

    torch.set_num_threads(1)
    batch, steps = (4, 128) if args.quick else (64, 2048)
    rounds = 2 if args.quick else args.rounds
    inputs = make_inputs(batch, steps)
    arrays = {k: v.numpy() for k, v in inputs.items()}
    ours_args = (GAMMA, LMBDA, inputs["value"], inputs["next_value"], inputs["reward"], inputs["done"],
                 inputs["terminated"])
    ours, _ = vec_generalized_advantage_estimate(*ours_args)
    loop = numpy_loop_gae(arrays, GAMMA, LMBDA)
    reference = numpy_loop_gae({k: (v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in arrays.items()},
                               GAMMA, LMBDA)
    result: dict = {"shape": [batch, steps, 1], "dtype": "float32", "rounds": rounds}

    with tempfile.TemporaryDirectory() as tmp:
        data_path, out_path = str(Path(tmp) / "inputs.npz"), str(Path(tmp) / "torchrl_adv.npy")
        np.savez(data_path, **arrays)
        worker = _start_torchrl(args.torchrl_python, data_path, out_path) if Path(args.torchrl_python).exists() \
            else None
        if worker is None and not Path(args.torchrl_python).exists():
            print(f"{args.torchrl_python} not found: TorchRL is compared by its quoted {TORCHRL_QUOTED_MS} ms")
        times: dict[str, list[float]] = {"ours": [], "numpy_loop": [], "torchrl": []}
        try:
            for _ in range(rounds):  # alternate the sides within each round
                times["ours"].append(_time(vec_generalized_advantage_estimate, *ours_args))
                times["numpy_loop"].append(_time(numpy_loop_gae, arrays, GAMMA, LMBDA))
                if worker is not None:
                    times["torchrl"].append(_torchrl_round(worker))
        finally:
            if worker is not None:
                worker.kill()
                worker.wait()
        torchrl_adv = np.load(out_path) if worker is not None else None

    ms = {k: 1e3 * statistics.median(v) for k, v in times.items() if v}
    result["ours_ms"] = round(ms["ours"], 3)
    result["numpy_loop_ms"] = round(ms["numpy_loop"], 3)
    result["numpy_loop_over_ours"] = round(ms["numpy_loop"] / ms["ours"], 1)
    result["max_abs_diff_ours_vs_float64"] = float(np.abs(ours.numpy() - reference).max())
    result["max_abs_diff_numpy_loop_vs_float64"] = float(np.abs(loop - reference).max())
    if torchrl_adv is not None:
        result["torchrl_ms"] = round(ms["torchrl"], 3)
        result["torchrl_source"] = "measured (torchrl 0.14, subprocess)"
        result["max_abs_diff_ours_vs_torchrl"] = float(np.abs(ours.numpy() - torchrl_adv).max())
        result["max_abs_diff_torchrl_vs_float64"] = float(np.abs(torchrl_adv - reference).max())
    else:
        result["torchrl_ms"] = TORCHRL_QUOTED_MS
        result["torchrl_source"] = "quoted, not measured"
    result["torchrl_over_ours"] = round(result["torchrl_ms"] / ms["ours"], 1)
    for key, value in result.items():
        print(f"{key:38s} {value}")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
