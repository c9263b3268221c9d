"""``EnvBase.rollout`` runs the collectors' engine (``rlkernel.collectors.stepper``): what a
rollout promises beyond the collectors' batches."""

from __future__ import annotations

import torch

from rlkernel.testing import CountingEnv


class CountingCalls:
    """A policy that records what it saw and writes 0.5 (and an entry of its own)."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    def __call__(self, td):
        self.seen.append(float(td["observation"].flatten()[0]))
        td.set("hidden", torch.full((*td.batch_size, 2), float(len(self.seen))))
        return td.set("action", torch.full((*td.batch_size, 1), 0.5))


def test_the_policy_is_called_once_per_step_on_the_step_it_acts_in():
    policy = CountingCalls()
    roll = CountingEnv(max_count=100).rollout(4, policy)
    assert policy.seen == [0.0, 0.5, 1.0, 1.5]  # no dry run ahead of the first step
    assert roll["hidden"][:, 0].tolist() == [1.0, 2.0, 3.0, 4.0]  # its own entries are recorded
    assert "hidden" not in roll["next"].keys()
    assert "collector" not in roll.keys()  # no trajectory ids in a rollout


class OwnStep(CountingEnv):
    """Overrides the public ``step``: the engine must call it, not ``_step``."""

    calls = 0

    def step(self, tensordict):
        type(self).calls += 1
        return super().step(tensordict)


def test_a_class_with_its_own_step_is_stepped_through_it():
    assert not OwnStep.standard_step and CountingEnv.standard_step
    OwnStep.calls = 0
    roll = OwnStep(max_count=100).rollout(5, CountingCalls())
    assert OwnStep.calls == 5 and roll["next", "observation"].flatten().tolist() == [0.5, 1.0, 1.5, 2.0, 2.5]


def test_a_batched_rollout_that_stops_early_owns_contiguous_memory():
    env = CountingEnv(max_count=1.0, batch_size=(3,))
    roll = env.rollout(10, lambda td: td.set("action", torch.full((3, 1), 0.5)))
    assert roll.batch_size == (3, 2) and roll["next", "done"][:, -1].all()
    for key in roll.keys(include_nested=True, leaves_only=True):
        assert roll.get(key).is_contiguous(), key


def test_random_rollouts_draw_from_the_env_generator():
    env = CountingEnv(max_count=1000)
    env.set_seed(3)
    first = env.rollout(6)["action"]
    env.set_seed(3)
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(env.rollout(6)["action"], first) and ((first >= 0) & (first <= 1)).all()


def test_a_policy_with_a_graph_is_recorded_without_one():
    """A policy whose output requires grad (an nn.Module called outside no_grad) is recorded as data."""
    net = torch.nn.Linear(1, 1)

    def policy(td):
        return td.set("action", torch.sigmoid(net(td["observation"])))

    td = CountingEnv(max_count=100.0, num_envs=2).rollout(5, policy=policy)
    assert td["action"].shape == (2, 5, 1) and not td["action"].requires_grad
    assert td["next", "done"].dtype == torch.bool
