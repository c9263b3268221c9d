"""Transforms: change what an environment produces and what it is given.

``TransformedEnv(env, transform)`` wraps an environment; the :class:`Transform` contract
is documented in :mod:`rlkernel.transforms.base`. Names and semantics follow TorchRL, so a
TorchRL script ports by changing imports::

    >>> from rlkernel.testing import CountingEnv
    >>> from rlkernel.transforms import Compose, RewardSum, StepCounter, TransformedEnv
    >>> env = TransformedEnv(CountingEnv(), Compose(StepCounter(max_steps=10), RewardSum()))
    >>> sorted(env.observation_keys)
    ['episode_reward', 'observation', 'step_count']

Every name is imported on first use, so ``import rlkernel.transforms`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlkernel.lazy import lazy_exports

# Public name -> module defining it (relative to this package).
_EXPORTS = {
    "Transform": "base",
    "Compose": "compose",
    "TransformedEnv": "env",
    "TransformError": "_utils",
    "TransformKeyError": "_utils",
    "ObservationNorm": "normalization",
    "VecNorm": "vecnorm",
    "FileLock": "file_lock",
    "RewardScaling": "reward",
    "RewardClipping": "reward",
    "RewardSum": "reward",
    "StepCounter": "episode",
    "InitTracker": "episode",
    "CatFrames": "frames",
    "TimeMaxPool": "frames",
    "CatTensors": "tensors",
    "UnsqueezeTransform": "tensors",
    "SqueezeTransform": "tensors",
    "PermuteTransform": "tensors",
    "ClipTransform": "tensors",
    "DTypeCastTransform": "dtype",
    "DoubleToFloat": "dtype",
    "ToTensorImage": "image",
    "Resize": "image",
    "GrayScale": "image",
    "CenterCrop": "image",
    "ExcludeTransform": "keys",
    "SelectTransform": "keys",
    "RenameTransform": "keys",
    "NoopResetEnv": "stepping",
    "FrameSkipTransform": "stepping",
    "ActionDiscretizer": "action",
}

#: The transforms registered by name in ``rlkernel.registry.transforms``.
TRANSFORM_NAMES = tuple(name for name in _EXPORTS if name not in ("Transform", "TransformedEnv",
                                                                  "TransformError", "TransformKeyError", "FileLock"))

if TYPE_CHECKING:
    from rlkernel.transforms._utils import TransformError, TransformKeyError
    from rlkernel.transforms.action import ActionDiscretizer
    from rlkernel.transforms.base import Transform
    from rlkernel.transforms.compose import Compose
    from rlkernel.transforms.dtype import DoubleToFloat, DTypeCastTransform
    from rlkernel.transforms.env import TransformedEnv
    from rlkernel.transforms.episode import InitTracker, StepCounter
    from rlkernel.transforms.frames import CatFrames, TimeMaxPool
    from rlkernel.transforms.image import CenterCrop, GrayScale, Resize, ToTensorImage
    from rlkernel.transforms.keys import ExcludeTransform, RenameTransform, SelectTransform
    from rlkernel.transforms.normalization import ObservationNorm
    from rlkernel.transforms.reward import RewardClipping, RewardScaling, RewardSum
    from rlkernel.transforms.stepping import FrameSkipTransform, NoopResetEnv
    from rlkernel.transforms.tensors import (
        CatTensors,
        ClipTransform,
        PermuteTransform,
        SqueezeTransform,
        UnsqueezeTransform,
    )
    from rlkernel.transforms.vecnorm import VecNorm


__getattr__, __dir__, _ = lazy_exports(
    __name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()}, globals()
)


__all__ = [
    "TRANSFORM_NAMES",
    "ActionDiscretizer",
    "CatFrames",
    "CatTensors",
    "CenterCrop",
    "ClipTransform",
    "Compose",
    "DTypeCastTransform",
    "DoubleToFloat",
    "ExcludeTransform",
    "FrameSkipTransform",
    "GrayScale",
    "InitTracker",
    "NoopResetEnv",
    "ObservationNorm",
    "PermuteTransform",
    "RenameTransform",
    "Resize",
    "RewardClipping",
    "RewardScaling",
    "RewardSum",
    "SelectTransform",
    "SqueezeTransform",
    "StepCounter",
    "TimeMaxPool",
    "ToTensorImage",
    "Transform",
    "TransformError",
    "TransformKeyError",
    "TransformedEnv",
    "UnsqueezeTransform",
    "VecNorm",
]
