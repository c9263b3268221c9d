"""TorchRL 0.14 side of ``bench_ppo_solve``: wall time for PPO to reach a return on CartPole-v1.

Written the way TorchRL's own PPO examples are: a ``Collector`` over a batched gym env with a
``RewardSum`` transform, a ``ProbabilisticActor`` (``OneHotCategorical``) and a ``ValueOperator``,
``GAE``, ``ClipPPOLoss``, minibatches drawn from a ``ReplayBuffer`` (``SamplerWithoutReplacement``
over ``LazyTensorStorage``), learning rate and ``clip_epsilon`` annealed once per batch.
Settings are rl-zoo's CartPole-v1 ones, the same as ``ppo_solve_sb3.py``: 8 environments, 32 steps
each per batch, 20 epochs of one 256-frame minibatch, gamma 0.98, GAE lambda 0.8, learning rate
1e-3 and clip 0.2 both annealed linearly to 0 over ``--max-frames``, no entropy bonus, value
coefficient 0.5 on a squared error, gradient norm 0.5, normalised advantages, separate 64-64 tanh
actor and critic initialised as SB3 does (orthogonal), Adam eps 1e-5, one CPU thread.

The environments are one in-process ``gymnasium.vector.SyncVectorEnv`` in ``SAME_STEP`` autoreset
mode wrapped by ``GymWrapper`` (the analogue of SB3's ``DummyVecEnv``). ``GymEnv("CartPole-v1",
num_envs=8)`` is not used: with gymnasium 1.4 it builds an ``AsyncVectorEnv`` in the default
``NEXT_STEP`` mode, which TorchRL 0.14 turns into a spurious reward-0 transition after every
episode (and 8 worker processes on a 2-core machine).

The clock starts right before the environments are made (after the imports) and stops after the
first collected batch at which at least ``--window`` training episodes have ended and the mean of
``("next", "episode_reward")`` at the last ``--window`` ``("next", "done")`` steps (stochastic
policy, all environments pooled, in the order they ended) is at least ``--target``.

Run by the reference interpreter (TorchRL / SB3 virtualenv), never by rlkernel's::

    .nox/reference/bin/python benchmarks/ppo_solve_torchrl.py --seed 0 --target 475 \\
        --window 20 --max-frames 100000

It prints one JSON line on stdout: ``{"library": "torchrl", "seed", "reached", "seconds", "frames",
"episodes", "final_mean_return"}``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import logging
import math
import time
import warnings

import gymnasium as gym
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.envs import GymWrapper, RewardSum, TransformedEnv
from torchrl.modules import MLP, OneHotCategorical, ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

torch.set_num_threads(1)

N_ENVS, STEPS_PER_ENV, MINIBATCH, EPOCHS = 8, 32, 256, 20
LR, CLIP, GAMMA, LMBDA, VF_COEF, MAX_GRAD_NORM = 1e-3, 0.2, 0.98, 0.8, 0.5, 0.5


def make_env(seed: int) -> TransformedEnv:
    """Eight in-process CartPole-v1 copies as one batched TorchRL env counting episode returns."""
    vec = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * N_ENVS,
                                   autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    env = TransformedEnv(GymWrapper(vec), RewardSum())
    env.set_seed(seed)
    return env


def mlp(out_features: int, head_gain: float) -> MLP:
    """A 4-64-64 tanh MLP with SB3's orthogonal initialisation (hidden gain sqrt 2)."""
    net = MLP(in_features=4, out_features=out_features, num_cells=[64, 64], activation_class=nn.Tanh)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    for layer in linears:
        nn.init.orthogonal_(layer.weight, head_gain if layer is linears[-1] else math.sqrt(2))
        nn.init.zeros_(layer.bias)
    return net


def make_modules(env: TransformedEnv) -> tuple[ProbabilisticActor, ValueOperator]:
    """Separate actor (one-hot categorical over the logits) and critic."""
    actor = ProbabilisticActor(
        TensorDictModule(mlp(2, 0.01), in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"], spec=env.action_spec, distribution_class=OneHotCategorical,
        return_log_prob=True,
    )
    critic = ValueOperator(mlp(1, 1.0), in_keys=["observation"])
    return actor, critic


def solve(seed: int, target: float, window: int, max_frames: int) -> dict:
    """Train until the criterion holds or ``max_frames`` are used; the timing record."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    env = make_env(seed)
    actor, critic = make_modules(env)
    collector = Collector(env, actor, frames_per_batch=N_ENVS * STEPS_PER_ENV, total_frames=max_frames,
                          device="cpu")
    adv_module = GAE(gamma=GAMMA, lmbda=LMBDA, value_network=critic, average_gae=False)
    loss_module = ClipPPOLoss(actor_network=actor, critic_network=critic, clip_epsilon=CLIP,
                              entropy_bonus=False, critic_coeff=VF_COEF, loss_critic_type="l2",
                              normalize_advantage=True)
    optim = torch.optim.Adam(loss_module.parameters(), lr=LR, eps=1e-5)
    buffer = ReplayBuffer(storage=LazyTensorStorage(N_ENVS * STEPS_PER_ENV),
                          sampler=SamplerWithoutReplacement(), batch_size=MINIBATCH)
    returns: list[float] = []
    frames, reached, stop = 0, False, None
    for data in collector:
        frames += data.numel()
        done = data["next", "done"].transpose(0, 1)  # (time, env, 1): episodes in the order they ended
        returns.extend(data["next", "episode_reward"].transpose(0, 1)[done].tolist())
        if len(returns) >= window and sum(returns[-window:]) / window >= target:
            reached, stop = True, time.perf_counter()
            break
        alpha = max(1.0 - frames / max_frames, 0.0)  # what is left, as SB3's progress_remaining
        for group in optim.param_groups:
            group["lr"] = LR * alpha
        loss_module.clip_epsilon.copy_(CLIP * alpha)
        with torch.no_grad():
            data = adv_module(data)
        buffer.empty()
        buffer.extend(data.reshape(-1))
        for _ in range(EPOCHS):
            for batch in buffer:
                losses = loss_module(batch)
                loss = losses["loss_objective"] + losses["loss_critic"]
                optim.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(loss_module.parameters(), MAX_GRAD_NORM)
                optim.step()
        collector.update_policy_weights_()
    stop = stop if stop is not None else time.perf_counter()
    collector.shutdown()
    last = returns[-window:]
    return {
        "library": "torchrl", "seed": seed, "reached": reached, "seconds": stop - start, "frames": frames,
        "episodes": len(returns), "final_mean_return": sum(last) / len(last) if last else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=475.0)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--max-frames", type=int, default=100_000)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    record = solve(args.seed, args.target, args.window, args.max_frames)
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
