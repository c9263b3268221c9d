"""The names ``dmc:*/*`` serves: ``dmc:<domain>/<task>`` for every task of the suite.

The tasks are listed here, as ``dm_control.suite.ALL_TASKS`` of the dm_control version this
plugin supports, so that a name is checked and a misspelt one answered with suggestions in
milliseconds: importing ``dm_control.suite`` (MuJoCo and every domain) takes seconds.
``tests/test_dmc_registry.py`` checks the list against the installed suite, so a dm_control
upgrade that adds or removes tasks fails there. Imported only when the registry needs the
names, never during plugin discovery.
"""

from __future__ import annotations

PREFIX = "dmc:"

#: ``"<domain>/<task>"`` for every task of ``dm_control.suite.ALL_TASKS`` (dm_control 1.0.50)
SUITE_TASKS = (
    "acrobot/swingup", "acrobot/swingup_sparse", "ball_in_cup/catch", "cartpole/balance", "cartpole/balance_sparse",
    "cartpole/swingup", "cartpole/swingup_sparse", "cartpole/two_poles", "cartpole/three_poles", "cheetah/run",
    "dog/stand", "dog/walk", "dog/trot", "dog/run", "dog/fetch", "finger/spin", "finger/turn_easy",
    "finger/turn_hard", "fish/upright", "fish/swim", "hopper/stand", "hopper/hop", "humanoid/stand",
    "humanoid/walk", "humanoid/run", "humanoid/run_pure_state", "humanoid_CMU/stand", "humanoid_CMU/walk",
    "humanoid_CMU/run", "lqr/lqr_2_1", "lqr/lqr_6_2", "manipulator/bring_ball", "manipulator/bring_peg",
    "manipulator/insert_ball", "manipulator/insert_peg", "pendulum/swingup", "point_mass/easy", "point_mass/hard",
    "quadruped/walk", "quadruped/run", "quadruped/escape", "quadruped/fetch", "reacher/easy", "reacher/hard",
    "stacker/stack_2", "stacker/stack_4", "swimmer/swimmer6", "swimmer/swimmer15", "walker/stand", "walker/walk",
    "walker/run",
)


def registered_env_names() -> list[str]:
    """``["dmc:acrobot/swingup", ..., "dmc:walker/walk", ...]``.

    >>> "dmc:cartpole/swingup" in registered_env_names()
    True
    """
    return [f"{PREFIX}{task}" for task in SUITE_TASKS]
