"""``rlkernel.testing.CartPoleEnv``: the core's own control task (the stand-in for gymnasium's
CartPole in the core's tests), its equations, seeding, partial resets, pixels and specs."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule

import rlkernel
from rlkernel.collectors import SyncDataCollector
from rlkernel.envs import check_env_specs
from rlkernel.errors import EnvError
from rlkernel.specs import Bounded, Categorical
from rlkernel.testing import CartPoleEnv, ContinuousCartPoleEnv


def reference_step(state: list[float], force: float) -> list[float]:
    """One Euler step of the cart-pole equations (Barto, Sutton and Anderson, 1983), in plain floats."""
    x, x_dot, theta, theta_dot = state
    total, pole, half, tau = 1.1, 0.1, 0.5, 0.02
    temp = (force + pole * half * theta_dot**2 * math.sin(theta)) / total
    inertia = half * (4 / 3 - pole * math.cos(theta) ** 2 / total)
    theta_acc = (9.8 * math.sin(theta) - math.cos(theta) * temp) / inertia
    x_acc = temp - pole * half * theta_acc * math.cos(theta) / total
    return [x + tau * x_dot, x_dot + tau * x_acc, theta + tau * theta_dot, theta_dot + tau * theta_acc]


def balance(td: TensorDict) -> TensorDict:
    """Push the cart under the pole: keeps it up for hundreds of steps."""
    obs = td["observation"]
    return td.set("action", (obs[..., 2] + 0.5 * obs[..., 3] > 0).long())


@pytest.mark.parametrize("continuous", [False, True])
def test_a_step_follows_the_equations(continuous):
    env = CartPoleEnv(continuous=continuous, dtype=torch.float64)
    td = env.reset()
    start = [0.1, -0.3, 0.05, 0.4]
    env.state = torch.tensor(start, dtype=torch.float64)
    action = torch.tensor([-0.5], dtype=torch.float64) if continuous else torch.tensor(1)
    out = env.step(td.set("action", action))["next"]
    force = -5.0 if continuous else 10.0
    torch.testing.assert_close(out["observation"], torch.tensor(reference_step(start, force), dtype=torch.float64))
    assert out["reward"].item() == 1.0 and not out["done"].any()


def test_pushing_one_way_topples_the_pole_and_balancing_reaches_max_steps():
    env = CartPoleEnv()
    env.set_seed(0)
    roll = env.rollout(100, lambda td: td.set("action", torch.tensor(1)))
    assert 5 < roll.shape[0] < 20 and bool(roll["next", "terminated"][-1]) and not roll["next", "truncated"].any()
    assert abs(roll["next", "observation"][-1, 2].item()) > 12 * math.pi / 180
    assert (roll["next", "reward"] == 1.0).all()

    batched = CartPoleEnv(num_envs=3, max_steps=120)
    batched.set_seed(1)
    roll = batched.rollout(120, balance, break_when_any_done=False)
    assert not roll["next", "terminated"].any()
    assert roll["next", "truncated"][:, -1].all() and not roll["next", "done"][:, :-1].any()


def test_seeding_is_reproducible_and_sub_envs_differ():
    def first_states(seed):
        env = CartPoleEnv(num_envs=3)
        env.set_seed(seed)
        return env.reset()["observation"]

    a, b, c = first_states(0), first_states(0), first_states(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1]) and bool((a.abs() <= 0.05).all())
    torch.manual_seed(4)  # unseeded: torch's global generator
    d = CartPoleEnv(num_envs=3).reset()["observation"]
    torch.manual_seed(4)
    assert torch.equal(d, CartPoleEnv(num_envs=3).reset()["observation"])


def test_partial_reset_redraws_only_the_masked_envs():
    env = CartPoleEnv(num_envs=3, max_steps=4)
    env.set_seed(0)
    td = env.reset()
    for _ in range(3):
        td = env.step(td.set("action", torch.ones(3, dtype=torch.int64)))["next"].exclude("reward")
    before = td["observation"].clone()
    out = env.reset(td.set("_reset", torch.tensor([[False], [True], [False]])))
    assert torch.equal(out["observation"][[0, 2]], before[[0, 2]])
    assert not torch.equal(out["observation"][1], before[1]) and bool((out["observation"][1].abs() <= 0.05).all())
    # the step counts of the others go on: env 0 and 2 truncate at their 4th step, env 1 does not
    nxt = env.step(out.set("action", torch.ones(3, dtype=torch.int64)))["next"]
    assert nxt["truncated"].flatten().tolist() == [True, False, True]


def test_pixels_picture_the_state():
    env = CartPoleEnv(from_pixels=True, pixel_size=(40, 60))
    td = env.reset()
    assert set(td.keys()) >= {"observation", "pixels"} and td["pixels"].shape == (40, 60, 3)
    env.state = torch.tensor([-2.0, 0.0, 0.0, 0.0])
    left = env.render()
    env.state = torch.tensor([2.0, 0.0, 0.0, 0.0])
    right = env.render()
    cart = torch.arange(60.0)

    def cart_centre(image):  # the black pixels are the cart's
        black = (image == 0).all(-1).any(0)
        return cart[black].mean().item()

    assert cart_centre(left) == pytest.approx(30 - 2.0 * 60 / 9.6, abs=1.0)
    assert cart_centre(right) == pytest.approx(30 + 2.0 * 60 / 9.6, abs=1.0)

    def pole_top(image):  # the mean column of the pole's pixels (neither white nor black) in the top half
        pole = ((image != 0) & (image != 255)).any(-1)[:20].any(0)
        return cart[pole].mean().item()

    for theta, side in ((0.2, 1), (-0.2, -1), (0.0, 0)):
        env.state = torch.tensor([0.0, 0.0, theta, 0.0])
        assert pole_top(env.render()) - 30 == pytest.approx(side * 20 * math.sin(0.2), abs=1.5)  # length 20 px
    only = CartPoleEnv(from_pixels=True, pixels_only=True, num_envs=2)
    assert set(only.reset().keys()) == {"pixels", "done", "terminated", "truncated"}


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"num_envs": 3}, {"continuous": True, "batch_size": (2, 2)}, {"from_pixels": True, "num_envs": 2},
     {"continuous": True, "dtype": torch.float64}],
)
def test_specs_hold(kwargs):
    check_env_specs(CartPoleEnv(**kwargs), num_steps=3)


def test_action_specs_and_the_registered_name():
    assert CartPoleEnv(num_envs=2).action_spec == Categorical(2, shape=(2,))
    assert CartPoleEnv(continuous=True).action_spec == Bounded(-1.0, 1.0, shape=(1,))
    env = rlkernel.make_env("testing:cartpole", num_envs=4, continuous=True)
    assert type(env) is CartPoleEnv and env.batch_size == (4,)  # batched natively
    env = rlkernel.make_env("testing:cartpole-continuous", num_envs=2)
    assert type(env) is ContinuousCartPoleEnv and env.batch_size == (2,) and env.direct_step
    assert env.action_spec == Bounded(-1.0, 1.0, shape=(2, 1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_envs": 2, "batch_size": (2,)}, "num_envs or batch_size"),
        ({"pixels_only": True}, "pixels_only=True needs from_pixels=True"),
        ({"dtype": torch.int64}, "floating-point"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(EnvError, match=match):
        CartPoleEnv(**kwargs)


def test_the_direct_step_in_a_collector_gives_what_step_gives():
    assert CartPoleEnv.direct_step  # the collectors bind its direct step, as they do gymnasium's
    env = CartPoleEnv(num_envs=2, max_steps=30)
    env.set_seed(5)
    expected = env.rollout(60, lambda td: td.set("action", torch.tensor([0, 1])), break_when_any_done=False)
    policy = TensorDictModule(lambda obs: torch.tensor([0, 1]).expand(obs.shape[:-1]), ["observation"], ["action"])
    collector = SyncDataCollector(CartPoleEnv(num_envs=2, max_steps=30), policy, frames_per_batch=120, seed=5)
    batch = collector.next()
    collector.shutdown()
    assert expected["next", "done"].any()  # episodes ended and restarted inside the batch
    for key in ("observation", ("next", "observation"), ("next", "done"), ("next", "truncated")):
        torch.testing.assert_close(batch[key], expected[key])
