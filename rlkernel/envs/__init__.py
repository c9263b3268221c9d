"""Environments: the step contract (:class:`EnvBase`), ``step_mdp``, ``check_env_specs`` and
the batched containers :class:`SerialEnv` and :class:`ParallelEnv`."""

from rlkernel.envs.batched import ParallelEnv, SerialEnv
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
