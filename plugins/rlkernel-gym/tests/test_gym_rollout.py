"""``GymEnv.rollout`` runs the one rollout engine (``EnvBase.rollout``): a rollout with random
actions (drawn for all steps at once, recorded with the engine's shift of the root leaves)
gives exactly what a rollout replaying those actions through a policy (recorded step by
step) gives, on a second env seeded alike: same keys, shapes, dtypes and values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import rlkernel_gym_testenvs as testenvs
import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.envs import EnvBase
from rlkernel.errors import EnvError
from rlkernel_gym import GymEnv

CASES = [
    ("CartPole-v1", {}),
    ("CartPole-v1", {"max_episode_steps": 9}),
    ("Pendulum-v1", {"max_episode_steps": 20}),
    (testenvs.DICT_ID, {"info_keys": ["distance", "steps"]}),
    (testenvs.TUPLE_ID, {}),
]


def assert_identical(fast: TensorDictBase, generic: TensorDictBase) -> None:
    """Same batch size, keys, shapes, dtypes, devices and values."""
    assert fast.batch_size == generic.batch_size
    assert fast.device == generic.device
    fast_keys = set(fast.keys(include_nested=True, leaves_only=True))
    assert fast_keys == set(generic.keys(include_nested=True, leaves_only=True))
    for key in fast_keys:
        a, b = fast.get(key), generic.get(key)
        assert (a.shape, a.dtype) == (b.shape, b.dtype), key
        assert torch.equal(a, b), key
        assert a.is_contiguous(), key


def replay(recorded: TensorDictBase, batch_ndim: int, extras: bool = False) -> Callable[[TensorDictBase], Any]:
    """A policy that plays back the actions of ``recorded`` (and, with ``extras``, writes an
    entry of its own that the next step must carry over)."""
    actions = recorded.select("action")
    counter = iter(range(recorded.batch_size[batch_ndim]))
    batch = recorded.batch_size[:batch_ndim]

    def policy(td: TensorDictBase) -> TensorDictBase:
        t = next(counter)
        td.update(actions[(slice(None),) * batch_ndim + (t,)].clone())
        if extras:
            previous = td.get("policy_step", torch.full((*batch, 1), -1))
            td.set("policy_step", previous + 1)
        return td

    return policy


@pytest.mark.parametrize("break_when_any_done", [False, True])
@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize(("env_id", "kwargs"), CASES)
def test_random_rollout_equals_a_replayed_one(
    env_id: str, kwargs: dict, num_envs: int | None, break_when_any_done: bool
) -> None:
    steps = 60
    envs = [GymEnv(env_id, num_envs=num_envs, **kwargs) for _ in range(4)]
    for env in envs:
        env.set_seed(4)
    nb = len(envs[0].batch_size)
    fast = envs[0].rollout(steps, break_when_any_done=break_when_any_done)
    generic = EnvBase.rollout(envs[1], steps, replay(fast, nb), break_when_any_done=break_when_any_done)
    assert_identical(fast, generic)
    # The policy path: one TensorDict per step, the policy's own entries carried over.
    fast_policy = envs[2].rollout(steps, replay(fast, nb, extras=True), break_when_any_done=break_when_any_done)
    generic_policy = EnvBase.rollout(
        envs[3], steps, replay(fast, nb, extras=True), break_when_any_done=break_when_any_done
    )
    assert_identical(fast_policy, generic_policy)
    assert torch.equal(fast_policy["policy_step"][..., 0], torch.arange(fast.batch_size[-1]).expand(fast.batch_size))
    if break_when_any_done:
        assert fast.batch_size[-1] < steps or not fast["next", "done"].any()


def test_random_rollout_with_pixels_equals_a_replayed_one() -> None:
    envs = [GymEnv("CartPole-v1", from_pixels=True, max_episode_steps=4) for _ in range(2)]
    for env in envs:
        env.set_seed(0)
    fast = envs[0].rollout(6, break_when_any_done=False)
    assert_identical(fast, EnvBase.rollout(envs[1], 6, replay(fast, 0), break_when_any_done=False))


def test_set_truncated_marks_the_last_step() -> None:
    for num_envs in (None, 2):
        envs = [GymEnv("CartPole-v1", num_envs=num_envs) for _ in range(2)]
        for env in envs:
            env.set_seed(2)
        nb = len(envs[0].batch_size)
        fast = envs[0].rollout(5, break_when_any_done=False, set_truncated=True)
        assert fast["next", "truncated"][..., -1, :].all() and fast["next", "done"][..., -1, :].all()
        generic = EnvBase.rollout(envs[1], 5, replay(fast, nb), break_when_any_done=False, set_truncated=True)
        assert_identical(fast, generic)


def test_consecutive_rollouts_continue_the_same_random_streams() -> None:
    fast_env, generic_env = GymEnv("CartPole-v1", num_envs=2), GymEnv("CartPole-v1", num_envs=2)
    fast_env.set_seed(9)
    generic_env.set_seed(9)
    for _ in range(3):
        fast = fast_env.rollout(50, break_when_any_done=False)
        assert_identical(fast, EnvBase.rollout(generic_env, 50, replay(fast, 1), break_when_any_done=False))


def test_a_rollout_can_start_from_a_tensordict() -> None:
    env = GymEnv("CartPole-v1")
    td = env.reset()
    out = env.rollout(5, auto_reset=False, tensordict=td, break_when_any_done=False)
    assert out.batch_size == (5,)
    with pytest.raises(EnvError, match="max_steps"):
        env.rollout(0)


def test_policy_must_return_a_tensordict() -> None:
    env = GymEnv("CartPole-v1")
    with pytest.raises(EnvError, match="policy must return a TensorDict"):
        env.rollout(3, policy=lambda td: None)
    bad = TensorDict({"action": torch.tensor(7)}, [])
    from rlkernel.errors import ActionError

    with pytest.raises(ActionError, match="'action'"):
        env.rollout(3, policy=lambda td: td.update(bad))
