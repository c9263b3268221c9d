"""SAC (v2: twin critics, automatic temperature, Polyak-averaged targets), continuous actions.

Reads top to bottom: config, environment, actor and critics, loss and target updates,
replay buffer, collector, then the training loop written out: store the batch, sample,
loss, backward, step, soft target update. The defaults are tuned for ``gym:Pendulum-v1`` (one
gradient step per frame); ``PRESETS`` holds the values for MuJoCo tasks and dm_control's cartpole.

    rlkernel train sac --env gym:Pendulum-v1 --frames 20000
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlkernel.collectors import SyncDataCollector
from rlkernel.data import LazyTensorStorage, TensorDictReplayBuffer
from rlkernel.envs import EnvBase
from rlkernel_algos.modules import ProbabilisticActor
from rlkernel_algos.objectives import SACLoss, SoftUpdate
from rlkernel_algos.recipes.envs import make_env as make_recipe_env
from rlkernel_algos.recipes.networks import q_value_critic, tanh_normal_actor
from rlkernel_algos.recipes.optim import adam
from rlkernel_algos.recipes.recipe import Recipe, round_frames
from rlkernel_algos.recipes.runs import RunDir, TrainedPolicy, prepare_process


@dataclass
class SACConfig:
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
    """Adam's step size (actor, critics and temperature)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak step of the target critics (target += tau * (online - target))."""
    alpha_init: float = 1.0
    """Initial entropy temperature (tuned towards -action_dim entropy)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layers of the actor and of each critic (ReLU); MuJoCo presets use 256x256."""
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


PRESETS: dict[str, dict[str, Any]] = {
    "gym:InvertedPendulum-v5": {"total_frames": 30_000, "learning_rate": 3e-4, "frames_per_batch": 1000,
                                "hidden_sizes": (256, 256)},
    "gym:Hopper-v5": {"total_frames": 100_000, "learning_rate": 3e-4, "frames_per_batch": 1000,
                      "learning_starts": 5_000, "log_interval": 5_000, "hidden_sizes": (256, 256)},
    # 30k frames, deterministic eval, seeds 0/1/2: the defaults 826.5 (seed 0); alpha_init 0.1: 840.9;
    # alpha_init 0.1 + utd_ratio 2: 895.9; this preset: 914.2, 937.3, 907.9.
    "dmc:cartpole/balance": {"total_frames": 30_000, "alpha_init": 0.1, "learning_rate": 3e-4,
                             "hidden_sizes": (256, 256)},
}


def make_env(config: SACConfig, num_envs: int | None) -> EnvBase:
    """The training or evaluation (``num_envs=None``) environment."""
    return make_recipe_env(config.env, num_envs=num_envs if num_envs != 1 else None)


def make_actor(config: SACConfig, env: EnvBase) -> ProbabilisticActor:
    """The TanhNormal policy (its deterministic action is the squashed mean)."""
    return tanh_normal_actor(env, config.hidden_sizes)


def train(config: SACConfig, run_dir: str | Path) -> dict[str, float]:
    """Train SAC as ``config`` says; write the run into ``run_dir``; return the final metrics."""
    prepare_process(config.seed, config.num_threads)
    with RunDir(run_dir, "sac", config) as run:
        env = run.closing(make_env(config, num_envs=config.num_envs))
        env.set_seed(config.seed)

        # Actor, twin critics (the loss copies the critic), temperature, soft target updates.
        actor = make_actor(config, env)
        loss = SACLoss(actor, q_value_critic(env, config.hidden_sizes), num_qvalue_nets=2,
                       alpha_init=config.alpha_init, action_spec=env.action_spec, loss_function="l2",
                       gamma=config.gamma)
        target_update = SoftUpdate(loss, tau=config.tau)
        optimizer = adam(loss.parameters(), config.learning_rate)

        # Replay buffer, and a collector that acts at random for the first learning_starts frames.
        buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(config.buffer_size), batch_size=config.batch_size)
        collector = run.closing(SyncDataCollector(
            env, actor, frames_per_batch=config.frames_per_batch,
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
                total = terms["loss_actor"] + terms["loss_qvalue"] + terms["loss_alpha"]
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
                target_update.step()
                loop.record_update(terms)
            collector.update_policy_weights_()

        return run.finish(loop, policy=actor, env=env)


def load_policy(run_dir: str | Path) -> TrainedPolicy:
    """The trained actor of ``run_dir`` and a maker of its evaluation environment."""
    return TrainedPolicy.load(run_dir, SACConfig, make_actor, make_env)


RECIPE = Recipe("sac", SACConfig, train, load_policy, presets=PRESETS,
                summary="Soft Actor-Critic (twin critics, automatic temperature), continuous actions")
