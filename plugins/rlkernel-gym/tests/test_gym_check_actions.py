"""``check_actions`` on gymnasium envs: every step of every path refuses an action outside
the spec (the collector's direct step, the fast rollout, the batched envs)."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from tensordict.nn import TensorDictModule
from torch import nn

from rlkernel.collectors import SyncDataCollector
from rlkernel.envs.batched import SerialEnv
from rlkernel.errors import ActionError
from rlkernel_gym import GymEnv


class LateBadAction(nn.Module):
    """``good`` for the first ``good_calls`` calls, then ``bad`` (same shape as ``good``)."""

    def __init__(self, good_calls: int, good: torch.Tensor, bad: torch.Tensor) -> None:
        super().__init__()
        self.good_calls, self.good, self.bad, self.calls = good_calls, good, bad, 0

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        value = self.good if self.calls <= self.good_calls else self.bad
        return value.expand((*observation.shape[:-1], *value.shape)).clone()


def _policy(good_calls: int, good: torch.Tensor, bad: torch.Tensor) -> TensorDictModule:
    return TensorDictModule(LateBadAction(good_calls, good, bad), ["observation"], ["action"])


PENDULUM = (torch.tensor([0.5]), torch.tensor([7.0]), r"action 'action' does not fit Bounded\(.*value 7\.0 is above")
CARTPOLE = (torch.tensor(1), torch.tensor(2), r"action 'action' does not fit Categorical\(.*n=2\).*value 2 is outside")


@pytest.mark.parametrize(("env_id", "case"), [("Pendulum-v1", PENDULUM), ("CartPole-v1", CARTPOLE)])
@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("good_steps", [0, 2, 5])
def test_collector_on_gym_refuses_a_bad_action_at_any_step(env_id, case, num_envs, good_steps):
    good, bad, message = case
    env = GymEnv(env_id, num_envs=num_envs, max_episode_steps=1000)
    steps = 4
    collector = SyncDataCollector(
        env, _policy(good_steps + 1, good, bad), frames_per_batch=steps * env.numel, total_frames=3 * steps * env.numel
    )  # + 1: the collector's dry run of the policy
    assert collector._stepper._into is None  # bound at the first step of the first batch
    batches = []
    with pytest.raises(ActionError, match=message):
        for batch in collector:
            batches.append(batch)
    assert len(batches) == good_steps // steps
    if good_steps >= 1:
        assert collector._stepper._into is not None  # the direct step ran, and it checked too
    for batch in batches:
        assert bool((batch["action"] == good).all())
    collector.shutdown()
    env.close()


@pytest.mark.parametrize("num_envs", [None, 2])
def test_rollout_with_a_policy_refuses_a_bad_action_at_a_later_step(num_envs):
    good, bad, message = PENDULUM
    env = GymEnv("Pendulum-v1", num_envs=num_envs)
    with pytest.raises(ActionError, match=message):
        env.rollout(10, _policy(4, good, bad))
    env.close()


def test_serial_env_of_gym_envs_refuses_a_bad_action_at_a_later_step():
    good, bad, message = PENDULUM
    env = SerialEnv(2, partial(GymEnv, "Pendulum-v1"))
    try:
        with pytest.raises(ActionError, match=message):
            env.rollout(10, _policy(3, good, bad), break_when_any_done=False)
    finally:
        env.close()
