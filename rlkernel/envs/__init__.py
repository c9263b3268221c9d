"""Environments: the step contract (:class:`EnvBase`), ``step_mdp`` and ``check_env_specs``."""

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
    "check_env_specs",
    "step_mdp",
]
