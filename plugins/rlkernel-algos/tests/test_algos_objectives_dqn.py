"""DQN (double, dueling, categorical/one-hot actions, priorities) and C51."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from test_algos_objectives_nets import (
    as_keywords,
    grads,
    one_torch_thread,  # noqa: F401  (autouse fixture)
)
from torch import nn

from rlkernel.errors import SpecError
from rlkernel.specs import Categorical, OneHot
from rlkernel_algos.modules import DuelingMlpDQNet, QValueActor
from rlkernel_algos.objectives import DistributionalDQNLoss, DQNLoss, HardUpdate, project_distribution


class TableQ(nn.Module):
    """Q(s, .) = table[s] for one-hot states: every value is known by hand."""

    def __init__(self, table: list[list[float]]) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs @ self.table


def table_net(table) -> TensorDictModule:
    return TensorDictModule(TableQ(table), ["observation"], ["action_value"])


def states(*index: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(index), 3).float()


def batch(action_index: bool = False) -> TensorDict:
    """Three transitions from states 0, 1, 2 to 1, 2, 0: terminated, truncated, neither."""
    action = torch.tensor([0, 1, 1])
    return TensorDict(
        {
            "observation": states(0, 1, 2),
            "action": action if action_index else torch.nn.functional.one_hot(action, 2),
            "next": {
                "observation": states(1, 2, 0),
                "reward": torch.tensor([[1.0], [2.0], [3.0]]),
                "terminated": torch.tensor([[True], [False], [False]]),
                "truncated": torch.tensor([[False], [True], [False]]),
                "done": torch.tensor([[True], [True], [False]]),
            },
        },
        batch_size=[3],
    )


TABLE = [[1.0, 2.0], [3.0, 0.5], [0.0, 4.0]]


def test_dqn_target_bootstraps_on_truncation_but_not_on_termination():
    loss = DQNLoss(table_net(TABLE), gamma=0.5, action_space="one_hot")
    td = batch()
    out = loss(td)
    pred = [1.0, 0.5, 4.0]  # Q(0, a0), Q(1, a1), Q(2, a1)
    target = [1.0, 2.0 + 0.5 * 4.0, 3.0 + 0.5 * 2.0]  # terminated: r ; truncated and alive: r + g max Q(s')
    assert out["loss"].item() == pytest.approx(sum((p - t) ** 2 for p, t in zip(pred, target)) / 3)
    assert out["target_value"].item() == pytest.approx(sum(target) / 3)
    torch.testing.assert_close(td["td_error"], torch.tensor([abs(p - t) for p, t in zip(pred, target)]))


def test_double_dqn_chooses_with_the_online_net_and_evaluates_with_the_target():
    for double, want_next in ((False, [4.0, 2.0]), (True, [0.0, 1.0])):
        loss = DQNLoss(table_net(TABLE), gamma=0.5, action_space="one_hot", double_dqn=double)
        with torch.no_grad():  # online net now prefers action 0 in state 2 and action 0 in state 0
            loss.value_network.module.table.copy_(torch.tensor([[9.0, 0.0], [3.0, 0.5], [5.0, 0.0]]))
        out = loss(batch())
        pred = [9.0, 0.5, 0.0]
        # target net (the original TABLE): state 2 -> [0, 4], state 0 -> [1, 2]
        target = [1.0, 2.0 + 0.5 * want_next[0], 3.0 + 0.5 * want_next[1]]
        assert out["loss"].item() == pytest.approx(sum((p - t) ** 2 for p, t in zip(pred, target)) / 3), double


def test_categorical_actions_priority_weights_and_keyword_call():
    one_hot = DQNLoss(table_net(TABLE), gamma=0.5, action_space=OneHot(2))(batch())
    index = DQNLoss(table_net(TABLE), gamma=0.5, action_space=Categorical(2))(batch(action_index=True))
    inferred = DQNLoss(table_net(TABLE), gamma=0.5)(batch(action_index=True))
    assert one_hot["loss"].item() == pytest.approx(index["loss"].item())
    assert inferred["loss"].item() == pytest.approx(index["loss"].item())
    td = batch()
    td["priority_weight"] = torch.tensor([0.0, 1.0, 2.0])
    weighted = DQNLoss(table_net(TABLE), gamma=0.5, action_space="one_hot")(td)
    assert weighted["loss"].item() == pytest.approx((0.0 * 0.0**2 + 1.0 * 3.5**2 + 2.0 * 0.0**2) / 3)
    words = DQNLoss(table_net(TABLE), gamma=0.5, action_space="one_hot")(**as_keywords(batch()))
    assert words["loss"].item() == pytest.approx(one_hot["loss"].item())
    with pytest.raises(SpecError, match="action_space"):
        DQNLoss(table_net(TABLE), action_space="multi")


def test_dueling_qvalue_actor_trains_all_heads_and_never_the_target():
    lazy = QValueActor(DuelingMlpDQNet(2), in_keys=["observation"], spec=OneHot(2))
    with pytest.raises(SpecError, match="lazy"):
        DQNLoss(lazy)
    net = DuelingMlpDQNet(2, mlp_kwargs_feature={"num_cells": [8], "out_features": 8},
                          mlp_kwargs_output={"num_cells": [8]})
    actor = QValueActor(net, in_keys=["observation"], spec=OneHot(2))
    actor(batch())  # initialises the lazy layers
    loss = DQNLoss(actor, double_dqn=True, loss_function="smooth_l1", action_space="one_hot")
    out = loss(batch())
    assert set(out.keys()) == {"loss", "td_error", "pred_value", "target_value"}
    out["loss"].backward()
    for part in (net.features, net.advantage, net.value):
        assert all(grads(part))
    assert all(t.grad is None and not t.requires_grad for t in loss.target_parameters())
    assert not any(p is t for p in loss.parameters() for t in loss.target_parameters())


def test_dqn_fits_a_two_state_bandit_quickly():
    torch.manual_seed(0)
    rewards = torch.tensor([[1.0, -1.0], [-0.5, 2.0]])  # best: action 0 in state 0, action 1 in state 1
    net = TensorDictModule(nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2)), ["observation"],
                           ["action_value"])
    loss = DQNLoss(net, gamma=0.0, action_space="categorical")
    updater = HardUpdate(loss, value_network_update_interval=10)
    optim = torch.optim.Adam(loss.parameters(), lr=0.05)
    for _ in range(150):
        s = torch.randint(2, (32,))
        a = torch.randint(2, (32,))
        obs = torch.nn.functional.one_hot(s, 2).float()
        out = loss(observation=obs, action=a, next_observation=obs, reward=rewards[s, a].unsqueeze(-1),
                   terminated=torch.ones(32, 1, dtype=torch.bool))
        optim.zero_grad()
        out["loss"].backward()
        optim.step()
        updater.step()
    q = net.module(torch.eye(2))
    assert q.argmax(-1).tolist() == [0, 1]
    torch.testing.assert_close(q, rewards, atol=0.15, rtol=0.0)


# --------------------------------------------------------------------------------------- C51
def reference_projection(probs, reward, not_done, gamma, support):
    """The projection of Bellemare et al. (2017), one atom at a time."""
    n = support.numel()
    v_min, v_max = support[0].item(), support[-1].item()
    dz = (v_max - v_min) / (n - 1)
    out = torch.zeros_like(probs)
    for i in range(probs.shape[0]):
        for j in range(n):
            tz = min(max(reward[i].item() + gamma * not_done[i].item() * support[j].item(), v_min), v_max)
            b = (tz - v_min) / dz
            low, up = int(torch.floor(torch.tensor(b))), int(torch.ceil(torch.tensor(b)))
            if low == up:
                out[i, low] += probs[i, j]
            else:
                out[i, low] += probs[i, j] * (up - b)
                out[i, up] += probs[i, j] * (b - low)
    return out


def test_c51_projection_matches_the_reference_loop():
    g = torch.Generator().manual_seed(0)
    support = torch.linspace(-2.0, 2.0, 5)
    probs = torch.softmax(torch.randn(6, 5, generator=g), -1)
    reward = torch.tensor([[0.0], [0.5], [-3.0], [3.0], [0.25], [1.0]])  # exact atoms, clipping both ends
    not_done = torch.tensor([[1.0], [1.0], [1.0], [0.0], [1.0], [0.0]])
    got = project_distribution(probs, reward, not_done, 0.5, support)
    torch.testing.assert_close(got, reference_projection(probs, reward, not_done, 0.5, support))
    torch.testing.assert_close(got.sum(-1), torch.ones(6))


class AtomNet(nn.Module):
    """Log-probabilities [*B, atoms, actions] from a linear layer."""

    def __init__(self, atoms: int = 5, actions: int = 2) -> None:
        super().__init__()
        self.atoms, self.actions = atoms, actions
        self.linear = nn.Linear(3, atoms * actions)
        self.register_buffer("support", torch.linspace(-2.0, 2.0, atoms))

    def forward(self, obs):
        return torch.log_softmax(self.linear(obs).reshape(*obs.shape[:-1], self.atoms, self.actions), -2)


def test_c51_loss_is_the_cross_entropy_to_the_projected_target():
    net = TensorDictModule(AtomNet(), ["observation"], ["action_value"])
    loss = DistributionalDQNLoss(net, gamma=0.9, action_space="one_hot")
    td = batch()
    out = loss(td)
    with torch.no_grad():
        next_lp = net.module(td["next", "observation"])
        best = (next_lp.exp() * net.module.support.unsqueeze(-1)).sum(-2).argmax(-1)
        next_p = next_lp.exp()[torch.arange(3), :, best]
        not_done = (~td["next", "terminated"]).float()
        target = reference_projection(next_p, td["next", "reward"], not_done, 0.9, net.module.support)
    log_p = net.module(td["observation"])[torch.arange(3), :, td["action"].argmax(-1)]
    assert out["loss"].item() == pytest.approx(float(-(target * log_p.detach()).sum(-1).mean()), abs=1e-5)
    out["loss"].backward()
    assert all(grads(loss.value_network))
    index = DistributionalDQNLoss(net, gamma=0.9, action_space="categorical")(batch(action_index=True))
    assert index["loss"].item() == pytest.approx(out["loss"].item(), abs=1e-6)


def test_c51_rejects_bad_supports_and_shapes():
    net = TensorDictModule(AtomNet(), ["observation"], ["action_value"])
    with pytest.raises(SpecError, match="evenly spaced"):
        DistributionalDQNLoss(net, support=torch.tensor([0.0, 1.0, 3.0]))
    with pytest.raises(SpecError, match="support"):
        DistributionalDQNLoss(table_net(TABLE))
    loss = DistributionalDQNLoss(net, support=torch.linspace(-1, 1, 7))
    with pytest.raises(SpecError, match="7 atoms"):
        loss(batch())
    with pytest.raises(SpecError, match="only 'td0'"):
        loss.make_value_estimator("td_lambda")
