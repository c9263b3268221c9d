"""GymWrapper's direct step in SerialEnv / ParallelEnv workers: same data as ``_step``, same errors."""

from __future__ import annotations

from functools import partial

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from tensordict import TensorDict
from tensordict.nn import TensorDictModule

from rlkernel.envs.batched import ParallelEnv, SerialEnv
from rlkernel.errors import EnvError, WorkerError
from rlkernel_gym import GymEnv, GymWrapper


class NoDirectGymEnv(GymEnv):
    """GymEnv with a ``_step`` of its own (the derived one): it no longer claims the direct
    step, so the workers and the collectors call ``_step``."""

    def _step(self, tensordict):
        return super()._step(tensordict)


def test_a_subclass_defining_step_no_longer_claims_the_direct_step_unless_it_declares_it():
    class Declares(NoDirectGymEnv):
        direct_step = True

    class Inherits(Declares):
        pass

    assert GymEnv.direct_step and GymWrapper.direct_step
    assert not NoDirectGymEnv.direct_step and not DoubledRewardEnv.direct_step
    assert Declares.direct_step and Inherits.direct_step


class DoubledRewardEnv(GymEnv):
    """A subclass that changes ``_step``: the direct step must not bypass it."""

    def _step(self, tensordict):
        out = super()._step(tensordict)
        out.set("reward", out.get("reward") * 2)
        return out


class WrongSizeEnv(gymnasium.Env):
    """Declares a Box(3) observation and returns 4 numbers from step."""

    observation_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(4, dtype=np.float32), 1.0, False, False, {}


class EchoActionEnv(gymnasium.Env):
    """Observes the action it was given (a ``Discrete(3, start=-1)``: -1, 0 or 1)."""

    observation_space = spaces.Box(-2.0, 2.0, shape=(1,), dtype=np.float32)
    action_space = spaces.Discrete(3, start=-1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        return np.array([action], dtype=np.float32), float(action), False, False, {}


def test_a_discrete_action_with_a_start_reaches_gymnasium_with_its_offset():
    env = SerialEnv(2, lambda: GymWrapper(EchoActionEnv()))
    try:
        assert all(runner._direct is not None for runner in env._runners)
        rollout = env.rollout(30)
        sent = rollout["action"].float() - 1  # rlkernel's categories are 0-based
        assert (rollout["next", "observation"].squeeze(-1) == sent).all()
        assert set(sent.unique().tolist()) == {-1.0, 0.0, 1.0}
    finally:
        env.close()


def _rollout(env_cls, env_id: str, steps: int = 120):
    env = SerialEnv(3, partial(env_cls, env_id, max_episode_steps=50))
    env.set_seed(7)
    torch.manual_seed(0)
    try:
        return env.rollout(steps, break_when_any_done=False), env
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "MountainCar-v0"])
def test_direct_step_gives_the_same_rollout_as_step(env_id):
    direct, env = _rollout(GymEnv, env_id)
    assert all(runner._direct is not None for runner in env._runners)
    plain, plain_env = _rollout(NoDirectGymEnv, env_id)
    assert all(runner._direct is None for runner in plain_env._runners)
    assert direct["next", "done"].any()  # the rollout crosses resets
    assert (direct == plain).all()


def test_a_subclass_overriding_step_is_not_bypassed():
    rollout, env = _rollout(DoubledRewardEnv, "CartPole-v1", steps=10)
    assert all(runner._direct is None for runner in env._runners)
    assert (rollout["next", "reward"] == 2).all()


@pytest.mark.parametrize(
    "make",
    [partial(GymEnv, "CartPole-v1", from_pixels=True)],
    ids=["pixels"],
)
def test_no_direct_step_for_pixel_envs(make):
    env = make()
    try:
        views = {key: torch.zeros(()) for key in ("observation", "reward", "terminated", "truncated", "done")}
        assert env._step_into_fn({"action": torch.zeros((), dtype=torch.int64)}, views) is None
    finally:
        env.close()


