"""rlkernel-gym: gymnasium environments for rlkernel.

``import rlkernel_gym`` is cheap (it does not import gymnasium): :class:`GymEnv` and
:class:`GymWrapper` are loaded on first access::

    >>> from rlkernel_gym import GymEnv
    >>> env = GymEnv("CartPole-v1", num_envs=4)
    >>> env.rollout(100, break_when_any_done=False).batch_size
    torch.Size([4, 100])
"""

from __future__ import annotations

from rlkernel.lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "GymEnv": "rlkernel_gym.envs",
    "GymWrapper": "rlkernel_gym.envs",
    "space_to_spec": "rlkernel_gym.spaces",
}


__getattr__, __dir__, _ = lazy_exports(__name__, _LAZY, globals())


__all__ = ["GymEnv", "GymWrapper", "__version__", "space_to_spec"]
