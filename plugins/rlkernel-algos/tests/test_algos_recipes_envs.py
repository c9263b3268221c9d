"""Every recipe trains on more than gymnasium: the core's test env, the plugin template's env, dm_control."""

from __future__ import annotations

import dataclasses
import functools
import sys
from pathlib import Path

import pytest
import torch
from recipes_smoke import SMOKE, batch_frames

import rlkernel
from rlkernel.testing import CountingEnv
from rlkernel_algos.recipes import get_recipe
from rlkernel_algos.recipes.envs import RecipeEnvError, make_env
from rlkernel_algos.recipes.evaluation import evaluate

TEMPLATE_SRC = Path(__file__).resolve().parents[3] / "docs" / "plugin-template" / "src"
CONTINUOUS = ["ppo", "a2c", "ddpg", "td3", "sac"]
DISCRETE = ["ppo", "a2c", "dqn"]


@pytest.fixture(scope="module", autouse=True)
def registered():
    """The template's env, and a counting env that always ends (it does not batch natively)."""
    sys.path.insert(0, str(TEMPLATE_SRC))
    from rlkernel_example.envs import RandomWalkEnv

    rlkernel.registry.envs.register("example:RandomWalk-v0", RandomWalkEnv, replace=True)
    rlkernel.registry.envs.register("recipetest:counting", functools.partial(CountingEnv, 3.0, max_steps=12),
                                    replace=True)
    yield
    rlkernel.registry.envs.unregister("example:RandomWalk-v0")
    rlkernel.registry.envs.unregister("recipetest:counting")
    sys.path.remove(str(TEMPLATE_SRC))


def train_and_evaluate(algo: str, env_name: str, run_dir: Path) -> list[float]:
    recipe = get_recipe(algo)
    config = recipe.make_config(env_name, [*SMOKE[algo], "progress_bar=false"])
    config = dataclasses.replace(config, total_frames=2 * batch_frames(config))
    metrics = recipe.train(config, run_dir)
    assert metrics["frames"] == config.total_frames
    trained = recipe.load_policy(run_dir)
    env = trained.make_env()
    try:
        return evaluate(trained.policy, env, 2, seed=0, max_steps=2_500)  # dm_control: 1000 steps each
    finally:
        env.close()


@pytest.mark.parametrize("algo", CONTINUOUS)
def test_continuous_recipes_on_a_core_env_batched_by_the_core(algo, tmp_path):
    returns = train_and_evaluate(algo, "recipetest:counting", tmp_path)
    assert len(returns) == 2 and all(0.0 <= r <= 12.0 for r in returns)


@pytest.mark.parametrize("algo", DISCRETE)
def test_discrete_recipes_on_the_plugin_templates_env(algo, tmp_path):
    returns = train_and_evaluate(algo, "example:RandomWalk-v0", tmp_path)
    assert all(r in (0.0, 1.0) for r in returns)  # reward 1 only on reaching +size


def test_a_recipe_on_the_core_env_by_its_registered_name(tmp_path):
    recipe = get_recipe("ppo")
    config = recipe.make_config("testing:counting", [*SMOKE["ppo"], "progress_bar=false", "total_frames=64"])
    assert recipe.train(config, tmp_path)["frames"] == 64


def test_several_observation_keys_become_one_vector():
    pytest.importorskip("dm_control")
    env = make_env("dmc:cartpole/balance", num_envs=2, seed=0)
    try:
        assert type(env.base_env).__name__ == "SerialEnv"  # dm_control does not batch natively
        td = env.rollout(3)
        assert td["observation"].shape == (2, 3, 5)  # position (3) and velocity (2), concatenated
        assert td["observation"].dtype == torch.float32
        assert env.action_spec.dtype == torch.float32
    finally:
        env.close()


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_recipes_on_dm_control(algo, tmp_path):
    pytest.importorskip("dm_control")
    returns = train_and_evaluate(algo, "dmc:cartpole/balance", tmp_path)
    assert len(returns) == 2 and all(r > 0 for r in returns)


def test_an_observation_an_mlp_cannot_take_names_its_key():
    pytest.importorskip("dm_control")
    with pytest.raises(RecipeEnvError, match=r"dmc:cartpole/balance: observation 'pixels' has shape \[.*, 3\] and "
                                             r"dtype torch.uint8 \(an image"):
        make_env("dmc:cartpole/balance", from_pixels=True, render_kwargs={"height": 24, "width": 24})
