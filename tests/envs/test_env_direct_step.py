"""The direct step as part of the ``EnvBase`` contract, declared by the class.

A class with ``direct_step = True`` implements ``_step_into_fn`` and no ``_step``: its
TensorDict step is derived by ``EnvBase``, and the batched envs' workers and the collectors
bind the direct step to their own buffers. A subclass that defines ``_step`` is stepped
through it everywhere unless it declares ``direct_step`` again.
"""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from rlkernel.collectors import SyncDataCollector
from rlkernel.envs import EnvBase
from rlkernel.envs.batched import SerialEnv
from rlkernel.errors import ActionError, EnvError
from rlkernel.specs import Bounded, Composite, Unbounded


class DirectCounter(EnvBase):
    """Adds the action to a counter, written straight into the caller's output tensors."""

    direct_step = True

    def __init__(self, max_count: float = 3.0) -> None:
        super().__init__()
        self.observation_spec = Composite(observation=Unbounded((1,)))
        self.action_spec = Bounded(0.0, 1.0, shape=(1,))
        self.count = torch.zeros(1)
        self.max_count = max_count
        self.binds = 0

    def _reset(self, tensordict):
        self.count.zero_()
        return TensorDict({"observation": self.count.clone()}, [])

    def _set_seed(self, seed):
        pass

    def _step_into_fn(self, inputs, outputs):
        if set(outputs) != {"observation", "reward", "done", "terminated", "truncated"}:
            return None
        self.binds += 1
        obs, reward = outputs["observation"], outputs["reward"]
        done, terminated, truncated = outputs["done"], outputs["terminated"], outputs["truncated"]

        def step() -> None:
            action = inputs["action"]
            if action is None:
                raise ActionError("DirectCounter.step: the action key 'action' is missing")
            self.count += action
            obs.copy_(self.count)
            reward.copy_(action)
            terminated.copy_(self.count >= self.max_count)
            truncated.zero_()
            done.copy_(terminated)

        return step


class DoubledReward(DirectCounter):
    """Defines its own ``_step``: it must be stepped through it everywhere."""

    def _step(self, tensordict):
        out = super()._step(tensordict)
        out.set("reward", out.get("reward") * 2)
        return out


class DeclaresAgain(DoubledReward):
    direct_step = True


class StepMixin:
    def _step(self, tensordict):
        raise AssertionError("not reached")


class MixedIn(StepMixin, DirectCounter):
    pass


class Declines(DirectCounter):
    def _step_into_fn(self, inputs, outputs):
        return None


def _policy(td):
    return td.set("action", torch.full((*td.batch_size, 1), 0.5))


def test_the_declaration_is_by_the_class():
    assert DirectCounter.direct_step and DeclaresAgain.direct_step and Declines.direct_step
    assert not DoubledReward.direct_step and not MixedIn.direct_step and not EnvBase.direct_step


def test_step_is_derived_from_the_direct_step_and_returns_fresh_tensors():
    env = DirectCounter()
    td = env.rollout(10, _policy)
    assert td["next", "observation"].flatten().tolist() == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert td["next", "reward"].flatten().tolist() == [0.5] * 6 and td["next", "done"][-1].item()
    assert td["next", "done"].dtype == torch.bool and td["next", "terminated"].shape == (6, 1)
    # bound twice: to the staging tensors of the derived _step (the engine's first step,
    # which makes its buffers) and to the engine's own tensors (every later step)
    assert env.binds == 2
    first = env.step(_policy(env.reset()))["next"]
    second = env.step(_policy(first.exclude("reward")))["next"]
    assert first["observation"].item() == 0.5 and second["observation"].item() == 1.0
    assert env.binds == 2  # the staging binding is kept


def test_a_subclass_with_its_own_step_is_stepped_through_it_everywhere():
    assert (DoubledReward().rollout(3, _policy)["next", "reward"] == 1.0).all()
    env = SerialEnv(2, DoubledReward)
    try:
        assert all(runner._direct is None for runner in env._runners)
        assert (env.rollout(3, _policy)["next", "reward"] == 1.0).all()
    finally:
        env.close()
    collector = SyncDataCollector(DoubledReward(), _policy, frames_per_batch=4, total_frames=4)
    batch = next(iter(collector))
    assert collector._stepper._into is None and (batch["next", "reward"] == 1.0).all()
    collector.shutdown()


@pytest.mark.parametrize("cls", [DirectCounter, DeclaresAgain])
def test_workers_and_collectors_bind_a_declared_direct_step(cls):
    env = SerialEnv(2, cls)
    try:
        assert all(runner._direct is not None for runner in env._runners)
        rollout = env.rollout(4, _policy, break_when_any_done=False)
        assert rollout["next", "observation"][0].flatten().tolist() == [0.5, 1.0, 1.5, 2.0]
    finally:
        env.close()
    collector = SyncDataCollector(cls(), _policy, frames_per_batch=8, total_frames=8)
    batch = next(iter(collector))
    assert collector._stepper._into is not None
    assert batch["next", "observation"].flatten().tolist() == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 0.5, 1.0]
    collector.shutdown()


def test_a_direct_step_that_declines_is_an_error_naming_the_class():
    env = Declines()
    with pytest.raises(EnvError, match="Declines implements neither _step nor a direct step"):
        env.step(_policy(env.reset()))
