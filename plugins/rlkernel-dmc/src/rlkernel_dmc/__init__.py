"""rlkernel-dmc: DeepMind Control Suite environments for rlkernel.

``import rlkernel_dmc`` is cheap (it does not import dm_control); :class:`DMControlEnv` and
:class:`DMControlWrapper` load on first access::

    >>> from rlkernel_dmc import DMControlEnv
    >>> env = DMControlEnv("cartpole", "swingup")
    >>> env.rollout(10)["next", "position"].shape
    torch.Size([10, 3])

Rendering (``from_pixels=True``) on a machine without a display needs ``MUJOCO_GL=egl``
(or ``osmesa``) in the environment *before* dm_control is imported.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {"DMControlEnv": "rlkernel_dmc.envs", "DMControlWrapper": "rlkernel_dmc.envs"}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'rlkernel_dmc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["DMControlEnv", "DMControlWrapper", "__version__"]
