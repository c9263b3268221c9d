"""PPO (clipped, KL-penalised, plain), A2C and REINFORCE against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from test_algos_objectives_nets import (
    as_keywords,
    continuous_actor,
    discrete_actor,
    grads,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    state_critic,
    transitions,
    zero_grads,
)
from torch import nn

from rlkernel.errors import SpecError
from rlkernel_algos.modules import OneHotCategorical, ProbabilisticActor, ValueOperator
from rlkernel_algos.objectives import A2CLoss, ClipPPOLoss, KLPENPPOLoss, LossKeyError, PPOLoss, ReinforceLoss
from rlkernel_algos.value import GAE


class FixedLogits(nn.Module):
    """Logits that ignore the observation: log-probabilities known by hand."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(*obs.shape[:-1], self.logits.numel())


class FixedValue(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor([value]))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value.expand(*obs.shape[:-1], 1)


LOGITS = [0.3, -0.2]
ACTIONS = [0, 1, 0]
RATIOS = [1.5, 0.7, 1.1]
ADVANTAGES = [1.0, -2.0, 0.5]


def fixed_actor() -> ProbabilisticActor:
    net = TensorDictModule(FixedLogits(LOGITS), ["observation"], ["logits"])
    return ProbabilisticActor(net, in_keys=["logits"], distribution_class=OneHotCategorical, return_log_prob=True)


def fixed_critic(value: float = 0.5) -> ValueOperator:
    return ValueOperator(FixedValue(value), in_keys=["observation"])


def three_samples() -> TensorDict:
    """Stored log-probs chosen so that the ratios are RATIOS."""
    log_p = torch.log_softmax(torch.tensor(LOGITS), -1)[ACTIONS]
    return TensorDict(
        {
            "observation": torch.zeros(3, 2),
            "action": torch.nn.functional.one_hot(torch.tensor(ACTIONS), 2).bool(),
            "action_log_prob": log_p - torch.log(torch.tensor(RATIOS)),
            "advantage": torch.tensor(ADVANTAGES).unsqueeze(-1),
            "value_target": torch.tensor([[1.0], [0.0], [2.0]]),
            "state_value": torch.tensor([[0.0], [0.6], [1.0]]),
        },
        batch_size=[3],
    )


def entropy_by_hand() -> float:
    p = torch.softmax(torch.tensor(LOGITS), -1)
    return float(-(p * p.log()).sum())


def test_clip_ppo_objective_clip_fraction_entropy_and_critic_by_hand():
    loss = ClipPPOLoss(fixed_actor(), fixed_critic(0.5), clip_epsilon=0.2, entropy_coef=0.1, critic_coef=2.0,
                       loss_critic_type="l2", log_explained_variance=True)
    out = loss(three_samples())
    assert out["explained_variance"].item() == pytest.approx(0.0, abs=1e-6)  # a constant critic explains nothing
    # min(r A, clip(r) A): 1.5*1 -> 1.2 ; 0.7*-2 = -1.4 vs 0.8*-2 = -1.6 -> -1.6 ; 1.1*0.5 = 0.55
    assert out["loss_objective"].item() == pytest.approx(-(1.2 - 1.6 + 0.55) / 3, abs=1e-6)
    assert out["clip_fraction"].item() == pytest.approx(2 / 3)
    assert out["entropy"].item() == pytest.approx(entropy_by_hand(), abs=1e-6)
    assert out["loss_entropy"].item() == pytest.approx(-0.1 * entropy_by_hand(), abs=1e-6)
    assert out["loss_critic"].item() == pytest.approx(2.0 * ((0.5 - 1) ** 2 + 0.5**2 + 1.5**2) / 3, abs=1e-6)
    assert out["kl_approx"].item() == pytest.approx(-sum(math.log(r) for r in RATIOS) / 3, abs=1e-6)
    assert out["ESS"].item() == pytest.approx(sum(RATIOS) ** 2 / sum(r * r for r in RATIOS) / 3, abs=1e-6)
    for value in out.values():
        assert value.shape == () and torch.isfinite(value)


def test_clip_ppo_gradient_comes_from_the_unclipped_sample_only():
    actor = fixed_actor()
    loss = ClipPPOLoss(actor, fixed_critic(), clip_epsilon=0.2)
    loss(three_samples())["loss_objective"].backward()
    p = torch.softmax(torch.tensor(LOGITS), -1)
    # only sample 3 (action 0, ratio 1.1, advantage 0.5) is unclipped: d/dlogits = -(r A / 3) (onehot - p)
    want = -(1.1 * 0.5 / 3) * (torch.tensor([1.0, 0.0]) - p)
    torch.testing.assert_close(actor.module[0].module.logits.grad, want)


