"""rlkernel-gym rollouts against plain gymnasium loops, side by side.

Each round runs the two sides back to back with the same actions and records their ratio;
the reported ratio is the median over rounds (absolute numbers drift with machine load):

* ``single``: ``GymEnv("CartPole-v1").rollout(T, break_when_any_done=False)`` vs a plain
  ``gymnasium.make("CartPole-v1")`` loop (``step``, ``reset`` when done) taking the actions
  the rollout drew. Bar: ratio >= 0.25.
* ``vector``: ``GymEnv("CartPole-v1", num_envs=8).rollout(T / 8)`` vs gymnasium's own
  ``SyncVectorEnv`` (``make_vec(..., vectorization_mode="sync")``, its default autoreset)
  stepped with the same actions. Bar: ratio >= 0.5. Steps count every sub-env step.
* ``policy`` (context): ``rollout`` with a policy (one TensorDict per step) vs the generic
  ``EnvBase.rollout`` loop, both with the same trivial policy.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium
import numpy as np
import torch
from tensordict import TensorDictBase

from rlkernel.envs import EnvBase
from rlkernel_gym import GymEnv

ENV_ID = "CartPole-v1"
NUM_ENVS = 8


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _plain_single(env: gymnasium.Env, actions: np.ndarray, seed: int) -> None:
    env.reset(seed=seed)
    step, reset = env.step, env.reset
    for action in actions:
        _, _, terminated, truncated, _ = step(action)
        if terminated or truncated:
            reset()


def _plain_vector(env: gymnasium.vector.VectorEnv, actions: np.ndarray, seed: int) -> None:
    env.reset(seed=seed)
    step = env.step
    for action in actions:
        step(action)


def _side_by_side(steps: int, rounds: int, num_envs: int | None) -> dict:
    env = GymEnv(ENV_ID, num_envs=num_envs)
    env.set_seed(0)
    if num_envs is None:
        plain: gymnasium.Env | gymnasium.vector.VectorEnv = gymnasium.make(ENV_ID)
    else:
        plain = gymnasium.make_vec(ENV_ID, num_envs, vectorization_mode="sync")
    per_env = steps if num_envs is None else steps // num_envs
    total = per_env * (num_envs or 1)
    ours, theirs, ratios = [], [], []
    for r in range(rounds):
        seconds, out = _timed(lambda: env.rollout(per_env, break_when_any_done=False))
        assert isinstance(out, TensorDictBase)
        actions = out["action"].numpy()
        if num_envs is None:
            start = time.perf_counter()
            _plain_single(plain, actions, r)
        else:
            time_major = np.ascontiguousarray(actions.T)
            start = time.perf_counter()
            _plain_vector(plain, time_major, r)
        plain_seconds = time.perf_counter() - start
        ours.append(total / seconds)
        theirs.append(total / plain_seconds)
        ratios.append(ours[-1] / theirs[-1])
    env.close()
    plain.close()
    return {
        "steps": total,
        "rounds": rounds,
        "rlkernel_steps_per_s": round(statistics.median(ours)),
        "gymnasium_steps_per_s": round(statistics.median(theirs)),
        "ratio": round(statistics.median(ratios), 3),
    }


def _policy_vs_generic(steps: int, rounds: int) -> dict:
    env = GymEnv(ENV_ID)
    env.set_seed(0)
    generator = torch.Generator().manual_seed(0)

    def policy(td: TensorDictBase) -> TensorDictBase:
        return td.set("action", torch.randint(0, 2, (), generator=generator))

    fast, generic, ratios = [], [], []
    for _ in range(rounds):
        a, _ = _timed(lambda: env.rollout(steps, policy, break_when_any_done=False))
        b, _ = _timed(lambda: EnvBase.rollout(env, steps, policy, break_when_any_done=False))
        fast.append(steps / a)
        generic.append(steps / b)
        ratios.append(fast[-1] / generic[-1])
    return {
        "steps": steps,
        "fast_path_steps_per_s": round(statistics.median(fast)),
        "generic_loop_steps_per_s": round(statistics.median(generic)),
        "ratio": round(statistics.median(ratios), 3),
    }


def main(argv: list[str] | None = None) -> dict:
    """Run the comparisons; ``--quick`` for a tiny run. Returns the numbers."""
    parser = argparse.ArgumentParser(prog="bench_gym")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the benchmark runs")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args, _ = parser.parse_known_args(argv)
    torch.set_num_threads(1)
    steps, rounds = (400, 2) if args.quick else (args.steps, args.rounds)
    result = {
        "single": {**_side_by_side(steps, rounds, None), "bar": 0.25},
        "vector": {**_side_by_side(steps, rounds, NUM_ENVS), "num_envs": NUM_ENVS, "bar": 0.5},
        "policy": _policy_vs_generic(max(steps // 10, 100), rounds),
    }
    single, vector, policy = result["single"], result["vector"], result["policy"]
    print(
        f"GymEnv rollout        {single['rlkernel_steps_per_s']:>9} steps/s   plain gymnasium loop "
        f"{single['gymnasium_steps_per_s']:>9} steps/s   ratio {single['ratio']} (bar {single['bar']})\n"
        f"GymEnv x{NUM_ENVS} rollout     {vector['rlkernel_steps_per_s']:>9} steps/s   SyncVectorEnv loop   "
        f"{vector['gymnasium_steps_per_s']:>9} steps/s   ratio {vector['ratio']} (bar {vector['bar']})\n"
        f"rollout with policy   {policy['fast_path_steps_per_s']:>9} steps/s   generic EnvBase loop "
        f"{policy['generic_loop_steps_per_s']:>9} steps/s   ratio {policy['ratio']}"
    )
    return result


if __name__ == "__main__":
    main()
