"""ParallelEnv(8, CartPole) against gymnasium's AsyncVectorEnv(8): start-up and steps/s.

Both sides run the same environment (``CartPole-v1``), 8 worker processes, random actions
and the same number of steps, with auto-reset (``step_and_maybe_reset`` on our side,
gymnasium's built-in autoreset on theirs). Rounds alternate between the two sides, so that
load from other processes hits both alike; the throughput ratio is the median of the
per-round ratios. On Linux the CPU time of the parent and of the workers is also read from
``/proc``, giving a load-independent cost per step.

Start-up is measured in fresh interpreters (construction plus the first reset), alternating:

* ``rlkernel_cold``: the first ParallelEnv of a process (the forkserver starts and imports
  torch once, then forks the 8 workers);
* ``rlkernel_warm``: a second ParallelEnv in the same process (the server is running);
* ``gymnasium_async``: AsyncVectorEnv(8) with its default start method (``fork``).

``sub_env_step_us`` is the in-process cost of one step of the environment each worker
runs: ``rlkernel_gym.GymEnv._step`` (which builds a TensorDict), the direct step the
workers use (``GymEnv._step_into_fn``: writes into preallocated tensors), and
gymnasium's ``env.step``. It bounds what the batching can do.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

NUM_WORKERS = 8
ENV_ID = "CartPole-v1"

STARTUP_PROBE = """
import json, sys, time
import torch
torch.set_num_threads(1)
side = sys.argv[1]
if side == "rlkernel":
    from rlkernel_gym import GymEnv
    from rlkernel.envs.batched import ParallelEnv
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        env = ParallelEnv({n}, lambda: GymEnv("{env_id}"))
        env.reset()
        times.append(time.perf_counter() - t0)
        env.close()
    print(json.dumps({{"cold": times[0], "warm": times[1]}}))
else:
    import gymnasium as gym
    t0 = time.perf_counter()
    env = gym.vector.AsyncVectorEnv([lambda: gym.make("{env_id}")] * {n})
    env.reset(seed=0)
    elapsed = time.perf_counter() - t0
    env.close()
    print(json.dumps({{"cold": elapsed}}))
