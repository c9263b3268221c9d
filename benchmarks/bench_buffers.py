"""Replay-buffer throughput: rlkernel against TorchRL 0.14 and against plain torch.

Workload: transitions ``{observation: f32[17], action: f32[6], reward: f32[1],
done: bool[1], next: {observation: f32[17], reward: f32[1], done: bool[1]}}`` in a
TensorDict, in a ``LazyTensorStorage`` of 1,000,000 rows:

* ``fill``: ``extend(1000)`` until full, from an empty buffer (transitions/s);
* ``sample``: ``sample(256)`` from the full buffer (transitions/s);
* ``prioritized``: ``extend(256)`` + ``sample(256)`` + ``update_priority(256)`` on a full
  prioritized buffer (iterations/s), with each tree kernel registered (``torch`` always,
  ``cpp`` when rlkernel-cext is installed);
* ``plain torch``: the practical limit, preallocated tensors filled by slice copies and
  sampled with one ``randint`` and one ``index_select`` per leaf.

Each side runs in its own fresh process, rlkernel and TorchRL alternating, for a few
rounds; the table shows medians. TorchRL runs from its own virtualenv
(``--torchrl-python``, default ``.nox/reference/bin/python``); when it is missing,
or its prioritized buffer cannot run (its C++ extension may not load with this torch),
the comparison falls back to reference figures measured on this machine; the
``scaled`` column then slows the reference prioritized figure down as much as TorchRL's
own fill and sample ran slower than their reference figures (a loaded machine).

    python -m benchmarks.bench_buffers [--quick] [--rounds N] [--no-torchrl]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict

from benchmarks.reference import torchrl_python

#: TorchRL 0.14 on this machine (fill, sample: transitions/s; prioritized: it/s).
REFERENCE = {"fill": 3.9e6, "sample": 1.4e6, "prioritized": 960.0}
DEFAULT_TORCHRL_PYTHON = torchrl_python()
TORCHRL_SCRIPT = Path(__file__).with_name("torchrl_buffers.py")


def transitions(n: int) -> TensorDict:
    """``n`` transitions of the benchmark's layout (random values)."""
    return TensorDict(
        {
            "observation": torch.randn(n, 17),
            "action": torch.randn(n, 6),
            "reward": torch.randn(n, 1),
            "done": torch.zeros(n, 1, dtype=torch.bool),
            "next": {
                "observation": torch.randn(n, 17),
                "reward": torch.randn(n, 1),
                "done": torch.zeros(n, 1, dtype=torch.bool),
            },
        },
        [n],
    )


# -- rlkernel's side (runs in a worker process) ----------------------------------------
def _rate(count: float, start: float) -> float:
    return count / (time.perf_counter() - start)


