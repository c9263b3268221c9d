"""Stable-Baselines3 side of ``bench_ppo_solve``: wall time for PPO to reach a return on CartPole-v1.

Trains ``PPO("MlpPolicy")`` with rl-zoo's CartPole-v1 settings (8 ``DummyVecEnv`` environments
from ``make_vec_env``, 32 steps each per batch, 20 epochs of one 256-frame minibatch, gamma 0.98,
GAE lambda 0.8, learning rate 1e-3 and clip range 0.2 both annealed linearly to 0 over
``--max-frames``, no entropy bonus, value coefficient 0.5, gradient norm 0.5, normalised
advantages, separate 64-64 tanh actor and critic, Adam eps 1e-5) on one CPU thread.

The clock starts right before the environments are made (after the imports) and stops at the
end of the first collected batch at which at least ``--window`` training episodes have ended
and the mean return of the last ``--window`` of them (stochastic policy, all environments
pooled, in the order they ended, read from the ``Monitor`` infos) is at least ``--target``.
If ``--max-frames`` runs out first the record says ``"reached": false``.

Run by the reference interpreter (TorchRL / SB3 virtualenv), never by rlkernel's::

    .nox/reference/bin/python benchmarks/ppo_solve_sb3.py --seed 0 --target 475 --window 20 \\
        --max-frames 100000

It prints one JSON line on stdout: ``{"library": "sb3", "seed", "reached", "seconds", "frames",
"episodes", "final_mean_return"}``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import time
import warnings

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

torch.set_num_threads(1)

N_ENVS = 8
STEPS_PER_ENV = 32


def linear_to_zero(start: float):
    """An SB3 schedule: ``start`` scaled by the remaining fraction of training (never below 0)."""
    return lambda progress_remaining: start * max(progress_remaining, 0.0)


class StopAtReturn(BaseCallback):
    """Gathers finished-episode returns; stops training at a batch end once the window mean is high enough."""

    def __init__(self, target: float, window: int):
        super().__init__()
        self.target, self.window = target, window
        self.returns: list[float] = []
        self.stopped_at: float | None = None

    def window_mean(self) -> float | None:
        """Mean return of the last ``window`` finished episodes (``None`` before any ended)."""
        last = self.returns[-self.window:]
        return sum(last) / len(last) if last else None

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:  # DummyVecEnv order: env 0..7 within a step
            if "episode" in info:
                self.returns.append(float(info["episode"]["r"]))
        if self.locals["n_steps"] != self.locals["n_rollout_steps"] - 1:
            return True  # the batch is not complete yet
        mean = self.window_mean()
        if len(self.returns) >= self.window and mean is not None and mean >= self.target:
            self.stopped_at = time.perf_counter()
            return False
        return True


def solve(seed: int, target: float, window: int, max_frames: int) -> dict:
    """Train until the criterion holds or ``max_frames`` are used; the timing record."""
    start = time.perf_counter()
    env = make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=seed)
    model = PPO(
        "MlpPolicy", env, learning_rate=linear_to_zero(1e-3), n_steps=STEPS_PER_ENV, batch_size=256,
        n_epochs=20, gamma=0.98, gae_lambda=0.8, clip_range=linear_to_zero(0.2), ent_coef=0.0,
        vf_coef=0.5, max_grad_norm=0.5, normalize_advantage=True, seed=seed, device="cpu", verbose=0,
    )
    callback = StopAtReturn(target, window)
    model.learn(total_timesteps=max_frames, callback=callback, progress_bar=False)
    stop = callback.stopped_at if callback.stopped_at is not None else time.perf_counter()
    env.close()
    return {
        "library": "sb3", "seed": seed, "reached": callback.stopped_at is not None,
        "seconds": stop - start, "frames": int(model.num_timesteps), "episodes": len(callback.returns),
        "final_mean_return": callback.window_mean(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=475.0)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--max-frames", type=int, default=100_000)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    record = solve(args.seed, args.target, args.window, args.max_frames)
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
