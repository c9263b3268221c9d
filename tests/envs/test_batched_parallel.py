"""ParallelEnv on real processes: the core's CountingEnv and cart-pole (a direct-step env, as
gymnasium's are), and gymnasium's and dm_control's own environments when those plugins are
installed.

Environments are module-scoped and shared between tests (start-up costs a process each).
Tests that need a fresh environment build a small one.
"""

from __future__ import annotations

import functools
import multiprocessing
import os

import pytest
import torch

from rlkernel.envs import check_env_specs, step_mdp
from rlkernel.envs.batched import ParallelEnv, SerialEnv
from rlkernel.errors import EnvError
from rlkernel.testing import CartPoleEnv, CountingEnv


def ones(*shape: int) -> torch.Tensor:
    return torch.ones(*shape, 1)


def replay(actions: torch.Tensor):
    """A policy that plays ``actions[t]`` at step ``t``."""
    steps = iter(actions)
    return lambda td: td.set("action", next(steps))


@pytest.fixture(scope="module")
def counting():
    env = ParallelEnv(3, CountingEnv, [{"max_count": 2}, {"max_count": 3}, {"max_count": 100}])
    yield env
    env.close()


def gym_env(env_id: str):
    gym = pytest.importorskip("rlkernel_gym")
    return lambda: gym.GymEnv(env_id)


@pytest.fixture(scope="module")
def cartpole():
    env = ParallelEnv(3, CartPoleEnv)
    yield env
    env.close()


@pytest.fixture(scope="module")
def pendulum():
    env = ParallelEnv(2, gym_env("Pendulum-v1"))
    yield env
    env.close()


@pytest.fixture(scope="module")
def cheetah():
    pytest.importorskip("mujoco")
    env = ParallelEnv(2, gym_env("HalfCheetah-v5"))
    yield env
    env.close()


def dmc_cartpole():
    dmc = pytest.importorskip("rlkernel_dmc")
    return lambda: dmc.DMControlEnv("cartpole", "swingup")


def dict_cartpole():
    """CartPole whose observation is a gymnasium Dict (position / velocity), wrapped by GymWrapper."""
    import gymnasium
    import numpy as np

    from rlkernel_gym import GymWrapper

    base = gymnasium.make("CartPole-v1")
    low, high = base.observation_space.low, base.observation_space.high
    space = gymnasium.spaces.Dict(
        {
            "position": gymnasium.spaces.Box(low[[0, 2]], high[[0, 2]], dtype=np.float32),
            "velocity": gymnasium.spaces.Box(low[[1, 3]], high[[1, 3]], dtype=np.float32),
        }
    )
    split = gymnasium.wrappers.TransformObservation(
        base, lambda obs: {"position": obs[[0, 2]], "velocity": obs[[1, 3]]}, space
    )
    return GymWrapper(split)


class TestCountingEnv:
    def test_specs_are_the_sub_env_specs_expanded(self, counting) -> None:
        single = CountingEnv()
        assert counting.batch_size == torch.Size([3])
        assert counting.full_observation_spec == single.full_observation_spec.expand(3)
        assert counting.full_action_spec == single.full_action_spec.expand(3)
        check_env_specs(counting)

    def test_workers_are_separate_live_processes(self, counting) -> None:
        pids = counting.worker_pids
        assert len(set(pids)) == 3 and os.getpid() not in pids
        for pid in pids:
            os.kill(pid, 0)  # raises if the process does not exist

    def test_matches_serial_and_independent_envs(self, counting) -> None:
        kwargs = [{"max_count": 2}, {"max_count": 3}, {"max_count": 100}]
        acts = torch.rand(7, 3, 1, generator=torch.Generator().manual_seed(1))
        par = counting.rollout(7, policy=replay(acts), break_when_any_done=False)
        ser = SerialEnv(3, CountingEnv, kwargs).rollout(7, policy=replay(acts), break_when_any_done=False)
        assert (par == ser).all()
        for i, kw in enumerate(kwargs):
            ref = CountingEnv(**kw).rollout(7, policy=replay(acts[:, i]), break_when_any_done=False)
            assert (par[i] == ref).all()

    def test_rollout_breaks_at_first_done_or_goes_on(self, counting) -> None:
        policy = lambda td: td.set("action", ones(3))  # noqa: E731
        assert counting.rollout(10, policy=policy).batch_size == torch.Size([3, 2])
        roll = counting.rollout(10, policy=policy, break_when_any_done=False)
        assert roll.batch_size == torch.Size([3, 10])
        assert roll["next", "done"].sum(1).flatten().tolist() == [5, 3, 0]

    def test_partial_reset_resets_only_selected_workers(self, counting) -> None:
        td = step_mdp(counting.step(counting.reset().set("action", ones(3))))
        td.set("_reset", torch.tensor([[False], [True], [False]]))
        out = counting.reset(td)
        assert out["observation"].flatten().tolist() == [1.0, 0.0, 1.0]
        nxt = counting.step(out.exclude("_reset").set("action", ones(3)))
        assert nxt["next", "observation"].flatten().tolist() == [2.0, 1.0, 2.0]

    def test_step_and_maybe_reset(self, counting) -> None:
        td = counting.reset().set("action", ones(3))
        td, root = counting.step_and_maybe_reset(td)
        td, root = counting.step_and_maybe_reset(root.set("action", ones(3)))
        assert td["next", "done"].flatten().tolist() == [True, False, False]
        assert root["observation"].flatten().tolist() == [0.0, 2.0, 2.0]

    def test_returned_tensors_are_owned_by_the_caller(self, counting) -> None:
        first = counting.step(counting.reset().set("action", ones(3)))
        kept = first["next", "observation"].clone()
        counting.step(step_mdp(first).set("action", ones(3)))
        assert torch.equal(first["next", "observation"], kept)

    def test_seed_returns_the_next_free_seed(self, counting) -> None:
        assert counting.set_seed(3) == 6
        assert counting.set_seed(None) is None