def test_actor_and_critic_terms_move_only_their_network():
    actor, critic = discrete_actor(), state_critic()
    td = transitions(8, discrete=3)
    with torch.no_grad():
        actor(td)
    td["advantage"] = torch.randn(8, 1)
    td["value_target"] = torch.randn(8, 1)
    for cls in (ClipPPOLoss, PPOLoss, KLPENPPOLoss, A2CLoss):
        loss = cls(actor, critic)
        out = loss(td)
        zero_grads(actor, critic)
        (out["loss_objective"] + out["loss_entropy"]).backward()
        assert all(grads(actor)) and not any(grads(critic)), cls.__name__
        zero_grads(actor, critic)
        out = loss(td)
        out["loss_critic"].backward()
        assert all(grads(critic)) and not any(grads(actor)), cls.__name__


def test_value_clipping_takes_the_pessimistic_loss():
    loss = ClipPPOLoss(fixed_actor(), fixed_critic(0.5), clip_value=0.2, loss_critic_type="l2")
    out = loss(three_samples())
    # old values 0, 0.6, 1 -> clipped predictions 0.2, 0.5, 0.8; targets 1, 0, 2
    unclipped = [(0.5 - 1) ** 2, 0.5**2, (0.5 - 2) ** 2]
    clipped = [(0.2 - 1) ** 2, 0.5**2, (0.8 - 2) ** 2]
    want = sum(max(a, b) for a, b in zip(unclipped, clipped)) / 3
    assert out["loss_critic"].item() == pytest.approx(want, abs=1e-6)
    assert out["value_clip_fraction"].item() == pytest.approx(2 / 3)


def test_plain_ppo_and_a2c_and_normalised_advantage():
    td = three_samples()
    out = PPOLoss(fixed_actor(), fixed_critic()).forward(td)
    assert out["loss_objective"].item() == pytest.approx(-sum(r * a for r, a in zip(RATIOS, ADVANTAGES)) / 3)
    log_p = torch.log_softmax(torch.tensor(LOGITS), -1)[ACTIONS]
    a2c = A2CLoss(fixed_actor(), fixed_critic())(td)
    assert a2c["loss_objective"].item() == pytest.approx(-float((log_p * torch.tensor(ADVANTAGES)).mean()), abs=1e-6)
    norm = torch.tensor(ADVANTAGES)
    norm = (norm - norm.mean()) / norm.std()
    a2c = A2CLoss(fixed_actor(), fixed_critic(), normalize_advantage=True)(td)
    assert a2c["loss_objective"].item() == pytest.approx(-float((log_p * norm).mean()), abs=1e-6)


def test_kl_penalty_uses_the_exact_kl_and_adapts_beta():
    td = three_samples()
    td["logits"] = torch.tensor([[2.0, -2.0]]).expand(3, 2)  # the collecting policy's parameters
    loss = KLPENPPOLoss(fixed_actor(), fixed_critic(), beta=1.0, dtarg=0.01)
    out = loss(td)
    old = torch.distributions.Categorical(logits=td["logits"][0])
    new = torch.distributions.Categorical(logits=torch.tensor(LOGITS))
    kl = float(torch.distributions.kl_divergence(old, new))
    assert out["kl"].item() == pytest.approx(kl, abs=1e-6)
    want = -sum(r * a - kl for r, a in zip(RATIOS, ADVANTAGES)) / 3
    assert out["loss_objective"].item() == pytest.approx(want, abs=1e-5)
    assert out["beta"].item() == 1.0 and loss.beta.item() == 2.0  # kl > 1.5 * dtarg: beta doubles
    td["logits"] = torch.tensor(LOGITS).expand(3, 2)  # no change of policy: kl = 0, beta halves
    loss(td)
    assert loss.beta.item() == 1.0
    # without the old parameters, the stored actions estimate the KL
    del td["logits"]
    out = loss(td)
    assert out["kl"].item() == pytest.approx(-sum(math.log(r) for r in RATIOS) / 3, abs=1e-6)


def test_reinforce_with_returns_and_with_a_baseline():
    td = three_samples()
    log_p = torch.log_softmax(torch.tensor(LOGITS), -1)[ACTIONS]
    out = ReinforceLoss(fixed_actor())(td.exclude("value_target"))
    assert set(out.keys()) == {"loss_actor"}
    assert out["loss_actor"].item() == pytest.approx(-float((log_p * torch.tensor(ADVANTAGES)).mean()), abs=1e-6)
    out = ReinforceLoss(fixed_actor(), fixed_critic(0.5), loss_critic_type="l1")(td)
    assert out["loss_value"].item() == pytest.approx((0.5 + 0.5 + 1.5) / 3, abs=1e-6)
    with pytest.raises(LossKeyError, match="no critic"):
        ReinforceLoss(fixed_actor())(td.exclude("advantage"))


