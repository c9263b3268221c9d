"""Environments: the step contract (:class:`EnvBase`), ``step_mdp``, ``check_env_specs`` and
the batched containers :class:`SerialEnv` and :class:`ParallelEnv` (imported on first use:
``import rlkernel.envs`` stays cheap)."""

from rlkernel.envs.checks import check_env_specs
from rlkernel.envs.common import EnvBase
from rlkernel.envs.step import (
    ACTION,
    DONE,
    NEXT,
    OBSERVATION,
    RESET,
    REWARD,
    TERMINATED,
    TRUNCATED,
    step_mdp,
)
from rlkernel.lazy import lazy_exports

__getattr__, __dir__, _ = lazy_exports(
    __name__, {"ParallelEnv": "rlkernel.envs.batched", "SerialEnv": "rlkernel.envs.batched"}, globals()
)

__all__ = [
    "ACTION",
    "DONE",
    "NEXT",
    "OBSERVATION",
    "RESET",
    "REWARD",
    "TERMINATED",
    "TRUNCATED",
    "EnvBase",
    "ParallelEnv",
    "SerialEnv",
    "check_env_specs",
    "step_mdp",
]