class TestKeyLayouts:
    def test_nested_keys_and_states_cross_processes(self) -> None:
        from test_batched_serial import NestedEnv, StatefulEnv

        with ParallelEnv(2, NestedEnv, [{"max_count": 1}, {"max_count": 3}]) as env:
            check_env_specs(env)
            td, root = env.step_and_maybe_reset(env.reset().set("action", ones(2)))
            assert root["agents", "observation"].flatten().tolist() == [0.0, 1.0]
        with ParallelEnv(2, StatefulEnv, [{"echo": True}, {"echo": True}]) as env:
            td = env.reset().set("action", ones(2)).set("offset", torch.tensor([[0.0], [5.0]]))
            out = env.step(td)
            assert out["next", "observation"].flatten().tolist() == [1.0, 6.0]
            assert out["next", "offset"].flatten().tolist() == [1.0, 6.0]


class TestStartMethods:
    def test_batched_sub_envs_under_fork(self) -> None:
        with ParallelEnv(2, CountingEnv, {"batch_size": (2,), "max_count": 10}, mp_context="fork") as env:
            assert env.mp_start_method == "fork"
            assert env.batch_size == torch.Size([2, 2])
            check_env_specs(env)
            td = step_mdp(env.step(env.reset().set("action", ones(2, 2))))
            td.set("_reset", torch.tensor([[[True], [False]], [[False], [True]]]))
            assert env.reset(td)["observation"].flatten().tolist() == [0.0, 1.0, 1.0, 0.0]

    def test_spawn_with_a_context_object(self) -> None:
        before = multiprocessing.get_start_method(allow_none=True)
        ctx = multiprocessing.get_context("spawn")
        with ParallelEnv(1, CountingEnv, mp_context=ctx) as env:  # one worker: each imports torch
            assert env.mp_start_method == "spawn"
            assert env.rollout(3, break_when_any_done=False).batch_size == torch.Size([1, 3])
        assert multiprocessing.get_start_method(allow_none=True) == before  # the global is untouched

    def test_unknown_start_method_is_refused(self) -> None:
        with pytest.raises(EnvError, match="mp_context"):
            ParallelEnv(2, CountingEnv, mp_context="teleport")


def _same_as_serial_and_singles(parallel: ParallelEnv, factory, num_steps: int = 20) -> None:
    """Same seeds and actions: ParallelEnv == SerialEnv == independent environments."""
    n, stride = parallel.num_workers, max(1, parallel.sub_batch_size.numel())  # seeds: 11 + i * stride
    serial = SerialEnv(n, factory)
    singles = [factory() for _ in range(n)]
    torch.manual_seed(0)
    acts = parallel.full_action_spec.rand((num_steps,))
    acts = acts.get("action") if not isinstance(acts, torch.Tensor) else acts
    assert parallel.set_seed(11) == 11 + n * stride
    assert serial.set_seed(11) == 11 + n * stride
    par = parallel.rollout(num_steps, policy=replay(acts), break_when_any_done=False)
    ser = serial.rollout(num_steps, policy=replay(acts), break_when_any_done=False)
    assert (par == ser).all()
    for i, single in enumerate(singles):
        single.set_seed(11 + i * stride)
        ref = single.rollout(num_steps, policy=replay(acts[:, i]), break_when_any_done=False)
        assert (par[i] == ref).all()
    key = parallel.observation_keys[0]
    assert not torch.equal(par[0][key], par[1][key])  # distinct seeds
    serial.close()
    for single in singles:
        single.close()