def test_missing_advantage_runs_the_estimator_on_a_copy():
    actor, critic = discrete_actor(), state_critic()
    td = transitions(8, discrete=3)
    with torch.no_grad():
        actor(td)
    loss = ClipPPOLoss(actor, critic)
    loss.make_value_estimator("gae", gamma=0.9, lmbda=0.8)
    out = loss(td.clone())
    assert "advantage" not in td.keys()
    reference = td.clone()
    GAE(gamma=0.9, lmbda=0.8, value_network=critic)(reference)
    torch.testing.assert_close(loss(reference)["loss_objective"], out["loss_objective"])
    # the default estimator is GAE(0.99, 0.95) on the loss's critic
    loss = ClipPPOLoss(actor, critic)
    assert isinstance(loss.value_estimator, GAE)
    with pytest.raises(SpecError, match="unknown value type"):
        loss.make_value_estimator("gea")


def test_renamed_keys_and_the_keyword_call_give_the_same_terms():
    td = three_samples()
    base = ClipPPOLoss(fixed_actor(), fixed_critic(), clip_value=0.3)(td)
    renamed = TensorDict({"obs": td["observation"], "act": td["action"], "old_lp": td["action_log_prob"],
                          "adv": td["advantage"], "ret": td["value_target"], "v_old": td["state_value"]}, [3])
    actor = ProbabilisticActor(TensorDictModule(FixedLogits(LOGITS), ["obs"], ["logits"]), in_keys=["logits"],
                               out_keys=["act"], distribution_class=OneHotCategorical, return_log_prob=True)
    critic = ValueOperator(FixedValue(0.5), in_keys=["obs"], out_keys=["v"])
    loss = ClipPPOLoss(actor, critic, clip_value=0.3)
    assert loss.tensor_keys.action == "act" and loss.tensor_keys.sample_log_prob == "act_log_prob"
    loss.set_keys(sample_log_prob="old_lp", advantage="adv", value_target="ret", value="v")
    with pytest.raises(LossKeyError, match=r"'v_old'|'v'"):
        loss(renamed)  # clip_value reads the stored value at the value key, "v"
    renamed["v"] = renamed["v_old"]
    out = loss(renamed)
    for key in base.keys():
        torch.testing.assert_close(out[key], base[key])
    words = ClipPPOLoss(fixed_actor(), fixed_critic(), clip_value=0.3)(**as_keywords(td))
    for key in base.keys():
        torch.testing.assert_close(words[key], base[key])


def test_continuous_actor_without_closed_form_entropy_and_bad_arguments():
    actor = continuous_actor()
    td = transitions(16)
    with torch.no_grad():
        actor(td)
    td["advantage"] = torch.randn(16, 1)
    td["value_target"] = torch.randn(16, 1)
    out = ClipPPOLoss(actor, state_critic(), samples_mc_entropy=4)(td)
    assert torch.isfinite(out["entropy"]) and torch.isfinite(out["loss_objective"])
    with pytest.raises(SpecError, match="clip_epsilon"):
        ClipPPOLoss(actor, state_critic(), clip_epsilon=1.5)
    with pytest.raises(SpecError, match=r"loss_critic_type|loss_function"):
        ClipPPOLoss(actor, state_critic(), loss_critic_type="l3")
    with pytest.raises(SpecError, match="end in a distribution"):
        ClipPPOLoss(state_critic(), state_critic())


def test_estimator_follows_renamed_keys_moves_and_stays_out_of_the_state_dict():
    actor, critic = discrete_actor(), state_critic()
    loss = ClipPPOLoss(actor, critic)
    loss.make_value_estimator("td0", gamma=0.5)
    loss.set_keys(advantage="adv", value_target="ret")
    td = transitions(6, discrete=3)
    loss.value_estimator(td)
    assert "adv" in td.keys() and "ret" in td.keys() and "advantage" not in td.keys()
    with torch.no_grad():
        value, next_value = critic.module(td["observation"]), critic.module(td["next", "observation"])
        want = td["next", "reward"] + 0.5 * (~td["next", "terminated"]).float() * next_value - value
    torch.testing.assert_close(td["adv"], want)
    # the estimator's networks are the loss's: saving and loading does not depend on it existing
    state = loss.state_dict()
    assert not any("estimator" in key for key in state)
    fresh = ClipPPOLoss(discrete_actor(), state_critic())
    fresh.load_state_dict(state)
    loss.double()
    assert loss.value_estimator.gamma.dtype == torch.float64
