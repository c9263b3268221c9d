"""rlkernel-gym: gymnasium environments for rlkernel.

``import rlkernel_gym`` is cheap (it does not import gymnasium): :class:`GymEnv` and
:class:`GymWrapper` are loaded on first access::

    >>> from rlkernel_gym import GymEnv
    >>> env = GymEnv("CartPole-v1", num_envs=4)
    >>> env.rollout(100, break_when_any_done=False).batch_size
    torch.Size([4, 100])
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "GymEnv": "rlkernel_gym.envs",
    "GymWrapper": "rlkernel_gym.envs",
    "space_to_spec": "rlkernel_gym.spaces",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'rlkernel_gym' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["GymEnv", "GymWrapper", "__version__", "space_to_spec"]
