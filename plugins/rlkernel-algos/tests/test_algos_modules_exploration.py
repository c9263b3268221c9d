"""Exploration modules: exploration types, annealing, masks, OU noise state and resets."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictSequential

from rlkernel.errors import SpecError
from rlkernel.exploration import ExplorationType, set_exploration_type
from rlkernel.specs import Bounded, Categorical, Composite, OneHot
from rlkernel.testing import CountingEnv
from rlkernel_algos.modules import Actor, AdditiveGaussianModule, EGreedyModule, OrnsteinUhlenbeckProcessModule

NOT_RANDOM = [ExplorationType.DETERMINISTIC, ExplorationType.MODE, ExplorationType.MEAN, ExplorationType.MEDIAN]


def categorical_td(n_envs: int, value: int = 0) -> TensorDict:
    return TensorDict(action=torch.full((n_envs,), value, dtype=torch.int64), batch_size=[n_envs])


# ---------------------------------------------------------------- epsilon-greedy
def test_egreedy_explores_only_under_random():
    module = EGreedyModule(Categorical(5), eps_init=1.0, eps_end=1.0)
    for kind in NOT_RANDOM:
        with set_exploration_type(kind):
            assert (module(categorical_td(200))["action"] == 0).all()
    torch.manual_seed(0)
    out = module(categorical_td(2000))["action"]  # no type set: RANDOM
    assert set(out.unique().tolist()) == {0, 1, 2, 3, 4}
    with set_exploration_type(ExplorationType.RANDOM):
        assert set(module(categorical_td(2000))["action"].unique().tolist()) == {0, 1, 2, 3, 4}


def test_egreedy_rate_is_eps():
    module = EGreedyModule(OneHot(2), eps_init=0.3, eps_end=0.3)
    action = torch.tensor([[True, False]]).expand(20_000, 2).clone()
    torch.manual_seed(0)
    out = module(TensorDict(action=action, batch_size=[20_000]))["action"]
    changed = (out[:, 1]).float().mean().item()  # a random action differs half of the time
    assert abs(changed - 0.15) < 0.01
    assert out.dtype is torch.bool and (out.sum(-1) == 1).all()


def test_egreedy_annealing_reaches_eps_end_and_is_saved():
    module = EGreedyModule(Categorical(3), eps_init=1.0, eps_end=0.1, annealing_num_steps=1000)
    module.step(500)
    assert module.eps.item() == pytest.approx(0.55)
    for _ in range(500):
        module.step()
    assert module.eps.item() == pytest.approx(0.1, abs=1e-7) and module.eps.item() == torch.tensor(0.1).item()
    module.step(10_000)
    assert module.eps.item() == torch.tensor(0.1).item()
    fresh = EGreedyModule(Categorical(3), eps_init=1.0, eps_end=0.1, annealing_num_steps=1000)
    fresh.load_state_dict(module.state_dict())
    assert fresh.eps.item() == module.eps.item() and int(fresh.num_steps) == 11_000


@pytest.mark.parametrize("one_hot", [False, True])
def test_egreedy_never_picks_a_masked_action(one_hot):
    n_envs = 3000
    mask = torch.zeros(n_envs, 4, dtype=torch.bool)
    mask[:, 1] = True
    mask[::2, 3] = True
    if one_hot:
        module = EGreedyModule(OneHot(4), eps_init=1.0, eps_end=1.0, action_mask_key="action_mask")
        action = torch.zeros(n_envs, 4, dtype=torch.bool)
        action[:, 1] = True
    else:
        module = EGreedyModule(Categorical(4), eps_init=1.0, eps_end=1.0, action_mask_key="action_mask")
        action = torch.ones(n_envs, dtype=torch.int64)
    torch.manual_seed(0)
    out = module(TensorDict(action=action, action_mask=mask, batch_size=[n_envs]))["action"]
    index = out.to(torch.int64).argmax(-1) if one_hot else out
    assert mask.gather(-1, index.unsqueeze(-1)).all()
    assert set(index[::2].unique().tolist()) == {1, 3}


def test_egreedy_errors():
    with pytest.raises(SpecError, match="action masks need a Categorical or OneHot spec"):
        EGreedyModule(Bounded(0.0, 1.0, shape=(2,)), action_mask_key="action_mask")
    with pytest.raises(SpecError, match=r"eps_init must be in \[0, 1\]"):
        EGreedyModule(Categorical(3), eps_init=2.0)
    with pytest.raises(SpecError, match="annealing_num_steps must be a positive int"):
        EGreedyModule(Categorical(3), annealing_num_steps=0)
    module = EGreedyModule(Categorical(3), action_mask_key="action_mask")
    bad_mask = TensorDict(action=torch.zeros(4, dtype=torch.int64), action_mask=torch.ones(4, 2, dtype=torch.bool),
                          batch_size=[4])
    with pytest.raises(SpecError, match=r"one flag per category \(last dim 3\).*shape \[4, 2\]"):
        module(bad_mask)
    with pytest.raises(SpecError, match="no action at 'action'"):
        EGreedyModule(Categorical(3))(TensorDict(observation=torch.zeros(4), batch_size=[4]))
    with pytest.raises(SpecError, match="does not end with the spec's shape"):
        EGreedyModule(OneHot(3))(TensorDict(action=torch.zeros(4, 5, dtype=torch.bool), batch_size=[4]))


def test_egreedy_after_an_actor_in_a_real_env():
    env = CountingEnv(max_count=100.0, batch_size=(4,))
    actor = Actor(lambda obs: torch.zeros_like(obs), spec=env.action_spec)
    policy = TensorDictSequential(actor, EGreedyModule(Composite(action=env.action_spec), eps_init=1.0))
    rollout = env.rollout(10, policy)
    assert (rollout["action"] > 0).all()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        assert (env.rollout(10, policy)["action"] == 0).all()


# ---------------------------------------------------------------- additive Gaussian
def test_additive_gaussian_noise_is_clipped_and_obeys_the_type():
    spec = Bounded(-1.0, 1.0, shape=(2,))
    module = AdditiveGaussianModule(spec, sigma_init=0.5, sigma_end=0.5)
    td = TensorDict(action=torch.full((20_000, 2), 0.9), batch_size=[20_000])
    for kind in NOT_RANDOM:
        with set_exploration_type(kind):
            assert (module(td.clone())["action"] == 0.9).all()
    torch.manual_seed(0)
    out = module(td.clone())["action"]
    assert (out <= 1.0).all() and (out >= -1.0).all() and (out == 1.0).any()
    wide = AdditiveGaussianModule(Bounded(-10.0, 10.0, shape=(2,)), sigma_init=0.5, sigma_end=0.5)
    inside = wide(TensorDict(action=torch.zeros(20_000, 2), batch_size=[20_000]))["action"]
    assert abs(inside.std().item() - 0.5) < 0.02


def test_additive_gaussian_annealing_and_errors():
    module = AdditiveGaussianModule(Bounded(-1.0, 1.0, shape=(1,)), sigma_init=1.0, sigma_end=0.2,
                                    annealing_num_steps=4)
    module.step(2)
    assert module.sigma.item() == pytest.approx(0.6)
    module.step(2)
    assert module.sigma.item() == pytest.approx(0.2)
    with pytest.raises(SpecError, match="needs a continuous"):
        AdditiveGaussianModule(Categorical(3))
    with pytest.raises(SpecError, match="must be >= 0"):
        AdditiveGaussianModule(Bounded(-1.0, 1.0, shape=(1,)), sigma_init=-1.0)


# ---------------------------------------------------------------- Ornstein-Uhlenbeck
def ou_module(**kwargs) -> OrnsteinUhlenbeckProcessModule:
    spec = Bounded(-100.0, 100.0, shape=(2,))
    return OrnsteinUhlenbeckProcessModule(spec, eps_init=1.0, eps_end=1.0, **kwargs)


def test_ou_noise_state_lives_in_the_tensordict_and_resets_at_is_init():
    module = ou_module(theta=0.15, sigma=0.2, dt=1.0)
    td = TensorDict(action=torch.zeros(3, 2), batch_size=[3])
    out = module(td)
    assert set(out.keys()) >= {"_ou_prev_noise", "_ou_steps"}
    assert out["_ou_steps"].tolist() == [[1], [1], [1]]
    torch.testing.assert_close(out["action"], out["_ou_prev_noise"])
    for _ in range(4):
        td = module(td.set("action", torch.zeros(3, 2)))
    assert td["_ou_steps"].tolist() == [[5], [5], [5]]
    before = td["_ou_prev_noise"].clone()
    td.set("is_init", torch.tensor([[True], [False], [False]]))
    torch.manual_seed(1)
    td = module(td.set("action", torch.zeros(3, 2)))
    assert td["_ou_steps"].tolist() == [[1], [6], [6]]
    # The reset env starts from x0 = 0: its noise is one fresh increment, of scale sigma * sqrt(dt).
    torch.manual_seed(1)
    increment = 0.2 * torch.randn(3, 2)
    torch.testing.assert_close(td["_ou_prev_noise"][0], increment[0])
    torch.testing.assert_close(td["_ou_prev_noise"][1:], before[1:] * (1 - 0.15) + increment[1:])


def test_ou_stationary_spread_matches_theory():
    theta, sigma, dt = 0.5, 0.2, 0.1
    module = ou_module(theta=theta, sigma=sigma, dt=dt)
    td = TensorDict(action=torch.zeros(4000, 2), batch_size=[4000])
    torch.manual_seed(0)
    for _ in range(300):
        td = module(td.set("action", torch.zeros(4000, 2)))
    a = 1 - theta * dt
    expected = (sigma**2 * dt / (1 - a * a)) ** 0.5
    assert abs(td["_ou_prev_noise"].std().item() - expected) < 0.01


def test_ou_obeys_the_exploration_type_and_checks_is_init():
    module = ou_module()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        out = module(TensorDict(action=torch.ones(3, 2), batch_size=[3]))
    assert (out["action"] == 1).all() and "_ou_prev_noise" not in out.keys()
    td = module(TensorDict(action=torch.ones(3, 2), batch_size=[3]))
    td.set("is_init", torch.zeros(3, 2, dtype=torch.bool))
    with pytest.raises(SpecError, match=r"'is_init' must be bool of shape \[3, 1\]"):
        module(td)


def test_ou_noise_carried_over_by_a_real_rollout():
    env = CountingEnv(max_count=1000.0, batch_size=(2,))
    actor = Actor(lambda obs: torch.zeros_like(obs), spec=env.action_spec)
    ou = OrnsteinUhlenbeckProcessModule(env.action_spec, eps_init=1.0, eps_end=1.0, sigma=0.5, dt=1.0)
    rollout = env.rollout(6, TensorDictSequential(actor, ou))
    assert rollout["_ou_steps"][..., 0].tolist() == [[1, 2, 3, 4, 5, 6]] * 2
    assert ((rollout["action"] >= 0) & (rollout["action"] <= 1)).all()  # projected into the spec


def test_modules_accept_an_unbatched_tensordict():
    eg = EGreedyModule(Categorical(3), eps_init=1.0, eps_end=1.0)
    assert eg(TensorDict(action=torch.tensor(0), batch_size=[]))["action"].shape == ()
    ou = ou_module()
    td = ou(TensorDict(action=torch.zeros(2), batch_size=[]))
    td = ou(td.set("is_init", torch.tensor([True])))
    assert td["_ou_steps"].tolist() == [1] and td["action"].shape == (2,)