"""


def _startup(side: str) -> dict[str, float]:
    code = STARTUP_PROBE.format(n=NUM_WORKERS, env_id=ENV_ID)
    out = subprocess.run([sys.executable, "-c", code, side], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cpu_s(pids: list[int]) -> float | None:
    """User + system CPU seconds of ``pids`` (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        total = 0
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None


def _measure(loop, pids: list[int], num_steps: int) -> tuple[float, float | None]:
    """Steps/s of ``loop(num_steps)`` and CPU microseconds per env step (all processes)."""
    cpu0 = _cpu_s(pids)
    start = time.perf_counter()
    loop(num_steps)
    elapsed = time.perf_counter() - start
    cpu1 = _cpu_s(pids)
    env_steps = NUM_WORKERS * num_steps
    cpu = None if cpu0 is None or cpu1 is None else 1e6 * (cpu1 - cpu0) / env_steps
    return env_steps / elapsed, cpu


def _ours_loop(env):
    td = env.reset()

    def loop(num_steps: int) -> None:
        nonlocal td
        for _ in range(num_steps):
            env.rand_action(td)
            _, td = env.step_and_maybe_reset(td)

    return loop


def _gym_loop(env):
    env.reset(seed=0)
    space = env.action_space

    def loop(num_steps: int) -> None:
        for _ in range(num_steps):
            env.step(space.sample())

    return loop


def _sub_env_step_us(num_steps: int) -> dict[str, float]:
    """In-process cost of one step: GymEnv._step, GymEnv's direct worker step, gymnasium's step."""
    import gymnasium as gym
    import torch
    from tensordict import TensorDict

    from rlkernel_gym import GymEnv

    ours = GymEnv(ENV_ID)
    ours.reset()
    action = TensorDict({"action": torch.tensor(1)}, [])
    theirs = gym.make(ENV_ID)
    theirs.reset(seed=0)

    def ours_loop() -> None:
        for _ in range(num_steps):
            if ours._step(action)["done"].any():
                ours.reset()

    outputs = {key: torch.zeros_like(value) for key, value in ours._step(action).items()}
    direct = ours._step_into_fn({"action": action["action"]}, outputs)
    ours.reset()

    def direct_loop() -> None:
        done = outputs["done"].numpy()
        for _ in range(num_steps):
            direct()
            if done[0]:
                ours.reset()

    def theirs_loop() -> None:
        for _ in range(num_steps):
            _, _, terminated, truncated, _ = theirs.step(1)
            if terminated or truncated:
                theirs.reset()

    times: dict[str, list[float]] = {"rlkernel_gym": [], "rlkernel_gym_direct": [], "gymnasium": []}
    for _ in range(5):
        for name, loop in (("rlkernel_gym", ours_loop), ("rlkernel_gym_direct", direct_loop),
                           ("gymnasium", theirs_loop)):
            start = time.perf_counter()
            loop()
            times[name].append(1e6 * (time.perf_counter() - start) / num_steps)
    ours.close()
    theirs.close()
    return {name: round(statistics.median(t), 1) for name, t in times.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="bench_parallel")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the benchmark runs")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--steps", type=int, default=1000, help="batched steps per round")
    args, _ = parser.parse_known_args(argv)
    rounds, steps = (1, 100) if args.quick else (args.rounds, args.steps)
    startup_rounds = 1 if args.quick else 3

    import gymnasium as gym
    import torch

    from rlkernel.envs.batched import ParallelEnv
    from rlkernel_gym import GymEnv

    torch.set_num_threads(1)
    cold, warm, gym_start = [], [], []
    for _ in range(startup_rounds):
        ours = _startup("rlkernel")
        cold.append(ours["cold"])
        warm.append(ours["warm"])
        gym_start.append(_startup("gymnasium")["cold"])

    me = os.getpid()
    ours_env = ParallelEnv(NUM_WORKERS, lambda: GymEnv(ENV_ID), check_actions=False)
    gym_env = gym.vector.AsyncVectorEnv([lambda: gym.make(ENV_ID)] * NUM_WORKERS)
    sides = {
        "rlkernel": (_ours_loop(ours_env), [me, *ours_env.worker_pids]),
        "gymnasium": (_gym_loop(gym_env), [me, *(p.pid for p in gym_env.processes)]),
    }
    rates: dict[str, list[float]] = {name: [] for name in sides}
    cpus: dict[str, list[float]] = {name: [] for name in sides}
    try:
        for loop, _ in sides.values():  # warm-up
            loop(min(steps, 200))
        for _ in range(rounds):
            for name, (loop, pids) in sides.items():
                rate, cpu = _measure(loop, pids, steps)
                rates[name].append(rate)
                if cpu is not None:
                    cpus[name].append(cpu)
    finally:
        ours_env.close()
        gym_env.close()

    ratios = [a / b for a, b in zip(rates["rlkernel"], rates["gymnasium"])]
    result = {
        "env": ENV_ID,
        "num_workers": NUM_WORKERS,
        "steps_per_round": NUM_WORKERS * steps,
        "rounds": rounds,
        "startup_s": {
            "rlkernel_cold": round(statistics.median(cold), 3),
            "rlkernel_warm": round(statistics.median(warm), 3),
            "gymnasium_async": round(statistics.median(gym_start), 3),
        },
        "steps_per_s": {name: round(statistics.median(r)) for name, r in rates.items()},
        "throughput_ratio": round(statistics.median(ratios), 3),
        "per_round_ratios": [round(r, 2) for r in ratios],
        "cpu_us_per_env_step": {name: round(statistics.median(c), 1) for name, c in cpus.items() if c},
        "sub_env_step_us": _sub_env_step_us(200 if args.quick else 2000),
        "target": "start-up under 3 s; throughput ratio >= 1.0",
    }
    print(
        f"ParallelEnv({NUM_WORKERS}, {ENV_ID}) start-up: cold {result['startup_s']['rlkernel_cold']} s, "
        f"warm {result['startup_s']['rlkernel_warm']} s; AsyncVectorEnv({NUM_WORKERS}) "
        f"{result['startup_s']['gymnasium_async']} s\n"
        f"steps/s (medians over {rounds} alternating rounds of {NUM_WORKERS * steps} steps): "
        f"rlkernel {result['steps_per_s']['rlkernel']:,}, gymnasium {result['steps_per_s']['gymnasium']:,}; "
        f"ratio {result['throughput_ratio']} (per round {result['per_round_ratios']})\n"
        f"CPU per env step (parent + workers): {result['cpu_us_per_env_step']} us; "
        f"one sub-env step in process: {result['sub_env_step_us']} us"
    )
    return result


if __name__ == "__main__":
    main()
