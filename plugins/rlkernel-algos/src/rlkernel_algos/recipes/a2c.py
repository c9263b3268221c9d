"""A2C (synchronous advantage actor-critic), discrete or continuous actions.

Reads top to bottom: config, environment, networks, loss, collector, trainer. One
gradient step per batch of ``num_envs * steps_per_env`` frames, on the advantages of that
batch (GAE; ``gae_lambda=1`` gives the n-step returns of the original A2C). RMSprop, as
in the paper and in Stable-Baselines3.

    rlkernel train a2c --env gym:CartPole-v1 --frames 500000
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlkernel.collectors import SyncDataCollector
from rlkernel.envs import EnvBase
from rlkernel_algos.modules import ProbabilisticActor
from rlkernel_algos.objectives import A2CLoss
from rlkernel_algos.recipes.envs import make_env as make_recipe_env
from rlkernel_algos.recipes.networks import categorical_actor, is_discrete, state_value_critic, tanh_normal_actor
from rlkernel_algos.recipes.recipe import Recipe, round_frames
from rlkernel_algos.recipes.runs import RunDir, TrainedPolicy, prepare_process


@dataclass
class A2CConfig:
    """Hyper-parameters of :func:`train` (defaults: CartPole-v1)."""

    env: str = "gym:CartPole-v1"
    """Registered environment name."""
    total_frames: int = 500_000
    """Environment steps to train for (rounded up to a multiple of the batch)."""
    seed: int = 0
    """Seeds torch, numpy, Python and the environments."""
    num_envs: int = 16
    """Environments stepped together."""
    steps_per_env: int = 8
    """Steps each environment makes per batch (one gradient step per batch)."""
    learning_rate: float = 7e-4
    """RMSprop's step size."""
    rms_alpha: float = 0.99
    """RMSprop's smoothing constant."""
    rms_eps: float = 1e-5
    """RMSprop's epsilon."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """GAE's lambda (1.0: n-step returns bootstrapped at the end of the batch)."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus."""
    critic_coef: float = 0.5
    """Weight of the critic's squared error."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layers of the actor and of the critic (separate networks, tanh activations)."""
    num_threads: int = 1
    """torch threads (1 is fastest for networks this small)."""
    log_interval: int = 10_000
    """Log the metrics every this many frames."""
    checkpoint_interval: int = 250_000
    """Checkpoint every this many frames (and at the end)."""
    progress_bar: bool = True
    """Show a progress bar with frames/s and the recent return."""
    stop_at_return: float | None = None
    """Stop early once the mean return of the last 20 training episodes reaches this (None: never)."""


PRESETS: dict[str, dict[str, Any]] = {}


def make_env(config: A2CConfig, num_envs: int | None) -> EnvBase:
    """The training (``num_envs`` > 1) or evaluation (``None``) environment."""
    return make_recipe_env(config.env, num_envs=num_envs)


def make_actor(config: A2CConfig, env: EnvBase) -> ProbabilisticActor:
    """A categorical policy for discrete actions, a TanhNormal one within the bounds otherwise."""
    if is_discrete(env):
        return categorical_actor(env, config.hidden_sizes, nn.Tanh)
    return tanh_normal_actor(env, config.hidden_sizes, nn.Tanh)


def train(config: A2CConfig, run_dir: str | Path) -> dict[str, float]:
    """Train A2C as ``config`` says; write the run into ``run_dir``; return the final metrics."""
    prepare_process(config.seed, config.num_threads)
    with RunDir(run_dir, "a2c", config) as run:
        env = run.closing(make_env(config, num_envs=config.num_envs))
        env.set_seed(config.seed)

        # Separate actor and critic, GAE advantages, RMSprop.
        actor = make_actor(config, env)
        critic = state_value_critic(env, config.hidden_sizes, nn.Tanh)
        loss = A2CLoss(actor, critic, entropy_coef=config.entropy_coef, critic_coef=config.critic_coef,
                       loss_critic_type="l2")
        loss.make_value_estimator("gae", gamma=config.gamma, lmbda=config.gae_lambda)
        params = list(loss.parameters())
        optimizer = torch.optim.RMSprop(params, lr=config.learning_rate, alpha=config.rms_alpha, eps=config.rms_eps)

        frames_per_batch = config.num_envs * config.steps_per_env
        collector = run.closing(SyncDataCollector(
            env, actor, frames_per_batch=frames_per_batch,
            total_frames=round_frames(config.total_frames, frames_per_batch)))

        loop = run.loop(collector, config, state={"loss": loss, "optimizer": optimizer})
        for batch in loop:
            # The advantages of the whole batch, then one gradient step on it.
            with torch.no_grad():
                batch = loss.value_estimator(batch)
            terms = loss(batch)
            total = terms["loss_objective"] + terms["loss_critic"] + terms["loss_entropy"]
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            grad_norm = nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            loop.record_update(terms, grad_norm=grad_norm)
            collector.update_policy_weights_()

        return run.finish(loop, policy=actor, env=env)


def load_policy(run_dir: str | Path) -> TrainedPolicy:
    """The trained actor of ``run_dir`` and a maker of its evaluation environment."""
    return TrainedPolicy.load(run_dir, A2CConfig, make_actor, make_env)


RECIPE = Recipe("a2c", A2CConfig, train, load_policy, presets=PRESETS,
                summary="Advantage Actor-Critic (synchronous, RMSprop), discrete or continuous actions")
