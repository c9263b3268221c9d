"""Recipes: configs and overrides, and a short smoke run of each (run dir, CSV, PNG, resume, eval)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Literal

import pytest
import torch
from recipes_smoke import SMOKE
from recipes_smoke import batch_frames as _batch

import rlkernel
from rlkernel_algos.loggers.csv_logger import read_metrics
from rlkernel_algos.recipes import RECIPE_NAMES, get_recipe
from rlkernel_algos.recipes.config import (
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    field_docs,
    parse_value,
)
from rlkernel_algos.recipes.evaluation import evaluate, summarize

torch.set_num_threads(1)


@dataclass
class Demo:
    lr: float = 0.1
    """Step size."""
    frames: int = 10
    """Frames."""
    cells: tuple[int, ...] = (64, 64)
    """Hidden sizes."""
    anneal: bool = False
    """Anneal."""
    clip: float | None = None
    """Optional clip."""
    mode: Literal["a", "b"] = "a"
    """A choice."""
    name: str = "x"


def test_overrides_are_typed_by_the_fields():
    out = apply_overrides(Demo(), ["lr=3e-4", "frames=1e5", "cells=32,16", "anneal=yes", "clip=0.5", "mode=b",
                                   "name=a=b"])
    assert out == Demo(lr=3e-4, frames=100_000, cells=(32, 16), anneal=True, clip=0.5, mode="b", name="a=b")
    assert apply_overrides(out, ["clip=none", "anneal=0", "frames=1_000"]).clip is None
    assert parse_value("(1, 2)", tuple[int, ...]) == (1, 2)
    assert parse_value("1.5,2", list[float]) == [1.5, 2.0]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lrr=1", "unknown config key 'lrr' for Demo; did you mean lr"),
        ("zzz=1", "unknown config key 'zzz' for Demo; keys: lr, frames"),
        ("frames=1.5", "config key 'frames': cannot read '1.5' as int"),
        ("anneal=maybe", "config key 'anneal': cannot read 'maybe' as bool"),
        ("mode=c", "expected one of a, b"),
        ("lr", "must have the form key=value"),
        ("cells=1,x", "config key 'cells': cannot read 'x' as int"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Demo(), [override])


def test_config_json_round_trip_and_docs():
    config = Demo(cells=(8,), clip=0.2)
    assert config_from_dict(Demo, json.loads(json.dumps(config_to_dict(config)))) == config
    with pytest.raises(ConfigError, match="unknown config key 'bogus'"):
        config_from_dict(Demo, {"bogus": 1})
    docs = field_docs(Demo)
    assert docs["lr"] == "Step size." and "name" not in docs


@pytest.mark.parametrize("algo", RECIPE_NAMES)
def test_every_config_field_is_documented(algo):
    recipe = get_recipe(algo)
    docs = field_docs(recipe.config_class)
    missing = [f.name for f in dataclasses.fields(recipe.config_class) if not docs.get(f.name)]
    assert not missing, f"{algo}: undocumented config fields {missing}"
    for field in ("env", "total_frames", "seed", "num_threads", "progress_bar"):
        assert field in docs
    assert recipe.config_class().num_threads == 1
    for env, preset in recipe.presets.items():
        recipe.make_config(env)  # every preset names real fields with fitting values
        assert set(preset) <= set(docs)


def test_presets_then_overrides():
    sac = get_recipe("sac")
    config = sac.make_config("gym:Hopper-v5", ["learning_rate=1e-4"], seed=3)
    assert (config.env, config.total_frames, config.learning_rate, config.seed) == ("gym:Hopper-v5", 100_000, 1e-4, 3)
    assert config.hidden_sizes == (256, 256)
    assert sac.make_config(None, ["env=gym:Hopper-v5"]).hidden_sizes == (256, 256)  # env given as key=value
    assert "learning_rate = 0.001" in sac.describe()


def test_recipes_are_registered_by_the_algos_plugin():
    for name in RECIPE_NAMES:
        entry, _ = rlkernel.registry.algos.entry(name)
        assert entry.plugin == "algos", name
        assert rlkernel.registry.algos[name] is get_recipe(name)


#: The core's cart-pole for each recipe: these runs need no env plugin.
CARTPOLE = {
    **dict.fromkeys(("ppo", "a2c", "dqn"), "testing:cartpole"),
    **dict.fromkeys(("ddpg", "td3", "sac"), "testing:cartpole-continuous"),
}


@pytest.mark.parametrize("algo", RECIPE_NAMES)
def test_recipe_smoke_run_resume_and_eval(tmp_path, algo):
    recipe = get_recipe(algo)
    base = recipe.make_config(CARTPOLE[algo], [*SMOKE[algo], "progress_bar=false", "log_interval=1"])
    batch = _batch(base)
    config = dataclasses.replace(base, total_frames=2 * batch, checkpoint_interval=batch)
    metrics = recipe.train(config, tmp_path)

    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "metrics.csv", "learning_curve.png", "policy.pt", "summary.json", "checkpoints"} <= names
    assert json.loads((tmp_path / "config.json").read_text())["algo"] == algo
    assert (tmp_path / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert metrics["frames"] == 2 * batch
    series = read_metrics(tmp_path / "metrics.csv")
    assert [step for step, _ in series["fps"]] == [batch, 2 * batch]
    assert [p.name for p in sorted((tmp_path / "checkpoints").iterdir())] == [
        f"checkpoint-{batch:012d}.pt", f"checkpoint-{2 * batch:012d}.pt"
    ]

    # Training again in the same directory resumes from its newest checkpoint.
    more = recipe.train(dataclasses.replace(config, total_frames=3 * batch), tmp_path)
    assert more["frames"] == 3 * batch
    assert [step for step, _ in read_metrics(tmp_path / "metrics.csv")["fps"]] == [batch, 2 * batch, 3 * batch]

    trained = recipe.load_policy(tmp_path)
    env = trained.make_env()
    try:
        returns = evaluate(trained.policy, env, 2, seed=0)
    finally:
        env.close()
    assert len(returns) == 2 and all(isinstance(r, float) for r in returns)
    assert trained.config == dataclasses.replace(config, total_frames=3 * batch)


def test_evaluate_is_deterministic_and_batched():
    ppo = get_recipe("ppo")
    from rlkernel_algos.recipes.ppo import make_actor, make_env

    config = ppo.make_config("testing:cartpole")
    torch.manual_seed(0)
    env = make_env(config, num_envs=None)
    actor = make_actor(config, env)
    first = evaluate(actor, env, 3, seed=5)
    assert evaluate(actor, env, 3, seed=5) == first  # deterministic actions, same seed
    batched = make_env(config, num_envs=3)
    assert len(evaluate(actor, batched, 5, seed=5)) == 5
    summary = summarize([1.0, 3.0])
    assert (summary["mean"], summary["std"], summary["episodes"]) == (2.0, 1.0, 2)
    with pytest.raises(ValueError, match="episodes must be a positive int"):
        evaluate(actor, env, 0)
    with pytest.raises(RuntimeError, match="did not end within 2 steps"):
        evaluate(actor, env, 1, max_steps=2)