def test_a_wrong_observation_size_is_an_error_naming_the_key():
    env = SerialEnv(2, lambda: GymWrapper(WrongSizeEnv()))
    try:
        env.reset()
        assert all(runner._direct is not None for runner in env._runners)
        with pytest.raises(EnvError, match=r"shape \(4,\) for 'observation', whose spec has shape \(3,\)"):
            env.step(env.rand_action(env.reset()))
    finally:
        env.close()


def test_parallel_workers_use_the_direct_step_and_report_a_step_past_the_end():
    with ParallelEnv(2, partial(GymEnv, "CartPole-v1")) as env:
        env.set_seed(0)
        td = env.reset()
        for _ in range(500):  # step until some episode ends, without resetting
            td = env.rand_action(td)
            env.step(td)
            if td["next", "done"].any():
                break
            td = td["next"].exclude("reward")
        with pytest.raises(WorkerError, match=r"worker \d .*the episode has ended.*call reset\(\) first"):
            env.step(env.rand_action(td["next"].exclude("reward")))


def test_a_transformed_gym_env_in_a_worker_keeps_its_transforms():
    from rlkernel.transforms import RewardScaling, TransformedEnv

    env = SerialEnv(2, lambda: TransformedEnv(GymEnv("CartPole-v1"), RewardScaling(loc=0.0, scale=3.0)))
    try:
        assert all(runner._direct is None for runner in env._runners)
        assert (env.rollout(5, break_when_any_done=False)["next", "reward"] == 3).all()
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_direct_step_of_a_vector_env_writes_what_step_returns(env_id):
    plain, direct = GymEnv(env_id, num_envs=4), GymEnv(env_id, num_envs=4)
    try:
        for env in (plain, direct):
            env.set_seed(3)
            env.reset()
        keys = ("observation", "reward", "terminated", "truncated", "done")
        outputs = {key: value.clone() for key, value in plain.fake_tensordict()["next"].items() if key in keys}
        inputs = {"action": plain.full_action_spec.zero()["action"]}
        step = direct._step_into_fn(inputs, outputs)
        assert step is not None
        resets = 0
        for _ in range(300):
            action = plain.full_action_spec.rand()
            expected = plain._step(action.clone())
            inputs["action"] = action["action"]
            step()
            for key in keys:
                assert torch.equal(outputs[key], expected[key]), key
            done = expected["done"]
            if done.any():
                resets += 1
                for env in (plain, direct):
                    env.reset(TensorDict({"_reset": done.clone()}, [4]))
        assert resets > 0
        with pytest.raises(EnvError, match=r"sub-environment\(s\) \[\d.*were not reset"):
            while not outputs["done"].any():
                step()
            step()
    finally:
        plain.close()
        direct.close()


@pytest.mark.parametrize("num_envs", [None, 4])
def test_a_collector_steps_gym_envs_directly_with_the_same_batches(num_envs):
    from rlkernel.collectors import SyncDataCollector

    batches = {}
    for cls in (GymEnv, NoDirectGymEnv):
        env = cls("CartPole-v1", num_envs=num_envs)
        collector = SyncDataCollector(env, None, frames_per_batch=200, total_frames=600, seed=5)
        batches[cls] = list(collector)
        assert (collector._stepper._into is not None) == (cls is GymEnv)
        collector.shutdown()
    direct, plain = batches[GymEnv], batches[NoDirectGymEnv]
    assert sum(int(batch["next", "done"].sum()) for batch in direct) > 3  # across resets
    for a, b in zip(direct, plain, strict=True):
        assert (a == b).all()


