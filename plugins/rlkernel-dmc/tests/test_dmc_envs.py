"""DMControlEnv on real suite tasks: specs, dtypes, episode ends, seeding, pixels, actions."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede importing dm_control

import numpy as np
import pytest
import torch
from dm_control.rl import control
from dm_control.suite import cartpole
from tensordict import TensorDict

from rlkernel.envs import check_env_specs
from rlkernel.errors import ActionError, EnvError
from rlkernel.specs import Bounded
from rlkernel_dmc import DMControlEnv, DMControlWrapper

SMALL = {"height": 32, "width": 48, "camera_id": 0}


@pytest.mark.parametrize(("domain", "task"), [("cartpole", "swingup"), ("walker", "walk")])
@pytest.mark.parametrize(
    "options",
    [{}, {"concat_observations": True}, {"from_pixels": True, "render_kwargs": SMALL}],
    ids=["state", "concat", "pixels"],
)
def test_check_env_specs(domain: str, task: str, options: dict) -> None:
    env = DMControlEnv(domain, task, **options)
    check_env_specs(env, num_steps=5)
    env.close()


def test_specs_and_dtypes() -> None:
    env = DMControlEnv("walker", "walk")
    assert set(env.observation_keys) == {"orientations", "height", "velocity"}
    assert env.observation_spec["height"].shape == () and env.observation_spec["velocity"].dtype is torch.float64
    assert isinstance(env.action_spec, Bounded) and env.action_spec.dtype is torch.float32
    assert env.action_spec.shape == (6,) and float(env.action_spec.low.min()) == -1.0
    concat = DMControlEnv("walker", "walk", concat_observations=True)
    assert concat.observation_keys == ["observation"]
    assert concat.observation_spec["observation"].shape == (24,)
    assert concat.observation_spec["observation"].dtype is torch.float32
    out = concat.rollout(2)
    assert out["next", "observation"].dtype is torch.float32


def test_time_limit_is_truncated_not_terminated() -> None:
    env = DMControlEnv("cartpole", "swingup", time_limit=0.1)  # 10 control steps
    out = env.rollout(50)
    assert out.batch_size == (10,)
    assert out["next", "truncated"][-1].item() and not out["next", "terminated"].any()
    assert out["next", "done"][-1].item() and not out["next", "done"][:-1].any()


class _CartLeavesTrack(cartpole.Balance):
    """Cart-pole balance whose episode terminates (discount 0) once the cart passes 0.3."""

    def get_termination(self, physics: cartpole.Physics) -> float | None:
        return 0.0 if abs(physics.cart_position()) > 0.3 else None


def test_terminal_state_is_terminated_not_truncated() -> None:
    physics = cartpole.Physics.from_xml_string(*cartpole.get_model_and_assets())
    task = _CartLeavesTrack(swing_up=False, sparse=False, random=0)
    env = DMControlWrapper(control.Environment(physics, task, time_limit=10))
    out = env.rollout(500, policy=lambda td: td.set("action", torch.ones(1)))
    assert out.batch_size[0] < 500
    assert out["next", "terminated"][-1].item() and not out["next", "truncated"].any()
    with pytest.raises(EnvError, match="call reset"):
        env.step(out[-1].exclude("next"))


def test_equal_seeds_give_identical_rollouts() -> None:
    global_seeds = iter(range(100))

    def run(seed: int) -> TensorDict:
        env = DMControlEnv("walker", "walk")
        env.set_seed(seed)
        torch.manual_seed(next(global_seeds))  # the global RNG differs on every run
        return env.rollout(30)

    first, again, other = run(4), run(4), run(5)
    assert (first == again).all()
    assert not torch.equal(first["orientations"], other["orientations"])
    seeded_at_load = DMControlEnv("walker", "walk", random=4).reset()
    assert torch.equal(seeded_at_load["orientations"], first["orientations"][0])


def test_pixels() -> None:
    env = DMControlEnv("cartpole", "swingup", from_pixels=True, render_kwargs=SMALL)
    td = env.rollout(3)
    assert td["pixels"].dtype is torch.uint8 and td["pixels"].shape == (3, 32, 48, 3)
    assert td["next", "pixels"].float().std() > 0
    direct = env.dm_env.physics.render(**SMALL)
    assert np.array_equal(td["next", "pixels"][-1].numpy(), direct)
    only = DMControlEnv("walker", "walk", from_pixels=True, pixels_only=True, render_kwargs=SMALL)
    assert only.observation_keys == ["pixels"]
    check_env_specs(only, num_steps=2)


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (torch.zeros(5), "shape"),
        (torch.zeros(6, dtype=torch.float64), "dtype"),
        (torch.full((6,), 1.5), "above high 1.0"),
        (torch.full((6,), float("nan")), "NaN"),
    ],
)
def test_malformed_action_is_an_action_error(action: torch.Tensor, match: str) -> None:
    env = DMControlEnv("walker", "walk")
    td = env.reset()
    td["action"] = action
    with pytest.raises(ActionError, match=rf"'action'.*Bounded.*{match}"):
        env.step(td)
    td = env.reset().exclude("action")
    with pytest.raises(ActionError, match="'action' is missing"):
        env.step(td)


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(EnvError, match=r"no task 'cartpole'/'swingupp'; closest: cartpole/swingup"):
        DMControlEnv("cartpole", "swingupp")
    with pytest.raises(EnvError, match="pixels_only"):
        DMControlEnv("cartpole", "swingup", pixels_only=True)
    with pytest.raises(EnvError, match="dm_env environment"):
        DMControlWrapper(object())
