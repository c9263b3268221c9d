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

from rlkernel.lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {"DMControlEnv": "rlkernel_dmc.envs", "DMControlWrapper": "rlkernel_dmc.envs"}


__getattr__, __dir__, _ = lazy_exports(__name__, _LAZY, globals())


__all__ = ["DMControlEnv", "DMControlWrapper", "__version__"]
