"""The environments recipes train on: a registered env, float observations, episode returns.

>>> env = make_env("gym:CartPole-v1", num_envs=4, seed=0)   # doctest: +SKIP
>>> sorted(env.observation_keys)                            # doctest: +SKIP
['episode_reward', 'observation']
"""

from __future__ import annotations

from typing import Any

import torch

import rlkernel
from rlkernel.envs import EnvBase
from rlkernel.transforms import Compose, DoubleToFloat, RewardSum, TransformedEnv

__all__ = ["make_env", "observation_size"]


def make_env(name: str, *, num_envs: int | None = None, seed: int | None = None, **kwargs: Any) -> TransformedEnv:
    """``rlkernel.make_env(name, num_envs=...)`` with ``DoubleToFloat`` (when an observation is
    float64, as MuJoCo's are) and ``RewardSum`` (the episode return, read by the trainer's
    return tracker and the progress bar), seeded with ``seed``.

    ``num_envs=None`` makes a single environment (batch size ``()``).
    """
    if num_envs is not None:
        kwargs["num_envs"] = num_envs
    base: EnvBase = rlkernel.make_env(name, **kwargs)
    doubles = [
        key for key, spec in base.full_observation_spec.items(include_nested=True, leaves_only=True)
        if spec.dtype == torch.float64
    ]
    transforms = [DoubleToFloat(in_keys=doubles)] if doubles else []
    env = TransformedEnv(base, Compose(*transforms, RewardSum()))
    if seed is not None:
        env.set_seed(seed)
    return env


def observation_size(env: EnvBase, key: str = "observation") -> int:
    """The number of features of a flat observation (the last dim of its spec)."""
    return int(env.observation_spec[key].shape[-1])
