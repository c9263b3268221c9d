"""DDPG, TD3, SAC (v1 and v2) and discrete SAC: values against references, gradient routing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tensordict.nn import NormalParamExtractor, TensorDictModule
from test_algos_objectives_nets import (
    action_values,
    as_keywords,
    continuous_actor,
    deterministic_actor,
    discrete_actor,
    grads,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    q_critic,
    state_critic,
    transitions,
    zero_grads,
)
from torch import nn

from rlkernel.errors import SpecError
from rlkernel.specs import Bounded
from rlkernel_algos.modules import MLP, Actor, ProbabilisticActor, TanhNormal, ValueOperator
from rlkernel_algos.objectives import DDPGLoss, DiscreteSACLoss, SACLoss, TD3Loss

GAMMA = 0.9


def not_terminal(td):
    return (~td["next", "terminated"]).float()


def q_of(critic, obs, action):
    return critic.module(obs, action)


# -------------------------------------------------------------------------------------- DDPG
def test_ddpg_terms_match_a_reference_and_move_the_right_network():
    actor, critic = deterministic_actor(), q_critic()
    loss = DDPGLoss(actor, critic, delay_actor=True, gamma=GAMMA, loss_function="l2")
    with torch.no_grad():  # online and target networks differ from here on
        for p in [*actor.parameters(), *critic.parameters()]:
            p.add_(0.1 * torch.randn_like(p))
    td = transitions(8)
    out = loss(td)
    obs, nobs = td["observation"], td["next", "observation"]
    target_actor, target_critic = loss.target_actor_network, loss.target_value_network
    with torch.no_grad():
        target = td["next", "reward"] + GAMMA * not_terminal(td) * q_of(target_critic, nobs, target_actor.module(nobs))
        pred = q_of(critic, obs, td["action"])
        want_actor = -q_of(critic, obs, actor.module(obs)).mean()
    assert out["loss_actor"].item() == pytest.approx(want_actor.item(), abs=1e-6)
    assert out["loss_value"].item() == pytest.approx(((pred - target) ** 2).mean().item(), abs=1e-6)
    assert out["target_value_max"].item() == pytest.approx(target.max().item(), abs=1e-6)
    torch.testing.assert_close(td["td_error"], (pred - target).abs().squeeze(-1))
    # terminated samples (even indices) are not bootstrapped; truncated ones (index 1, 5) are
    assert torch.allclose(target[::2], td["next", "reward"][::2])
    zero_grads(actor, critic)
    out["loss_actor"].backward()
    assert all(grads(actor)) and not any(grads(critic))
    zero_grads(actor, critic)
    loss(td)["loss_value"].backward()
    assert all(grads(critic)) and not any(grads(actor))
    assert all(t.grad is None for t in loss.target_parameters())


# --------------------------------------------------------------------------------------- TD3
class RecordingQ(nn.Module):
    """Q(s, a) that remembers the actions it was asked about (each copy its own)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(5, 1)
        self.seen: list[torch.Tensor] = []

    def forward(self, obs, action):
        self.seen.append(action.detach().clone())
        return self.linear(torch.cat([obs, action], -1))


class ConstantAction(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.full((2,), value))

    def forward(self, obs):
        return self.bias.expand(*obs.shape[:-1], 2)


