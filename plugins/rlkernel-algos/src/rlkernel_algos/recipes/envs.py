"""The environments recipes train on: any registered env, one flat float ``"observation"``, episode returns.

A recipe never relies on one backend's keywords: it asks :func:`rlkernel.make_env` for
``num_envs`` copies (batched natively or by the core) and makes the observations fit an
MLP here, whatever the backend calls them:

- float64 observations and actions become float32 (MuJoCo's and dm_control's are float64);
- several observation entries (dm_control's ``position`` and ``velocity``) are concatenated,
  in sorted key order, into one ``"observation"`` vector; a scalar one gains a feature dim;
- a categorical action given as a vector of one index (shape ``(..., 1)``) is presented as a
  plain index, the form of a categorical policy's sample;
- an entry an MLP cannot take (an image such as ``pixels``, or integer/categorical values)
  is a :class:`RecipeEnvError` that names the key, its shape and its dtype.

``RewardSum`` adds ``episode_reward``, read by the return tracker and the progress bar.

>>> env = make_env("testing:counting", num_envs=4, seed=0)
>>> sorted(env.observation_keys)
['episode_reward', 'observation']
"""

from __future__ import annotations

from typing import Any

import torch

import rlkernel
from rlkernel.envs import EnvBase
from rlkernel.errors import RLKernelError
from rlkernel.specs import Categorical
from rlkernel.transforms import (
    CatTensors,
    Compose,
    DoubleToFloat,
    RenameTransform,
    RewardSum,
    SqueezeTransform,
    Transform,
    TransformedEnv,
    UnsqueezeTransform,
)

__all__ = ["RecipeEnvError", "flat_observation", "make_env", "observation_size"]

OBSERVATION = "observation"


class RecipeEnvError(RLKernelError, ValueError):
    """The environment gives an observation that the recipe's networks cannot take."""


def _show(key: Any) -> str:
    return repr(key) if isinstance(key, str) else repr(tuple(key))


def flat_observation(env: EnvBase) -> list[Transform]:
    """The transforms that turn ``env``'s observations into one flat float ``"observation"`` (and
    its one-index categorical actions into plain indices).

    Raises :class:`RecipeEnvError` naming any entry that cannot be flattened for an MLP.
    """
    batch_dims = len(env.batch_size)
    specs = dict(env.full_observation_spec.items(include_nested=True, leaves_only=True))
    if not specs:
        raise RecipeEnvError("the environment has no observation: an MLP recipe needs at least one")
    scalars, doubles = [], []
    for key, spec in specs.items():
        features = tuple(spec.shape[batch_dims:])
        if len(features) > 1 or not spec.dtype.is_floating_point:
            what = "an image or other multi-dim array" if len(features) > 1 else "not a float vector"
            raise RecipeEnvError(
                f"observation {_show(key)} has shape {list(features)} and dtype {spec.dtype} ({what}): this recipe's "
                f"MLP networks take flat float vectors; drop or encode it with a transform (e.g. ExcludeTransform, a "
                f"one-hot encoding or a CNN recipe), or choose the env's state observations"
            )
        if spec.dtype == torch.float64:
            doubles.append(key)
        if not features:
            scalars.append(key)
    action_doubles = [key for key, spec in env.full_action_spec.items(include_nested=True, leaves_only=True)
                      if spec.dtype == torch.float64]
    transforms: list[Transform] = []
    one_index = [key for key, spec in env.full_action_spec.items(include_nested=True, leaves_only=True)
                 if isinstance(spec, Categorical) and tuple(spec.shape[batch_dims:]) == (1,)]
    if one_index:
        transforms.append(SqueezeTransform(-1, in_keys_inv=one_index))
    if doubles or action_doubles:
        transforms.append(DoubleToFloat(in_keys=doubles, in_keys_inv=action_doubles))
    if scalars:
        transforms.append(UnsqueezeTransform(-1, in_keys=scalars))
    keys = list(specs)
    if len(keys) > 1:
        transforms.append(CatTensors(keys, out_key=OBSERVATION))
    elif keys[0] != OBSERVATION:
        transforms.append(RenameTransform(keys, [OBSERVATION]))
    return transforms


def make_env(name: str, *, num_envs: int | None = None, seed: int | None = None, **kwargs: Any) -> TransformedEnv:
    """``rlkernel.make_env(name, num_envs=...)`` with :func:`flat_observation` and ``RewardSum``,
    seeded with ``seed``.

    ``num_envs=None`` makes a single environment (batch size ``()``).
    """
    base: EnvBase = rlkernel.make_env(name, num_envs=num_envs, **kwargs)
    try:
        transforms = flat_observation(base)
    except RecipeEnvError as err:
        base.close()
        raise RecipeEnvError(f"{name}: {err}") from None
    env = TransformedEnv(base, Compose(*transforms, RewardSum()))
    if seed is not None:
        env.set_seed(seed)
    return env


def observation_size(env: EnvBase, key: str = OBSERVATION) -> int:
    """The number of features of a flat observation (the last dim of its spec)."""
    return int(env.observation_spec[key].shape[-1])