class TestCartPole:
    def test_cartpole_specs(self, cartpole) -> None:
        check_env_specs(cartpole, num_steps=30)

    def test_cartpole_matches_serial_and_singles(self, cartpole) -> None:
        _same_as_serial_and_singles(cartpole, CartPoleEnv, num_steps=40)

    def test_cartpole_partial_reset(self, cartpole) -> None:
        cartpole.set_seed(0)
        td = cartpole.reset()
        td = step_mdp(cartpole.step(td.set("action", torch.ones(3, dtype=torch.int64))))
        before = td["observation"].clone()
        td.set("_reset", torch.tensor([[True], [False], [False]]))
        out = cartpole.reset(td)
        assert torch.equal(out["observation"][1:], before[1:])
        assert not torch.equal(out["observation"][0], before[0])

    def test_cartpole_rollout_with_and_without_break(self, cartpole) -> None:
        roll = cartpole.rollout(200)
        assert roll["next", "done"][:, -1].any() or roll.batch_size[1] == 200
        assert not roll["next", "done"][:, :-1].any()
        assert cartpole.rollout(50, break_when_any_done=False).batch_size == torch.Size([3, 50])

    def test_batched_sub_envs(self) -> None:
        with ParallelEnv(2, CartPoleEnv, {"num_envs": 2}) as env:
            assert env.batch_size == torch.Size([2, 2])
            check_env_specs(env, num_steps=30)
            _same_as_serial_and_singles(env, functools.partial(CartPoleEnv, num_envs=2), num_steps=30)

    def test_cartpole_pixels(self) -> None:
        with ParallelEnv(2, CartPoleEnv, {"from_pixels": True}) as env:
            assert env.observation_spec["pixels"].shape == (2, 64, 96, 3)
            check_env_specs(env, num_steps=3)
            td = env.rollout(3, break_when_any_done=False)
            assert td["next", "pixels"].dtype == torch.uint8 and td["next", "pixels"].float().std() > 0


class TestGymnasium:
    def test_pendulum_specs(self, pendulum) -> None:
        check_env_specs(pendulum)

    def test_pendulum_matches_serial_and_singles(self, pendulum) -> None:
        _same_as_serial_and_singles(pendulum, gym_env("Pendulum-v1"))

    def test_half_cheetah_specs(self, cheetah) -> None:
        check_env_specs(cheetah)

    def test_half_cheetah_matches_serial_and_singles(self, cheetah) -> None:
        _same_as_serial_and_singles(cheetah, gym_env("HalfCheetah-v5"), num_steps=10)

    def test_vectorised_gym_sub_envs(self) -> None:
        gym = pytest.importorskip("rlkernel_gym")
        with ParallelEnv(2, gym.GymEnv, {"env_id": "CartPole-v1", "num_envs": 2}) as env:
            assert env.batch_size == torch.Size([2, 2])
            check_env_specs(env, num_steps=30)

    def test_dict_observation_env(self) -> None:
        pytest.importorskip("rlkernel_gym")
        with ParallelEnv(2, dict_cartpole) as env:
            assert {"position", "velocity"} <= set(env.observation_keys)
            check_env_specs(env, num_steps=20)
            _same_as_serial_and_singles(env, dict_cartpole, num_steps=20)

    def test_cartpole_pixels(self) -> None:
        gym = pytest.importorskip("rlkernel_gym")
        with ParallelEnv(2, gym.GymEnv, {"env_id": "CartPole-v1", "from_pixels": True}) as env:
            assert env.observation_spec["pixels"].shape == (2, 400, 600, 3)
            check_env_specs(env, num_steps=3)
            td = env.rollout(3, break_when_any_done=False)
            assert td["next", "pixels"].dtype == torch.uint8 and td["next", "pixels"].float().std() > 0


class TestDMControl:
    def test_walker_walk(self) -> None:
        dmc = pytest.importorskip("rlkernel_dmc")
        with ParallelEnv(2, dmc.DMControlEnv, {"domain": "walker", "task": "walk"}) as env:
            check_env_specs(env)

    def test_cartpole_swingup(self) -> None:
        factory = dmc_cartpole()
        with ParallelEnv(2, factory) as env:
            check_env_specs(env)
            _same_as_serial_and_singles(env, factory, num_steps=5)
