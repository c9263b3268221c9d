"""The per-step path of ``GymEnv`` against a plain gymnasium ``step``, side by side.

This is the generic path that ``ParallelEnv`` workers and collectors take (one TensorDict in,
one out per step), not the buffered ``rollout`` fast path (see ``bench_gym.py``).

Each round times a block of steps of one side, then a block of the other (the order
alternates between rounds; both envs carry on where they were), every call timed on its own;
the numbers reported are medians over rounds of the per-call microseconds, of the overhead
(ours minus gymnasium's) and of the ratio (ours / gymnasium's), and the fastest block of each
side (``best_*``: the least disturbed by other processes, closest to an idle machine). Short
blocks, many rounds: the load of a shared machine changes within seconds. Both sides take the same actions,
drawn in advance, from equally seeded ``CartPole-v1`` environments, so their episodes end
at the same steps.

* ``step_checked`` / ``step_unchecked``: ``GymEnv("CartPole-v1", check_actions=...).step(td)``
  vs ``gymnasium.make("CartPole-v1").step(action)``. The reset after an episode ends, and
  moving to the next root TensorDict (``step_mdp``), are outside the timed calls.
* ``step_and_maybe_reset``: ``env.step_and_maybe_reset(td)`` vs gymnasium's
  ``step(action)`` followed by ``reset()`` when the episode ended, both timed together.

The bar (what the per-step work of the wrapper should add): at most ~15 µs per step above
gymnasium's own step, judged on the best blocks (``best_overhead_us``); the medians show the
same under the current load.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium
import numpy as np
import torch

from rlkernel.envs.step import step_mdp
from rlkernel_gym import GymEnv

ENV_ID = "CartPole-v1"
OVERHEAD_BAR_US = 15.0


class _Ours:
    """Steps a ``GymEnv`` through blocks of actions, timing only the calls measured."""

    def __init__(self, env: GymEnv, with_reset: bool) -> None:
        self.env, self.with_reset = env, with_reset
        env.set_seed(0)
        self.td = env.reset()
        self.keys = {"reward_keys": env.reward_keys, "done_keys": env.done_keys, "action_keys": env.action_keys}

    def __call__(self, actions: list[torch.Tensor]) -> float:
        """Seconds spent in ``step`` (or ``step_and_maybe_reset``) over ``actions``."""
        env, td, clock, total = self.env, self.td, time.perf_counter, 0.0
        if self.with_reset:
            step_and_maybe_reset = env.step_and_maybe_reset
            for action in actions:
                td.set("action", action)
                start = clock()
                _, td = step_and_maybe_reset(td)
                total += clock() - start
        else:
            step, keys = env.step, self.keys
            for action in actions:
                td.set("action", action)
                start = clock()
                step(td)
                total += clock() - start
                td = env.reset() if td.get(("next", "done")).item() else step_mdp(td, **keys)
        self.td = td
        return total


class _Plain:
    """Steps a gymnasium env through blocks of the same actions."""

    def __init__(self, env: gymnasium.Env, with_reset: bool) -> None:
        self.env, self.with_reset = env, with_reset
        env.reset(seed=0)

    def __call__(self, actions: list[np.int64]) -> float:
        """Seconds spent in ``step`` (plus ``reset`` after an episode, ``with_reset``)."""
        step, reset, clock, total = self.env.step, self.env.reset, time.perf_counter, 0.0
        if self.with_reset:
            for action in actions:
                start = clock()
                _, _, terminated, truncated, _ = step(action)
                if terminated or truncated:
                    reset()
                total += clock() - start
        else:
            for action in actions:
                start = clock()
                _, _, terminated, truncated, _ = step(action)
                total += clock() - start
                if terminated or truncated:
                    reset()
        return total


def _scenario(name: str, block: int, rounds: int) -> dict[str, float]:
    """Alternate blocks of ``block`` steps of each side, ``rounds`` times; medians."""
    env = GymEnv(ENV_ID, check_actions=name != "step_unchecked")
    plain = gymnasium.make(ENV_ID)
    with_reset = name == "step_and_maybe_reset"
    ours, theirs = _Ours(env, with_reset), _Plain(plain, with_reset)
    generator = torch.Generator().manual_seed(0)
    drawn = env.action_spec.rand((rounds + 1, block), generator=generator)
    ours(list(drawn[0].unbind(0))), theirs([np.int64(a) for a in drawn[0].tolist()])  # warm up
    ours_us, theirs_us, overheads, ratios = [], [], [], []
    try:
        for r in range(1, rounds + 1):
            actions, plain_actions = list(drawn[r].unbind(0)), [np.int64(a) for a in drawn[r].tolist()]
            if r % 2:
                b, a = theirs(plain_actions), ours(actions)
            else:
                a, b = ours(actions), theirs(plain_actions)
            ours_us.append(a / block * 1e6)
            theirs_us.append(b / block * 1e6)
            overheads.append(ours_us[-1] - theirs_us[-1])
            ratios.append(ours_us[-1] / theirs_us[-1])
    finally:
        env.close()
        plain.close()
    best_ours, best_theirs = min(ours_us), min(theirs_us)
    return {
        "rlkernel_us_per_step": round(statistics.median(ours_us), 2),
        "gymnasium_us_per_step": round(statistics.median(theirs_us), 2),
        "overhead_us": round(statistics.median(overheads), 2),
        "ratio": round(statistics.median(ratios), 2),
        # the least disturbed block of each side: closest to an idle machine
        "best_rlkernel_us_per_step": round(best_ours, 2),
        "best_gymnasium_us_per_step": round(best_theirs, 2),
        "best_overhead_us": round(best_ours - best_theirs, 2),
        "bar_overhead_us": OVERHEAD_BAR_US,
    }


def main(argv: list[str] | None = None) -> dict:
    """Run the comparisons; ``--quick`` for a tiny run. Returns the numbers."""
    parser = argparse.ArgumentParser(prog="bench_gym_step")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the benchmark runs")
    parser.add_argument("--block", type=int, default=200, help="steps per side per round")
    parser.add_argument("--rounds", type=int, default=61)
    args, _ = parser.parse_known_args(argv)
    torch.set_num_threads(1)
    block, rounds = (100, 3) if args.quick else (args.block, args.rounds)
    result: dict = {
        name: _scenario(name, block, rounds) for name in ("step_checked", "step_unchecked", "step_and_maybe_reset")
    }
    result["block"], result["rounds"] = block, rounds
    for name in ("step_checked", "step_unchecked", "step_and_maybe_reset"):
        r = result[name]
        print(
            f"{name:22s} GymEnv {r['rlkernel_us_per_step']:6.2f} us  gymnasium {r['gymnasium_us_per_step']:5.2f} us"
            f"  overhead {r['overhead_us']:6.2f} us  ratio {r['ratio']:5.2f}   best blocks: "
            f"{r['best_rlkernel_us_per_step']:6.2f} vs {r['best_gymnasium_us_per_step']:5.2f} us, overhead "
            f"{r['best_overhead_us']:6.2f} us (bar {r['bar_overhead_us']})"
        )
    return result


if __name__ == "__main__":
    main()