def test_td3_target_smoothing_is_clipped_to_noise_clip_and_bounds():
    torch.manual_seed(0)
    actor = Actor(ConstantAction(0.9))
    critic = ValueOperator(RecordingQ(), in_keys=["observation", "action"])
    loss = TD3Loss(actor, critic, action_spec=Bounded(-1.0, 1.0, shape=(2,)), policy_noise=10.0, noise_clip=0.3,
                   gamma=GAMMA)
    td = transitions(64)
    out = loss(td)
    seen = [q.module.seen[-1] for q in loss.target_qvalue_network]
    next_action = seen[0]
    assert torch.equal(seen[0], seen[1])  # both target critics score the same smoothed action
    assert next_action.min() >= 0.6 - 1e-6 and next_action.max() <= 1.0
    assert (next_action == 1.0).float().mean() > 0.3 and (next_action - 0.6).abs().lt(1e-6).float().mean() > 0.3
    with torch.no_grad():
        nobs = td["next", "observation"]
        next_q = torch.min(*(q_of(q, nobs, next_action) for q in loss.target_qvalue_network))
        target = td["next", "reward"] + GAMMA * not_terminal(td) * next_q
        preds = [q_of(q, td["observation"], td["action"]) for q in loss.qvalue_network]
    assert out["target_value"].item() == pytest.approx(target.mean().item(), abs=1e-5)
    want = sum(F.smooth_l1_loss(p, target) for p in preds)
    assert out["loss_qvalue"].item() == pytest.approx(want.item(), abs=1e-5)
    # the critics are fitted at the stored actions; the actor term uses the first critic only,
    # at the online actor's action
    assert all(torch.equal(q.module.seen[-1], td["action"]) for q in loss.qvalue_network)
    first = q_of(loss.qvalue_network[0], td["observation"], torch.full((64, 2), 0.9))
    assert out["loss_actor"].item() == pytest.approx(-first.mean().item(), abs=1e-6)


def test_td3_gradients_and_unbounded_actions():
    actor, critic = deterministic_actor(), q_critic()
    loss = TD3Loss(actor, critic)  # no spec: the smoothed action is not clipped to bounds
    out = loss(transitions(8))
    zero_grads(loss)
    out["loss_actor"].backward()
    assert all(grads(actor)) and not any(grads(loss.qvalue_network))
    zero_grads(loss)
    loss(transitions(8))["loss_qvalue"].backward()
    assert all(grads(loss.qvalue_network)) and not any(grads(actor))
    with pytest.raises(SpecError, match="bounded"):
        TD3Loss(actor, critic, action_spec="bounded please")
    with pytest.raises(SpecError, match="got 1 critics but num_qvalue_nets=2"):
        TD3Loss(actor, [critic], num_qvalue_nets=2)


# --------------------------------------------------------------------------------------- SAC
def test_sac_terms_match_a_reference_computed_with_the_same_draws():
    actor, critic = continuous_actor(), q_critic()
    loss = SACLoss(actor, critic, alpha_init=0.5, gamma=GAMMA)
    with torch.no_grad():
        for q in loss.qvalue_network:
            for p in q.parameters():
                p.add_(0.1 * torch.randn_like(p))
    td = transitions(8)
    torch.manual_seed(1)
    out = loss(td)
    torch.manual_seed(1)
    with torch.no_grad():
        action, log_prob = actor.get_dist(td.clone()).rsample_and_log_prob()
        obs, nobs = td["observation"], td["next", "observation"]
        q_pi = torch.min(*(q_of(q, obs, action) for q in loss.qvalue_network)).squeeze(-1)
        want_actor = (0.5 * log_prob - q_pi).mean()
        next_action, next_log_prob = actor.get_dist(td["next"].clone()).rsample_and_log_prob()
        next_q = torch.min(*(q_of(q, nobs, next_action) for q in loss.target_qvalue_network))
        target = td["next", "reward"] + GAMMA * not_terminal(td) * (next_q - 0.5 * next_log_prob.unsqueeze(-1))
        want_q = sum(F.smooth_l1_loss(q_of(q, obs, td["action"]), target) for q in loss.qvalue_network)
        want_alpha = -(torch.log(torch.tensor(0.5)) * (log_prob - 2.0)).mean()
    assert out["loss_actor"].item() == pytest.approx(want_actor.item(), abs=1e-5)
    assert out["loss_qvalue"].item() == pytest.approx(want_q.item(), abs=1e-5)
    assert out["loss_alpha"].item() == pytest.approx(want_alpha.item(), abs=1e-5)
    assert out["alpha"].item() == pytest.approx(0.5)
    assert out["entropy"].item() == pytest.approx(-log_prob.mean().item(), abs=1e-5)
    assert loss.target_entropy.item() == -2.0  # "auto": -action_dim, from the actor's spec


