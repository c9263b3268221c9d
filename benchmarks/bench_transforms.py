"""What a chain of transforms costs per step, in rlkernel and in TorchRL, side by side.

A counting environment (rlkernel's ``CountingEnv``; the same few lines written against
TorchRL's ``EnvBase`` on the other side) is stepped with ``step_and_maybe_reset``, bare
and inside a ``TransformedEnv`` with the same chain in both libraries::

    StepCounter(max_steps=1000), RewardSum(), InitTracker(),
    ObservationNorm(loc=0.5, scale=2.0), CatFrames(4, -1)

Each side runs in its own interpreter (TorchRL lives in another virtual environment:
``--torchrl-python``, default ``.nox/reference/bin/python``); rounds alternate the two
sides and each round also alternates bare and transformed loops. Reported, as medians over
rounds: steps per second, the overhead of the chain per step (transformed minus bare, in
microseconds) and the ratios rlkernel / TorchRL. Absolute numbers drift with machine load;
the ratios of one run are what to quote.

Run: ``python tests/transforms/bench_transforms.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap

from benchmarks.reference import torchrl_python

COMMON = """
import json, sys, time
import torch
torch.set_num_threads(1)
STEPS = {steps}

def loop(env, steps):
    td = env.reset()
    action = torch.ones(1) * 0.5
    start = time.perf_counter()
    for _ in range(steps):
        td.set("action", action)
        _, td = env.step_and_maybe_reset(td)
    return time.perf_counter() - start

def measure(bare, transformed):
    loop(bare, 50); loop(transformed, 50)  # warm up
    b1 = loop(bare, STEPS); t1 = loop(transformed, STEPS)
    t2 = loop(transformed, STEPS); b2 = loop(bare, STEPS)
    bare_s, trans_s = (b1 + b2) / 2, (t1 + t2) / 2
    print(json.dumps({{"bare_steps_per_s": STEPS / bare_s, "transformed_steps_per_s": STEPS / trans_s,
                      "overhead_us": (trans_s - bare_s) / STEPS * 1e6}}))
"""

RLKERNEL = """
from rlkernel.testing import CountingEnv
from rlkernel.transforms import (CatFrames, Compose, InitTracker, ObservationNorm, RewardSum,
                                 StepCounter, TransformedEnv)
chain = Compose(StepCounter(max_steps=1000), RewardSum(), InitTracker(),
                ObservationNorm(loc=0.5, scale=2.0, in_keys=["observation"]),
                CatFrames(4, -1, in_keys=["observation"]))
measure(CountingEnv(max_count=1e9), TransformedEnv(CountingEnv(max_count=1e9), chain))
"""

TORCHRL = """
from tensordict import TensorDict
from torchrl.data import Bounded, Composite, Unbounded
from torchrl.envs import (CatFrames, Compose, EnvBase, InitTracker, ObservationNorm, RewardSum,
                          StepCounter, TransformedEnv)

class CountingEnv(EnvBase):
    def __init__(self):
        super().__init__(batch_size=())
        self.observation_spec = Composite(observation=Unbounded((1,)))
        self.action_spec = Bounded(0.0, 1.0, shape=(1,))
        self.reward_spec = Unbounded((1,))
        self.count = torch.zeros(1)

    def _reset(self, td):
        self.count.zero_()
        false = torch.zeros(1, dtype=torch.bool)
        return TensorDict({"observation": self.count.clone(), "done": false, "terminated": false.clone(),
                           "truncated": false.clone()}, [])

    def _step(self, td):
        action = td.get("action")
        self.count += action
        false = torch.zeros(1, dtype=torch.bool)
        return TensorDict({"observation": self.count.clone(), "reward": action.clone(), "done": false,
                           "terminated": false.clone(), "truncated": false.clone()}, [])

    def _set_seed(self, seed):
        pass

chain = Compose(StepCounter(max_steps=1000), RewardSum(), InitTracker(),
                ObservationNorm(loc=0.5, scale=2.0, in_keys=["observation"]),
                CatFrames(4, -1, in_keys=["observation"]))
measure(CountingEnv(), TransformedEnv(CountingEnv(), chain))
"""


def _side(python: str, body: str, steps: int) -> dict:
    code = COMMON.format(steps=steps) + textwrap.dedent(body)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, env=env, cwd="/")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    """Run the comparison; returns the medians and ratios."""
    parser = argparse.ArgumentParser(prog="bench_transforms")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the benchmark runs")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--torchrl-python", default=torchrl_python())
    parser.add_argument("--skip-torchrl", action="store_true", help="measure the rlkernel side only")
    args = parser.parse_args(argv)
    steps, rounds = (200, 1) if args.quick else (args.steps, args.rounds)
    with_torchrl = not args.skip_torchrl and os.path.exists(args.torchrl_python)
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(_side(sys.executable, RLKERNEL, steps))
        if with_torchrl:
            theirs.append(_side(args.torchrl_python, TORCHRL, steps))

    def med(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    result: dict = {"steps": steps, "rounds": rounds}
    for name, rows in (("rlkernel", ours), ("torchrl", theirs)):
        if rows:
            result[name] = {k: round(med(rows, k), 1) for k in rows[0]}
    if theirs:
        speed = [o["transformed_steps_per_s"] / t["transformed_steps_per_s"] for o, t in zip(ours, theirs)]
        result["ratio_transformed_steps_per_s"] = round(statistics.median(speed), 2)
        result["ratio_overhead_us"] = round(
            statistics.median(o["overhead_us"] / t["overhead_us"] for o, t in zip(ours, theirs)), 2
        )
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
