"""Config overrides that make each recipe's run a few hundred frames long (shared by the recipe tests)."""

from __future__ import annotations

from typing import Any

SMOKE = {
    "ppo": ["num_envs=2", "steps_per_env=32", "epochs=2", "minibatch_size=32"],
    "a2c": ["num_envs=4", "steps_per_env=8"],
    "dqn": ["num_envs=2", "steps_per_env=32", "updates_per_batch=4", "learning_starts=64", "batch_size=32"],
    "ddpg": ["frames_per_batch=100", "learning_starts=100", "utd_ratio=0.1", "batch_size=32"],
    "td3": ["frames_per_batch=100", "learning_starts=100", "utd_ratio=0.1", "batch_size=32"],
    "sac": ["frames_per_batch=100", "learning_starts=100", "utd_ratio=0.1", "batch_size=32"],
}


def batch_frames(config: Any) -> int:
    """Frames of one collected batch of a recipe's config."""
    return config.frames_per_batch if hasattr(config, "frames_per_batch") else config.num_envs * config.steps_per_env
