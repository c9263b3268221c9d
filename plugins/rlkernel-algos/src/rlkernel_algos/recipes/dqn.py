"""DQN (target network, epsilon-greedy exploration, uniform replay), discrete actions.

Reads top to bottom: config, environment, Q-network and exploration, loss and target
updates, replay buffer, collector, then the training loop written out: store the batch,
anneal, sample, loss, backward, clip, step, copy the target, decay epsilon.

The defaults are rl-zoo's CartPole-v1 hyper-parameters (a 256x256 network, Huber loss, 128
gradient steps of 64 transitions after every 256 frames, the target copied once per such
round, epsilon from 1 to 0.04 over 8k frames) plus double DQN and a learning rate annealed
linearly to 0, but with a learning rate of 5e-4 instead of rl-zoo's 2.3e-3: with 2.3e-3 the
final greedy policy was a matter of the seed (500, 132.7 and 91.0 on seeds 0, 1, 2); with
1e-3, 500, 388.4 and 500; with 5e-4, 500 on each of seeds 0 to 4 (100k frames, 10
deterministic episodes). 8 environments are stepped together.

    rlkernel train dqn --env gym:CartPole-v1 --frames 100000
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict.nn import TensorDictSequential

from rlkernel.collectors import SyncDataCollector
from rlkernel.data import LazyTensorStorage, TensorDictReplayBuffer
from rlkernel.envs import EnvBase
from rlkernel_algos.modules import EGreedyModule, QValueActor
from rlkernel_algos.objectives import DQNLoss, HardUpdate
from rlkernel_algos.recipes.config import ConfigError
from rlkernel_algos.recipes.envs import make_env as make_recipe_env
from rlkernel_algos.recipes.envs import observation_size
from rlkernel_algos.recipes.networks import is_discrete, mlp
from rlkernel_algos.recipes.optim import adam, set_learning_rate
from rlkernel_algos.recipes.recipe import Recipe, round_frames
from rlkernel_algos.recipes.runs import RunDir, TrainedPolicy, prepare_process


@dataclass
class DQNConfig:
    """Hyper-parameters of :func:`train` (defaults: CartPole-v1)."""

    env: str = "gym:CartPole-v1"
    """Registered environment name (discrete actions)."""
    total_frames: int = 100_000
    """Environment steps to train for (rounded up to a multiple of the batch)."""
    seed: int = 0
    """Seeds torch, numpy, Python and the environments."""
    num_envs: int = 8
    """Environments stepped together."""
    steps_per_env: int = 32
    """Steps each environment makes between two rounds of updates."""
    updates_per_batch: int = 128
    """Gradient steps after each batch of num_envs * steps_per_env frames."""
    batch_size: int = 64
    """Transitions per gradient step."""
    buffer_size: int = 100_000
    """Replay buffer capacity (transitions)."""
    learning_starts: int = 1_000
    """Random actions and no updates before this many frames."""
    learning_rate: float = 5e-4
    """Adam's step size at the start."""
    anneal_lr: bool = True
    """Decrease the learning rate linearly to 0 over training (keeps a learned policy from unlearning)."""
    gamma: float = 0.99
    """Discount factor."""
    target_update_interval: int = 128
    """Copy the Q-network into the target network every this many gradient steps (128: once per batch)."""
    eps_init: float = 1.0
    """Initial exploration rate."""
    eps_end: float = 0.04
    """Final exploration rate."""
    exploration_frames: int = 8_000
    """Frames over which epsilon decreases linearly from eps_init to eps_end."""
    double_dqn: bool = True
    """Choose the next action with the online network, evaluate it with the target (double DQN)."""
    loss_function: str = "smooth_l1"
    """TD-error penalty: smooth_l1 (Huber), l2 or l1."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layers of the Q-network (ReLU)."""
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


PRESETS: dict[str, dict[str, Any]] = {}


def make_env(config: DQNConfig, num_envs: int | None) -> EnvBase:
    """The training (``num_envs`` > 1) or evaluation (``None``) environment."""
    env = make_recipe_env(config.env, num_envs=num_envs)
    if not is_discrete(env):
        env.close()
        raise ConfigError(
            f"dqn needs discrete (Categorical) actions; {config.env} has {type(env.action_spec).__name__} actions"
        )
    return env


def make_qnet(config: DQNConfig, env: EnvBase) -> QValueActor:
    """``observation -> action_value -> argmax action`` (the greedy policy)."""
    net = mlp(observation_size(env), int(env.action_spec.n), config.hidden_sizes)
    return QValueActor(net, in_keys=["observation"], spec=env.action_spec)


def train(config: DQNConfig, run_dir: str | Path) -> dict[str, float]:
    """Train DQN as ``config`` says; write the run into ``run_dir``; return the final metrics."""
    prepare_process(config.seed, config.num_threads)
    with RunDir(run_dir, "dqn", config) as run:
        env = run.closing(make_env(config, num_envs=config.num_envs))
        env.set_seed(config.seed)

        # Greedy Q-network, and the collection policy: epsilon-greedy around it.
        qnet = make_qnet(config, env)
        egreedy = EGreedyModule(env.action_spec, config.eps_init, config.eps_end, config.exploration_frames)
        policy = TensorDictSequential(qnet, egreedy)

        # Loss with a target network, copied every target_update_interval gradient steps.
        loss = DQNLoss(qnet, action_space="categorical", loss_function=config.loss_function,
                       double_dqn=config.double_dqn, gamma=config.gamma)
        copy_target = HardUpdate(loss, value_network_update_interval=1)
        params = list(loss.parameters())
        optimizer = adam(params, config.learning_rate)

        buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(config.buffer_size), batch_size=config.batch_size)
        frames_per_batch = config.num_envs * config.steps_per_env
        collector = run.closing(SyncDataCollector(
            env, policy, frames_per_batch=frames_per_batch,
            total_frames=round_frames(config.total_frames, frames_per_batch),
            init_random_frames=config.learning_starts))

        state = {"loss": loss, "optimizer": optimizer, "buffer": buffer, "exploration": egreedy}
        loop = run.loop(collector, config, state=state)
        for batch in loop:
            buffer.extend(batch.reshape(-1))
            if loop.frames >= config.learning_starts:
                if config.anneal_lr:
                    set_learning_rate(optimizer, config.learning_rate * (1.0 - loop.done_fraction))
                for _ in range(config.updates_per_batch):
                    terms = loss(buffer.sample())
                    optimizer.zero_grad(set_to_none=True)
                    terms["loss"].backward()
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                    optimizer.step()
                    loop.record_update(terms, grad_norm=grad_norm)
                    if loop.optim_steps % config.target_update_interval == 0:
                        copy_target.step()
                collector.update_policy_weights_()
            egreedy.step(frames_per_batch)  # epsilon decays with the frames collected
            loop.record(epsilon=egreedy.eps, lr=optimizer.param_groups[0]["lr"])

        return run.finish(loop, policy=qnet, env=env)


def load_policy(run_dir: str | Path) -> TrainedPolicy:
    """The greedy Q-policy of ``run_dir`` and a maker of its evaluation environment."""
    return TrainedPolicy.load(run_dir, DQNConfig, make_qnet, make_env)


RECIPE = Recipe("dqn", DQNConfig, train, load_policy, presets=PRESETS,
                summary="Deep Q-Network (target network, epsilon-greedy, replay), discrete actions")
