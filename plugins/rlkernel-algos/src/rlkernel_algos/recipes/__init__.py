"""Training recipes: one file per algorithm, reading top to bottom, with a documented config.

=====  ==================================================  ======================
name   algorithm                                           default environment
=====  ==================================================  ======================
ppo    PPO (clipped objective, GAE)                        gym:CartPole-v1
a2c    A2C (synchronous advantage actor-critic)            gym:CartPole-v1
dqn    DQN (target network, epsilon-greedy, replay)        gym:CartPole-v1
ddpg   DDPG (deterministic actor, target networks)         gym:Pendulum-v1
td3    TD3 (twin critics, smoothing, delayed actor)        gym:Pendulum-v1
sac    SAC (twin critics, automatic temperature)           gym:Pendulum-v1
=====  ==================================================  ======================

Each module defines ``<Algo>Config``, ``train(config, run_dir) -> dict``,
``load_policy(run_dir) -> TrainedPolicy`` and ``RECIPE`` (a :class:`Recipe`), which is what
``rlkernel.registry.algos[name]`` returns::

    >>> import rlkernel
    >>> recipe = rlkernel.registry.algos["ppo"]                      # doctest: +SKIP
    >>> config = recipe.make_config("gym:CartPole-v1", ["epochs=10"])   # doctest: +SKIP
    >>> metrics = recipe.train(config, "runs/my-ppo")                  # doctest: +SKIP

The shared plumbing lives in small modules: :mod:`.config` (overrides, JSON),
:mod:`.runs` (run directory, trained policy), :mod:`.envs`, :mod:`.networks`,
:mod:`.evaluation`, :mod:`.plotting`.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The recipes of this package, by registered name.
RECIPE_NAMES: tuple[str, ...] = ("ppo", "a2c", "dqn", "ddpg", "td3", "sac")

_LAZY = {
    "Recipe": "rlkernel_algos.recipes.recipe",
    "TrainedPolicy": "rlkernel_algos.recipes.runs",
    "RunDir": "rlkernel_algos.recipes.runs",
    "evaluate": "rlkernel_algos.recipes.evaluation",
    "summarize": "rlkernel_algos.recipes.evaluation",
    "plot_learning_curve": "rlkernel_algos.recipes.plotting",
    "apply_overrides": "rlkernel_algos.recipes.config",
    "ConfigError": "rlkernel_algos.recipes.config",
}


def get_recipe(name: str) -> Any:
    """The :class:`Recipe` of the module ``rlkernel_algos.recipes.<name>``."""
    if name not in RECIPE_NAMES:
        raise KeyError(f"no recipe {name!r} in rlkernel_algos.recipes (recipes: {', '.join(RECIPE_NAMES)})")
    return importlib.import_module(f"{__name__}.{name}").RECIPE


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["RECIPE_NAMES", "get_recipe", *sorted(_LAZY)]
