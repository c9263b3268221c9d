"""A plugin runs rlkernel's own checker on its environment."""

import rlkernel
from rlkernel.envs import check_env_specs


def test_random_walk_conforms():
    check_env_specs(rlkernel.make_env("example:RandomWalk-v0"))