def test_vector_maybe_reset_in_one_pass_equals_the_generic_merge():
    from rlkernel.envs import EnvBase

    fast, generic = GymEnv("CartPole-v1", num_envs=6), GymEnv("CartPole-v1", num_envs=6)
    try:
        roots = []
        for env in (fast, generic):
            env.set_seed(11)
            roots.append(env.reset())
        torch.manual_seed(0)
        resets = 0
        for _ in range(200):
            action = fast.full_action_spec.rand()
            outs = []
            for env, root in zip((fast, generic), roots):
                td = root.clone().update(action)
                td.set("extra", torch.arange(6.0))  # a key of the caller's, carried over
                outs.append(env.step(td)["next"].set("extra", td["extra"]))
            assert (outs[0] == outs[1]).all()
            resets += int(outs[0]["done"].any())
            roots = [fast.maybe_reset(outs[0]), EnvBase.maybe_reset(generic, outs[1])]
            assert roots[0].keys() == roots[1].keys() and (roots[0] == roots[1]).all()
        assert resets > 10
    finally:
        fast.close()
        generic.close()


class KeepsLastObservation(torch.nn.Module):
    """Acts on the change of the observation, keeping a reference to the last one it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.prev: torch.Tensor | None = None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        delta = torch.zeros((*obs.shape[:-1], 1)) if self.prev is None else (obs - self.prev)[..., :1]
        self.prev = obs
        return delta.clamp(-2, 2)


@pytest.mark.parametrize("make_policy", [
    lambda: TensorDictModule(lambda obs: obs[..., :1], in_keys=["observation"], out_keys=["action"]),
    lambda: TensorDictModule(KeepsLastObservation(), in_keys=["observation"], out_keys=["action"]),
], ids=["action-is-a-view-of-the-observation", "policy-keeps-the-observation"])
def test_direct_collector_steps_never_change_what_the_policy_was_given(make_policy):
    from rlkernel.collectors import SyncDataCollector

    batches = []
    for cls in (GymEnv, NoDirectGymEnv):
        collector = SyncDataCollector(cls("Pendulum-v1"), make_policy(), frames_per_batch=16, total_frames=32, seed=0)
        batches.append(list(collector))
        assert (collector._stepper._into is not None) == (cls is GymEnv)
        collector.shutdown()
    for a, b in zip(*batches, strict=True):
        assert (a == b).all()
    assert batches[0][1]["action"].abs().sum() > 0


def test_a_subclass_reset_is_called_by_vector_maybe_reset():
    class CountingResets(GymEnv):
        resets = 0

        def reset(self, tensordict=None, **kwargs):
            type(self).resets += 1
            return super().reset(tensordict, **kwargs)

    env = CountingResets("CartPole-v1", num_envs=2)
    try:
        env.set_seed(0)
        td = env.reset()
        ended = 0
        for _ in range(60):
            td.set("action", env.action_spec.rand())
            td, root = env.step_and_maybe_reset(td)
            ended += int(td["next", "done"].any())
            td = root
        assert ended > 0 and CountingResets.resets == 1 + ended
    finally:
        env.close()


@pytest.mark.parametrize("num_envs", [None, 3])
def test_direct_step_reports_a_missing_action_and_rejects_a_float_one_like_step(num_envs):
    from rlkernel.errors import ActionError

    env = GymEnv("CartPole-v1", num_envs=num_envs)
    try:
        env.reset()
        keys = ("observation", "reward", "terminated", "truncated", "done")
        outputs = {key: value.clone() for key, value in env.fake_tensordict()["next"].items() if key in keys}
        inputs = {"action": env.full_action_spec.zero()["action"]}
        step = env._step_into_fn(inputs, outputs)
        inputs["action"] = None
        with pytest.raises(ActionError, match="the action key 'action' is missing"):
            step()
        inputs["action"] = env.full_action_spec.zero()["action"].float() + 0.7
        with pytest.raises(Exception) as direct:
            step()
        with pytest.raises(Exception) as generic:
            env._step(TensorDict({"action": inputs["action"]}, env.batch_size))
        assert type(direct.value) is type(generic.value)  # gymnasium refuses a float action either way
    finally:
        env.close()