def test_sac_each_term_moves_only_its_parameters():
    actor, critic = continuous_actor(), q_critic()
    loss = SACLoss(actor, critic)
    td = transitions(8)
    for term, moved in (("loss_actor", [actor]), ("loss_qvalue", [loss.qvalue_network]), ("loss_alpha", [])):
        zero_grads(loss)
        loss.log_alpha.grad = None
        loss(td)[term].backward()
        for module in (actor, loss.qvalue_network):
            assert all(grads(module)) == (module in moved) and (any(grads(module)) == (module in moved)), term
        assert (loss.log_alpha.grad is not None) == (term == "loss_alpha"), term
    assert all(t.grad is None for t in loss.target_parameters())


@pytest.mark.parametrize(("target_entropy", "alpha_goes"), [(-100.0, "down"), (100.0, "up")])
def test_sac_alpha_moves_towards_the_target_entropy(target_entropy, alpha_goes):
    loss = SACLoss(continuous_actor(), q_critic(), target_entropy=target_entropy, alpha_init=1.0)
    optim = torch.optim.SGD([loss.log_alpha], lr=0.1)
    before = loss.alpha.item()
    loss(transitions(8))["loss_alpha"].backward()
    optim.step()
    after = loss.alpha.item()
    assert (after < before) if alpha_goes == "down" else (after > before)


def test_sac_target_entropy_sources_fixed_alpha_and_bounds():
    lazy = SACLoss(continuous_actor(act=2, spec=False), q_critic())
    assert torch.isnan(lazy.target_entropy)
    lazy(transitions(4))
    assert lazy.target_entropy.item() == -2.0
    spec = SACLoss(continuous_actor(spec=False), q_critic(), action_spec=Bounded(-1.0, 1.0, shape=(2,)))
    assert spec.target_entropy.item() == -2.0
    fixed = SACLoss(continuous_actor(), q_critic(), fixed_alpha=True, alpha_init=0.2)
    assert not any(p is fixed.log_alpha for p in fixed.parameters())
    assert not fixed(transitions(4))["loss_alpha"].requires_grad
    bounded = SACLoss(continuous_actor(), q_critic(), alpha_init=1.0, max_alpha=0.5)
    assert bounded(transitions(4))["alpha"].item() == pytest.approx(0.5)
    with pytest.raises(SpecError, match="min_alpha"):
        SACLoss(continuous_actor(), q_critic(), min_alpha=2.0, max_alpha=1.0)
    with pytest.raises(SpecError, match="target_entropy"):
        SACLoss(continuous_actor(), q_critic(), target_entropy="high")


def test_sac_v1_value_network_and_keyword_call():
    actor, critic, value = continuous_actor(), q_critic(), state_critic()
    loss = SACLoss(actor, critic, value, gamma=GAMMA)
    td = transitions(8)
    torch.manual_seed(2)
    out = loss(td)
    assert {"loss_actor", "loss_qvalue", "loss_alpha", "loss_value"} <= set(out.keys())
    with torch.no_grad():
        target = td["next", "reward"] + GAMMA * not_terminal(td) * loss.target_value_network.module(
            td["next", "observation"])
        want_q = sum(F.smooth_l1_loss(q_of(q, td["observation"], td["action"]), target) for q in loss.qvalue_network)
    assert out["loss_qvalue"].item() == pytest.approx(want_q.item(), abs=1e-5)
    zero_grads(loss)
    out["loss_value"].backward()
    assert all(grads(value)) and not any(grads(actor)) and not any(grads(loss.qvalue_network))
    torch.manual_seed(2)
    words = loss(**as_keywords(td.exclude("td_error")))
    for key in out.keys():
        torch.testing.assert_close(words[key], out[key])


