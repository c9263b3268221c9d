"""Vectorised GymEnv: every transition matches a plain per-env gymnasium loop, across resets."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from tensordict import TensorDict

from rlkernel.envs import EnvBase
from rlkernel.errors import EnvError
from rlkernel_gym import GymEnv, GymWrapper

N = 4
SEED = 11


class PlainLoop:
    """N independent gymnasium envs stepped by hand, reset by hand when they end."""

    def __init__(self, n: int, seed: int, **make_kwargs: object) -> None:
        self.envs = [gymnasium.make("CartPole-v1", **make_kwargs) for _ in range(n)]
        self.obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(self.envs)])

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """Returns next obs, reward, terminated, truncated, and the obs after resets."""
        results = [env.step(int(a)) for env, a in zip(self.envs, actions)]
        nxt = np.stack([r[0] for r in results])
        reward = np.array([r[1] for r in results], dtype=np.float32)
        term = np.array([r[2] for r in results])
        trunc = np.array([r[3] for r in results])
        after = nxt.copy()
        for i, env in enumerate(self.envs):
            if term[i] or trunc[i]:
                after[i] = env.reset()[0]
        self.obs = after
        return nxt, reward, term, trunc, after


def _check_transition(step: TensorDict, plain: tuple[np.ndarray, ...]) -> None:
    nxt, reward, term, trunc, _ = plain
    assert np.array_equal(step["next", "observation"].numpy(), nxt)
    assert np.array_equal(step["next", "reward"][:, 0].numpy(), reward)
    assert np.array_equal(step["next", "terminated"][:, 0].numpy(), term)
    assert np.array_equal(step["next", "truncated"][:, 0].numpy(), trunc)
    assert np.array_equal(step["next", "done"][:, 0].numpy(), term | trunc)


@pytest.mark.parametrize("max_episode_steps", [None, 17])
def test_step_and_maybe_reset_matches_a_plain_loop(max_episode_steps: int | None) -> None:
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    env = GymEnv("CartPole-v1", num_envs=N, **kwargs)
    env.set_seed(SEED)
    plain = PlainLoop(N, SEED, **kwargs)
    generator = torch.Generator().manual_seed(0)
    td = env.reset()
    assert np.array_equal(td["observation"].numpy(), plain.obs)
    resets = 0
    for _ in range(300):
        td["action"] = torch.randint(0, 2, (N,), generator=generator)
        expected = plain.step(td["action"].numpy())
        td, root = env.step_and_maybe_reset(td)
        _check_transition(td, expected)
        after = expected[-1]
        assert np.array_equal(root["observation"].numpy(), after)  # fresh reset obs where done
        assert not root["done"].any()
        resets += int(td["next", "done"].sum())
        td = root
    assert resets >= 2 * N
    if max_episode_steps is not None:
        assert env.rollout(40, break_when_any_done=False)["next", "truncated"].any()


@pytest.mark.parametrize("with_policy", [False, True])
def test_rollout_matches_a_plain_loop(with_policy: bool) -> None:
    env = GymEnv("CartPole-v1", num_envs=N, max_episode_steps=25)
    env.set_seed(SEED)
    policy: Callable[[TensorDict], TensorDict] | None = None
    if with_policy:
        generator = torch.Generator().manual_seed(1)

        def policy(td: TensorDict) -> TensorDict:
            return td.set("action", torch.randint(0, 2, (N,), generator=generator))

    out = env.rollout(400, policy, break_when_any_done=False)
    assert out.batch_size == (N, 400)
    plain = PlainLoop(N, SEED, max_episode_steps=25)
    assert np.array_equal(out["observation"][:, 0].numpy(), plain.obs)
    for t in range(400):
        expected = plain.step(out["action"][:, t].numpy())
        _check_transition(out[:, t], expected)
        if t + 1 < 400:
            assert np.array_equal(out["observation"][:, t + 1].numpy(), expected[-1])
    assert out["next", "done"].sum() >= 2 * N


def test_partial_reset_of_a_running_sub_env() -> None:
    env = GymEnv("CartPole-v1", num_envs=3)
    env.set_seed(0)
    td = env.reset()
    td["action"] = torch.zeros(3, dtype=torch.int64)
    td, root = env.step_and_maybe_reset(td)
    root["_reset"] = torch.tensor([[False], [True], [False]])
    before = root["observation"].clone()
    after = env.reset(root)
    assert torch.equal(after["observation"][[0, 2]], before[[0, 2]])
    assert not torch.equal(after["observation"][1], before[1])
    after["action"] = torch.zeros(3, dtype=torch.int64)
    env.step(after)  # every sub-env may step again


def test_stepping_a_finished_sub_env_is_an_error() -> None:
    env = GymEnv("CartPole-v1", num_envs=2, max_episode_steps=2)
    td = env.reset()
    for _ in range(2):
        td["action"] = torch.zeros(2, dtype=torch.int64)
        td = env.step(td)
        td = td["next"].exclude("reward")
    td["action"] = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(EnvError, match=r"sub-environment\(s\) \[0, 1\] finished"):
        env.step(td)


def test_break_when_any_done_then_a_new_rollout() -> None:
    env = GymEnv("CartPole-v1", num_envs=2, max_episode_steps=4)
    out = env.rollout(10)
    assert out.batch_size == (2, 4) and out["next", "done"][:, -1].all()
    assert env.rollout(3, break_when_any_done=False).batch_size == (2, 3)


def test_user_vector_env_in_next_step_mode_loses_no_transition() -> None:
    vec = gymnasium.make_vec("CartPole-v1", N, vectorization_mode="sync")  # NEXT_STEP by default
    env = GymWrapper(vec)
    env.set_seed(SEED)
    plain = PlainLoop(N, SEED)
    out = EnvBase.rollout(env, 200, break_when_any_done=False)
    for t in range(200):
        _check_transition(out[:, t], plain.step(out["action"][:, t].numpy()))


def test_same_step_autoreset_is_refused() -> None:
    vec = gymnasium.make_vec(
        "CartPole-v1", 2, vectorization_mode="sync", vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}
    )
    with pytest.raises(EnvError, match="NEXT_STEP or DISABLED"):
        GymWrapper(vec)


def test_async_vector_env() -> None:
    env = GymEnv("CartPole-v1", num_envs=2, vectorization_mode="async")
    try:
        env.set_seed(SEED)
        out = env.rollout(60, break_when_any_done=False)
        plain = PlainLoop(2, SEED)
        for t in range(60):
            _check_transition(out[:, t], plain.step(out["action"][:, t].numpy()))
    finally:
        env.close()