def bench_rlkernel(capacity: int, sample_calls: int, loop_iterations: int) -> dict[str, Any]:
    """Measure rlkernel's buffers and the plain-torch limit once; returns rates."""
    from rlkernel.data import LazyTensorStorage, PrioritizedSampler, TensorDictReplayBuffer
    from rlkernel.data.kernels import tree_kernel_names

    torch.manual_seed(0)
    result: dict[str, Any] = {}
    chunk = transitions(1000)
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(capacity))
    start = time.perf_counter()
    for _ in range(capacity // 1000):
        rb.extend(chunk)
    result["fill"] = _rate(capacity // 1000 * 1000, start)
    for _ in range(20):
        rb.sample(256)
    start = time.perf_counter()
    for _ in range(sample_calls):
        rb.sample(256)
    result["sample"] = _rate(sample_calls * 256, start)
    del rb

    impls = sorted(set(tree_kernel_names("sum_tree")) | {"torch"})
    big, small = transitions(min(capacity, 100_000)), transitions(256)
    for impl in impls:
        sampler = PrioritizedSampler(capacity, alpha=0.7, beta=0.5, kernel=impl)
        prb = TensorDictReplayBuffer(storage=LazyTensorStorage(capacity), sampler=sampler)
        for _ in range(max(1, capacity // big.numel())):
            prb.extend(big)

        def step(prb: TensorDictReplayBuffer = prb) -> None:
            prb.extend(small)
            batch = prb.sample(256)
            prb.update_priority(batch["index"], torch.rand(256))

        for _ in range(10):
            step()
        start = time.perf_counter()
        for _ in range(loop_iterations):
            step()
        result[f"prioritized[{impl}]"] = _rate(loop_iterations, start)
        del prb, sampler
    result.update(bench_plain_torch(capacity, sample_calls, chunk))
    return result


def bench_plain_torch(capacity: int, sample_calls: int, chunk: TensorDict) -> dict[str, float]:
    """The practical limit: preallocated leaves, slice-copy fill, randint + index_select."""
    sources = [leaf for _, leaf in chunk.items(include_nested=True, leaves_only=True)]
    leaves = [torch.empty((capacity, *s.shape[1:]), dtype=s.dtype) for s in sources]
    start = time.perf_counter()
    for row in range(0, capacity - 999, 1000):
        for leaf, src in zip(leaves, sources):
            leaf[row : row + 1000].copy_(src)
    fill = _rate(capacity // 1000 * 1000, start)
    start = time.perf_counter()
    for _ in range(sample_calls):
        index = torch.randint(capacity, (256,))
        for leaf in leaves:
            torch.index_select(leaf, 0, index)
    return {"plain_fill": fill, "plain_sample": _rate(sample_calls * 256, start)}


# -- orchestration ---------------------------------------------------------------------
def _sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"capacity": 20_000, "sample_calls": 50, "loop_iterations": 20}
    return {"capacity": 1_000_000, "sample_calls": 2000, "loop_iterations": 500}


def _run_json(cmd: list[str], timeout: float) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(lines[-1])


def _median(rounds: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rounds if isinstance(r.get(key), int | float)]
    return statistics.median(values) if values else None


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e6:.2f} M" if value >= 1e5 else f"{value:,.0f}"


def _table(ours: dict[str, Any], theirs: dict[str, Any], note: str) -> str:
    rows = [
        ("fill (transitions/s)", "fill", "fill", "plain_fill"),
        ("sample(256) (transitions/s)", "sample", "sample", "plain_sample"),
    ]
    rows += [
        (f"prioritized loop (it/s), {k[12:-1]} kernels", k, "prioritized", None)
        for k in sorted(ours)
        if k.startswith("prioritized[")
    ]
    head = f"{'workload':42s} {'rlkernel':>10s} {'TorchRL':>10s} {'ratio':>7s}"
    lines = [f"{head} {'scaled':>8s} {'ratio':>7s} {'plain torch':>12s}"]
    scaled = theirs.get("prioritized_scaled")
    for label, mine, other, plain in rows:
        a, b = ours.get(mine), theirs.get(other)
        ratio = f"{a / b:.2f}x" if a and b else "-"
        c = scaled if other == "prioritized" else None
        ratio_c = f"{a / c:.2f}x" if a and c else "-"
        line = f"{label:42s} {_fmt(a):>10s} {_fmt(b):>10s} {ratio:>7s} {_fmt(c):>8s} {ratio_c:>7s}"
        lines.append(f"{line} {_fmt(ours.get(plain) if plain else None):>12s}")
    return "\n".join([*lines, note])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print a table; return the medians and every round."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_buffers")
    parser.add_argument("--quick", action="store_true", help="small sizes, one round: checks that it runs")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3, quick: 1)")
    parser.add_argument("--torchrl-python", default=os.environ.get("RLKERNEL_TORCHRL_PYTHON", DEFAULT_TORCHRL_PYTHON))
    parser.add_argument("--no-torchrl", action="store_true", help="do not run TorchRL (use the reference figures)")
    parser.add_argument("--in-process", action="store_true", help="measure rlkernel in this process")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    torch.set_num_threads(1)
    sizes = _sizes(args.quick)
    if args.worker:
        print(json.dumps(bench_rlkernel(**sizes)), flush=True)
        return {}
    rounds = args.rounds or (1 if args.quick else 3)
    run_torchrl = not args.no_torchrl and Path(args.torchrl_python).exists()
    ours_rounds: list[dict[str, Any]] = []
    theirs_rounds: list[dict[str, Any]] = []
    torchrl_error = None if run_torchrl else f"TorchRL not run ({args.torchrl_python} missing or --no-torchrl)"
    for _ in range(rounds):
        if args.in_process:
            ours_rounds.append(bench_rlkernel(**sizes))
        else:
            worker = [
                sys.executable,
                "-m",
                "benchmarks.bench_buffers",
                "--worker",
                *(["--quick"] if args.quick else []),
            ]
            ours_rounds.append(_run_json(worker, timeout=1200))
        if run_torchrl:
            flags = [f"--capacity={sizes['capacity']}", f"--sample-calls={sizes['sample_calls']}"]
            flags.append(f"--loop-iterations={sizes['loop_iterations']}")
            try:
                theirs_rounds.append(_run_json([args.torchrl_python, str(TORCHRL_SCRIPT), *flags], timeout=1200))
            except (RuntimeError, subprocess.TimeoutExpired) as err:
                torchrl_error, run_torchrl = f"TorchRL failed: {err}", False
    ours = {k: _median(ours_rounds, k) for k in ours_rounds[0]}
    theirs: dict[str, Any] = {k: _median(theirs_rounds, k) for k in ("fill", "sample", "prioritized")}
    notes = []
    if theirs_rounds:
        notes.append(
            f"TorchRL {theirs_rounds[0].get('torchrl')} ran in its own venv, {len(theirs_rounds)} rounds."
        )
        if theirs["prioritized"] is None:
            reason = theirs_rounds[0].get("prioritized_error", "unknown")
            notes.append(f"TorchRL's prioritized buffer cannot run ({reason}); its column shows the reference figure.")
            theirs["prioritized"] = REFERENCE["prioritized"]
            if theirs.get("fill") and not args.quick:
                # The reference was measured on a quiet machine: scale it by how much
                # slower TorchRL's own fill and sample ran here and now.
                slowdown = statistics.mean([theirs["fill"] / REFERENCE["fill"], theirs["sample"] / REFERENCE["sample"]])
                theirs["prioritized_scaled"] = REFERENCE["prioritized"] * slowdown
                notes.append(
                    f"TorchRL's fill and sample ran at {slowdown:.2f}x their reference speed here (load); "
                    f"its prioritized loop scaled alike: ~{theirs['prioritized_scaled']:.0f} it/s."
                )
    else:
        notes.append(f"{torchrl_error}; the TorchRL column shows reference figures.")
        theirs = dict(REFERENCE)
    if args.quick:
        notes.append("--quick: small sizes, the numbers are not comparable.")
    if hasattr(os, "getloadavg"):
        notes.append("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    table = _table(ours, theirs, "\n".join(notes))
    print(table, flush=True)
    return {
        "rlkernel": ours,
        "torchrl": theirs,
        "ratios": {k: (ours[k] / theirs[k]) if ours.get(k) and theirs.get(k) else None for k in ("fill", "sample")}
        | {k: ours[k] / theirs["prioritized"] for k in ours if k.startswith("prioritized[") and theirs["prioritized"]},
        "rounds": {"rlkernel": ours_rounds, "torchrl": theirs_rounds},
        "notes": notes,
        "sizes": sizes,
    }


if __name__ == "__main__":
    main()