def test_sac_renamed_keys():
    net = TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()), ["obs"], ["loc", "scale"])
    actor = ProbabilisticActor(net, in_keys=["loc", "scale"], out_keys=["act"], distribution_class=TanhNormal)
    critic = ValueOperator(MLP(in_features=5, out_features=1), in_keys=["obs", "act"], out_keys=["q"])
    loss = SACLoss(actor, critic, action_spec=Bounded(-1.0, 1.0, shape=(2,)))
    loss.set_keys(action="act", state_action_value="q", reward="r", terminated="term", done="d")
    td = transitions(6)
    renamed = td.rename_key_("observation", "obs").rename_key_("action", "act")
    renamed["next"].rename_key_("observation", "obs").rename_key_("reward", "r").rename_key_(
        "terminated", "term").rename_key_("done", "d")
    out = loss(renamed)
    assert torch.isfinite(out["loss_qvalue"]) and renamed.get("td_error").shape == (6,)
    with pytest.raises(SpecError, match="writes"):
        loss.set_keys(state_action_value="state_action_value")
        loss(renamed)


# ------------------------------------------------------------------------------ discrete SAC
def test_discrete_sac_terms_match_exact_expectations():
    actor, critic = discrete_actor(), action_values()
    loss = DiscreteSACLoss(actor, critic, num_actions=3, alpha_init=0.3, gamma=GAMMA, action_space="one_hot")
    td = transitions(8, discrete=3)
    out = loss(td)
    with torch.no_grad():
        probs = torch.softmax(actor.module[0].module(td["observation"]), -1)
        log_probs = probs.log()
        q = torch.min(*(c.module(td["observation"]) for c in loss.qvalue_network))
        want_actor = (probs * (0.3 * log_probs - q)).sum(-1).mean()
        next_probs = torch.softmax(actor.module[0].module(td["next", "observation"]), -1)
        next_q = torch.min(*(c.module(td["next", "observation"]) for c in loss.target_qvalue_network))
        next_v = (next_probs * (next_q - 0.3 * next_probs.log())).sum(-1, keepdim=True)
        target = td["next", "reward"] + GAMMA * not_terminal(td) * next_v
        taken = td["action"].float()
        want_q = sum(F.smooth_l1_loss((c.module(td["observation"]) * taken).sum(-1, keepdim=True), target)
                     for c in loss.qvalue_network)
        entropy = -(probs * log_probs).sum(-1)
    assert out["loss_actor"].item() == pytest.approx(want_actor.item(), abs=1e-5)
    assert out["loss_qvalue"].item() == pytest.approx(want_q.item(), abs=1e-5)
    assert out["entropy"].item() == pytest.approx(entropy.mean().item(), abs=1e-5)
    target_entropy = 0.98 * torch.log(torch.tensor(3.0))
    assert loss.target_entropy.item() == pytest.approx(target_entropy.item())
    assert out["loss_alpha"].item() == pytest.approx(
        -(torch.log(torch.tensor(0.3)) * (-entropy + target_entropy)).mean().item(), abs=1e-5)
    zero_grads(loss)
    out["loss_actor"].backward()
    assert all(grads(actor)) and not any(grads(loss.qvalue_network))
    zero_grads(loss)
    loss(td)["loss_qvalue"].backward()
    assert all(grads(loss.qvalue_network)) and not any(grads(actor))
    with pytest.raises(SpecError, match="num_actions"):
        DiscreteSACLoss(actor, critic, num_actions=1)


def test_td3_takes_bounds_from_a_batched_env_spec():
    loss = TD3Loss(deterministic_actor(), q_critic(), action_spec=Bounded(-0.5, 0.5, shape=(4, 2)))
    assert loss.action_high.tolist() == [0.5, 0.5]
    assert torch.isfinite(loss(transitions(8))["loss_qvalue"])
    low = torch.tensor([[-1.0, -1.0], [-2.0, -2.0]])
    with pytest.raises(SpecError, match="differ across"):
        TD3Loss(deterministic_actor(), q_critic(), action_spec=(low, -low))
