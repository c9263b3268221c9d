"""PPO (clipped surrogate objective, GAE advantages), discrete or continuous actions.

Reads top to bottom: config, environment, networks, loss, collector, then the training
loop written out: anneal, advantages, epochs of minibatches, loss, backward, clip, step.
The defaults are tuned for ``gym:CartPole-v1``: rl-zoo's hyper-parameters (8 envs,
gamma 0.98, GAE lambda 0.8, learning rate 1e-3 and clip range 0.2 both annealed to 0, no
entropy bonus) with batches of 8 x 64 steps and 10 epochs of 256-frame minibatches -- half
the gradient steps of rl-zoo's 20 epochs over 8 x 32 steps, for the same result (500 by
~50k frames on seeds 0, 1, 2). ``PRESETS`` holds the values for other environments.

    rlkernel train ppo --env gym:CartPole-v1 --frames 100000
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlkernel.collectors import SyncDataCollector
from rlkernel.envs import EnvBase
from rlkernel_algos.modules import ProbabilisticActor, ValueOperator
from rlkernel_algos.objectives import ClipPPOLoss
from rlkernel_algos.recipes.envs import make_env as make_recipe_env
from rlkernel_algos.recipes.networks import categorical_actor, is_discrete, state_value_critic, tanh_normal_actor
from rlkernel_algos.recipes.optim import adam, set_learning_rate
from rlkernel_algos.recipes.recipe import Recipe, round_frames
from rlkernel_algos.recipes.runs import RunDir, TrainedPolicy, prepare_process


@dataclass
class PPOConfig:
    """Hyper-parameters of :func:`train` (defaults: CartPole-v1)."""

    env: str = "gym:CartPole-v1"
    """Registered environment name."""
    total_frames: int = 100_000
    """Environment steps to train for (rounded up to a multiple of the batch)."""
    seed: int = 0
    """Seeds torch, numpy, Python and the environments."""
    num_envs: int = 8
    """Environments stepped together (gymnasium's vector env)."""
    steps_per_env: int = 64
    """Steps each environment makes per batch (a batch is num_envs * steps_per_env frames)."""
    epochs: int = 10
    """Passes over each batch."""
    minibatch_size: int = 256
    """Frames per gradient step."""
    learning_rate: float = 1e-3
    """Adam's step size at the start."""
    anneal: bool = True
    """Decrease the learning rate and the clip range linearly to 0 over training."""
    gamma: float = 0.98
    """Discount factor."""
    gae_lambda: float = 0.8
    """GAE's lambda: bias-variance trade-off of the advantages."""
    clip_epsilon: float = 0.2
    """The probability ratio is clipped to 1 +- clip_epsilon (at the start, when annealed)."""
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
    log_interval: int = 5_000
    """Log the metrics every this many frames."""
    checkpoint_interval: int = 50_000
    """Checkpoint every this many frames (and at the end)."""
    progress_bar: bool = True
    """Show a progress bar with frames/s and the recent return."""
    stop_at_return: float | None = None
    """Stop early once the mean return of the last 20 training episodes reaches this (None: never)."""


#: Environment-specific values; the CartPole defaults also solve gym:InvertedPendulum-v5.
PRESETS: dict[str, dict[str, Any]] = {}


def make_env(config: PPOConfig, num_envs: int | None) -> EnvBase:
    """The training (``num_envs`` > 1) or evaluation (``None``) environment."""
    return make_recipe_env(config.env, num_envs=num_envs)


def make_actor(config: PPOConfig, env: EnvBase) -> ProbabilisticActor:
    """A categorical policy for discrete actions, a TanhNormal one within the bounds otherwise."""
    if is_discrete(env):
        return categorical_actor(env, config.hidden_sizes, nn.Tanh)
    return tanh_normal_actor(env, config.hidden_sizes, nn.Tanh)


def make_critic(config: PPOConfig, env: EnvBase) -> ValueOperator:
    """The state-value network (separate from the actor)."""
    return state_value_critic(env, config.hidden_sizes, nn.Tanh)


def train(config: PPOConfig, run_dir: str | Path) -> dict[str, float]:
    """Train PPO as ``config`` says; write the run into ``run_dir``; return the final metrics."""
    prepare_process(config.seed, config.num_threads)
    with RunDir(run_dir, "ppo", config) as run:
        # Environment: num_envs copies stepped together; RewardSum tracks episode returns.
        env = run.closing(make_env(config, num_envs=config.num_envs))
        env.set_seed(config.seed)

        # Networks and loss: separate actor and critic, clipped surrogate, GAE advantages.
        actor, critic = make_actor(config, env), make_critic(config, env)
        loss = ClipPPOLoss(actor, critic, clip_epsilon=config.clip_epsilon, entropy_coef=config.entropy_coef,
                           critic_coef=config.critic_coef, loss_critic_type="l2", normalize_advantage=True)
        loss.make_value_estimator("gae", gamma=config.gamma, lmbda=config.gae_lambda)
        params = list(loss.parameters())
        optimizer = adam(params, config.learning_rate, eps=1e-5)

        # Collector: batches of num_envs * steps_per_env frames, sampled from the current policy.
        frames_per_batch = config.num_envs * config.steps_per_env
        collector = run.closing(SyncDataCollector(
            env, actor, frames_per_batch=frames_per_batch,
            total_frames=round_frames(config.total_frames, frames_per_batch)))

        loop = run.loop(collector, config, state={"loss": loss, "optimizer": optimizer})
        for batch in loop:
            # Anneal the learning rate and the clip range linearly to 0 over training.
            left = 1.0 - loop.done_fraction if config.anneal else 1.0
            set_learning_rate(optimizer, config.learning_rate * left)
            loss.clip_epsilon = config.clip_epsilon * left

            # GAE advantages and value targets of the whole batch, from the networks before this update.
            with torch.no_grad():
                batch = loss.value_estimator(batch).reshape(-1)

            # Epochs over the batch, in shuffled minibatches.
            for _epoch in range(config.epochs):
                for indices in torch.randperm(batch.numel()).split(config.minibatch_size):
                    terms = loss(batch[indices])
                    total = terms["loss_objective"] + terms["loss_critic"] + terms["loss_entropy"]
                    optimizer.zero_grad(set_to_none=True)
                    total.backward()
                    grad_norm = nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                    optimizer.step()
                    loop.record_update(terms, grad_norm=grad_norm)
            loop.record(lr=config.learning_rate * left, clip_epsilon=loss.clip_epsilon)
            collector.update_policy_weights_()

        return run.finish(loop, policy=actor, env=env)


def load_policy(run_dir: str | Path) -> TrainedPolicy:
    """The trained actor of ``run_dir`` and a maker of its evaluation environment."""
    return TrainedPolicy.load(run_dir, PPOConfig, make_actor, make_env)


RECIPE = Recipe("ppo", PPOConfig, train, load_policy, presets=PRESETS,
                summary="Proximal Policy Optimization (clipped, GAE), discrete or continuous actions")
