"""DDPG (deterministic actor, Q critic, Polyak-averaged targets), continuous actions.

Reads top to bottom: config, environment, actor and critic, exploration noise, loss and
target updates, replay buffer, collector, then the training loop written out: store the
batch, sample, loss, backward, step, soft target update. The defaults are tuned for
``gym:Pendulum-v1`` (one gradient step per frame).

    rlkernel train ddpg --env gym:Pendulum-v1 --frames 20000
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tensordict.nn import TensorDictSequential

from rlkernel.collectors import SyncDataCollector
from rlkernel.data import LazyTensorStorage, TensorDictReplayBuffer
from rlkernel.envs import EnvBase
from rlkernel_algos.modules import Actor, AdditiveGaussianModule
from rlkernel_algos.objectives import DDPGLoss, SoftUpdate
from rlkernel_algos.recipes.envs import make_env as make_recipe_env
from rlkernel_algos.recipes.networks import deterministic_actor, q_value_critic
from rlkernel_algos.recipes.optim import adam
from rlkernel_algos.recipes.recipe import Recipe, round_frames
from rlkernel_algos.recipes.runs import RunDir, TrainedPolicy, prepare_process
from rlkernel_algos.recipes.td3 import half_range


@dataclass
class DDPGConfig:
    """Hyper-parameters of :func:`train` (defaults: Pendulum-v1)."""

    env: str = "gym:Pendulum-v1"
    """Registered environment name (continuous, bounded actions)."""
    total_frames: int = 20_000
    """Environment steps to train for (rounded up to a multiple of the batch)."""
    seed: int = 0
    """Seeds torch, numpy, Python and the environments."""
    num_envs: int = 1
    """Environments stepped together."""
    frames_per_batch: int = 200
    """Frames collected between two rounds of updates."""
    utd_ratio: float = 1.0
    """Gradient steps per collected frame (update-to-data ratio)."""
    batch_size: int = 256
    """Transitions per gradient step."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity (transitions)."""
    learning_starts: int = 1_000
    """Random actions and no updates before this many frames."""
    learning_rate: float = 1e-3
    """Adam's step size (actor and critic)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak step of the target networks."""
    exploration_noise: float = 0.1
    """Std of the Gaussian action noise while collecting, as a fraction of the action half-range."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layers of the actor and of the critic (ReLU)."""
    num_threads: int = 1
    """torch threads (1 is fastest for networks this small)."""
    log_interval: int = 2_000
    """Log the metrics every this many frames."""
    checkpoint_interval: int = 50_000
    """Checkpoint every this many frames (and at the end)."""
    progress_bar: bool = True
    """Show a progress bar with frames/s and the recent return."""
    stop_at_return: float | None = None
    """Stop early once the mean return of the last 20 training episodes reaches this (None: never)."""


PRESETS: dict[str, dict[str, Any]] = {}


def make_env(config: DDPGConfig, num_envs: int | None) -> EnvBase:
    """The training or evaluation (``num_envs=None``) environment."""
    return make_recipe_env(config.env, num_envs=num_envs if num_envs != 1 else None)


def make_actor(config: DDPGConfig, env: EnvBase) -> Actor:
    """The deterministic policy ``observation -> action`` within the bounds."""
    return deterministic_actor(env, config.hidden_sizes)


def train(config: DDPGConfig, run_dir: str | Path) -> dict[str, float]:
    """Train DDPG as ``config`` says; write the run into ``run_dir``; return the final metrics."""
    prepare_process(config.seed, config.num_threads)
    with RunDir(run_dir, "ddpg", config) as run:
        env = run.closing(make_env(config, num_envs=config.num_envs))
        env.set_seed(config.seed)
        sigma = config.exploration_noise * half_range(env)

        # Deterministic actor; collection adds Gaussian noise (none under DETERMINISTIC).
        actor = make_actor(config, env)
        policy = TensorDictSequential(
            actor, AdditiveGaussianModule(env.action_spec, sigma_init=sigma, sigma_end=sigma, annealing_num_steps=1)
        )

        loss = DDPGLoss(actor, q_value_critic(env, config.hidden_sizes), delay_actor=True, delay_value=True,
                        loss_function="l2", gamma=config.gamma)
        target_update = SoftUpdate(loss, tau=config.tau)
        optimizer = adam(loss.parameters(), config.learning_rate)

        buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(config.buffer_size), batch_size=config.batch_size)
        collector = run.closing(SyncDataCollector(
            env, policy, frames_per_batch=config.frames_per_batch,
            total_frames=round_frames(config.total_frames, config.frames_per_batch),
            init_random_frames=config.learning_starts))

        updates_per_batch = max(1, round(config.utd_ratio * config.frames_per_batch))
        loop = run.loop(collector, config, state={"loss": loss, "optimizer": optimizer, "buffer": buffer})
        for batch in loop:
            buffer.extend(batch.reshape(-1))
            if loop.frames < config.learning_starts:
                continue
            for _ in range(updates_per_batch):
                terms = loss(buffer.sample())
                total = terms["loss_actor"] + terms["loss_value"]
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
                target_update.step()
                loop.record_update(terms)
            collector.update_policy_weights_()

        return run.finish(loop, policy=actor, env=env)


def load_policy(run_dir: str | Path) -> TrainedPolicy:
    """The trained actor of ``run_dir`` and a maker of its evaluation environment."""
    return TrainedPolicy.load(run_dir, DDPGConfig, make_actor, make_env)


RECIPE = Recipe("ddpg", DDPGConfig, train, load_policy, presets=PRESETS,
                summary="Deep Deterministic Policy Gradient (target networks, Gaussian exploration)")
