"""Networks, actors, critics, Q-value modules and actor-critic containers: shapes, keys, semantics."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule

from rlkernel.errors import SpecError
from rlkernel.exploration import ExplorationType, set_exploration_type
from rlkernel.specs import Bounded, Categorical, Composite, OneHot
from rlkernel.testing import CountingEnv
from rlkernel_algos.modules import (
    MLP,
    Actor,
    ActorCriticOperator,
    ActorCriticWrapper,
    ActorValueOperator,
    ConvNet,
    DuelingCnnDQNet,
    DuelingMlpDQNet,
    IndependentNormal,
    MaskedCategorical,
    OneHotCategorical,
    ProbabilisticActor,
    QValueActor,
    QValueModule,
    TanhNormal,
    ValueOperator,
)


# ---------------------------------------------------------------- networks
def test_mlp_layers_and_shapes():
    net = MLP(in_features=4, out_features=2, num_cells=[8, 16], activation_class=torch.nn.ReLU)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert net(torch.zeros(5, 7, 4)).shape == (5, 7, 2)
    assert len(MLP(in_features=3, out_features=1)) == 1
    repeated = MLP(in_features=3, out_features=1, depth=3, num_cells=5)
    assert [m.out_features for m in repeated if isinstance(m, torch.nn.Linear)] == [5, 5, 5, 1]


def test_mlp_lazy_multi_input_reshape_norm_dropout():
    net = MLP(out_features=(2, 3), num_cells=[8], norm_class=torch.nn.LayerNorm,
              norm_kwargs=[{"normalized_shape": 8}, {"normalized_shape": 6}], dropout=0.1, activate_last_layer=True)
    out = net(torch.zeros(5, 4), torch.zeros(5, 1))
    assert out.shape == (5, 2, 3)
    assert net[0].in_features == 5  # the lazy layer resolved on the concatenated input
    assert [type(m).__name__ for m in net][:4] == ["Linear", "Dropout", "LayerNorm", "Tanh"]
    assert MLP(in_features=2, out_features=1, bias_last_layer=False)[-1].bias is None


def test_mlp_bad_arguments():
    with pytest.raises(SpecError, match="out_features is required"):
        MLP(in_features=3)
    with pytest.raises(SpecError, match="give depth too"):
        MLP(in_features=3, out_features=1, num_cells=8)
    with pytest.raises(SpecError, match="depth=2 but num_cells has 3 entries"):
        MLP(in_features=3, out_features=1, depth=2, num_cells=[4, 4, 4])
    with pytest.raises(SpecError, match="lazy layer"):
        MLP(out_features=1, layer_class=torch.nn.Bilinear)


def test_convnet_atari_default_and_batch_dims():
    net = ConvNet()
    convs = [m for m in net.layers if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [(32, 8, 4), (64, 4, 2), (64, 3, 1)]
    assert net(torch.zeros(2, 3, 4, 84, 84)).shape == (2, 3, 3136)
    assert net(torch.zeros(4, 84, 84)).shape == (3136,)
    small = ConvNet(in_features=3, num_cells=[8, 8], kernel_sizes=3, strides=1)
    assert small(torch.zeros(5, 3, 10, 10)).shape == (5, 8 * 6 * 6)
    with pytest.raises(SpecError, match="kernel_sizes has 3 entries but the network has 2 layers"):
        ConvNet(num_cells=[8, 8], kernel_sizes=[3, 3, 3])


def test_dueling_networks():
    torch.manual_seed(0)
    net = DuelingMlpDQNet(4, mlp_kwargs_feature={"num_cells": [16], "out_features": 16},
                          mlp_kwargs_output={"num_cells": [8]})
    obs = torch.randn(6, 5)
    q = net(obs)
    assert q.shape == (6, 4)
    features = net.features(obs)
    advantage = net.advantage(features)
    torch.testing.assert_close(q - q.mean(-1, keepdim=True), advantage - advantage.mean(-1, keepdim=True))
    torch.testing.assert_close(q.mean(-1, keepdim=True), net.value(features))
    cnn = DuelingCnnDQNet(3, cnn_kwargs={"num_cells": [4], "kernel_sizes": 3}, mlp_kwargs={"num_cells": [8]})
    assert cnn(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


# ---------------------------------------------------------------- actors and critics
def gaussian_params(features: int = 3, actions: int = 2) -> TensorDictModule:
    return TensorDictModule(
        torch.nn.Sequential(torch.nn.Linear(features, 2 * actions), NormalParamExtractor()),
        in_keys=["observation"], out_keys=["loc", "scale"],
    )


def test_actor_and_value_operator_keys():
    actor = Actor(torch.nn.Linear(3, 1))
    assert actor.in_keys == ["observation"] and actor.out_keys == ["action"]
    td = actor(TensorDict(observation=torch.zeros(5, 3), batch_size=[5]))
    assert td["action"].shape == (5, 1)
    assert ValueOperator(torch.nn.Linear(3, 1)).out_keys == ["state_value"]
    qnet = ValueOperator(MLP(out_features=1, num_cells=[4]), in_keys=["observation", "action"])
    assert qnet.out_keys == ["state_action_value"]
    assert qnet(td)["state_action_value"].shape == (5, 1)


def test_actor_spec_cast_and_safe_projection():
    spec = Composite(action=Bounded(-0.5, 0.5, shape=(1,)))
    layer = torch.nn.Linear(3, 1)
    torch.nn.init.constant_(layer.bias, 3.0)
    actor = Actor(layer, spec=spec, safe=True)
    assert actor(TensorDict(observation=torch.zeros(2, 3), batch_size=[2]))["action"].tolist() == [[0.5], [0.5]]
    with pytest.raises(SpecError, match="safe=True needs a spec"):
        Actor(layer, safe=True)


def test_probabilistic_actor_follows_the_exploration_type():
    actor = ProbabilisticActor(gaussian_params(), in_keys=["loc", "scale"], distribution_class=IndependentNormal)
    td = TensorDict(observation=torch.randn(4, 3), batch_size=[4])
    loc = actor.module[0](td.clone())["loc"]
    torch.manual_seed(0)
    unset = actor(td.clone())["action"]  # no exploration type set: RANDOM (rlkernel's default)
    with set_exploration_type(ExplorationType.RANDOM):
        a, b = actor(td.clone())["action"], actor(td.clone())["action"]
    assert not torch.equal(a, b) and not torch.equal(unset, loc)
    for kind in (ExplorationType.DETERMINISTIC, ExplorationType.MODE, ExplorationType.MEAN):
        with set_exploration_type(kind):
            torch.testing.assert_close(actor(td.clone())["action"], loc)


def test_probabilistic_actor_tanh_normal_modes_and_log_prob_key():
    actor = ProbabilisticActor(
        gaussian_params(), in_keys=["loc", "scale"], distribution_class=TanhNormal,
        distribution_kwargs={"low": -2.0, "high": 2.0}, return_log_prob=True,
    )
    assert actor.log_prob_key == "action_log_prob"
    td = TensorDict(observation=torch.randn(4, 3), batch_size=[4])
    out = actor(td.clone())
    assert set(out.keys()) >= {"action", "action_log_prob", "loc", "scale"}
    assert out["action_log_prob"].shape == (4,) and (out["action"].abs() <= 2).all()
    torch.testing.assert_close(out["action_log_prob"], actor.get_dist(out).log_prob(out["action"]), rtol=1e-4,
                               atol=1e-4)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        det = actor(td.clone())
    torch.testing.assert_close(det["action"], 2 * torch.tanh(det["loc"]))
    with set_exploration_type(ExplorationType.MODE):
        mode = actor(td.clone())
    torch.testing.assert_close(mode["action"], TanhNormal(mode["loc"], mode["scale"], -2.0, 2.0).mode)


def test_probabilistic_actor_casts_to_the_spec_dtype_and_drives_an_env():
    net = TensorDictModule(torch.nn.Linear(3, 4), in_keys=["observation"], out_keys=["logits"])
    actor = ProbabilisticActor(net, in_keys=["logits"], distribution_class=OneHotCategorical, spec=OneHot(4))
    out = actor(TensorDict(observation=torch.randn(6, 3), batch_size=[6]))
    assert out["action"].dtype is torch.bool and (out["action"].sum(-1) == 1).all()
    env = CountingEnv(max_count=3.0, batch_size=(2,))
    policy = ProbabilisticActor(
        TensorDictModule(torch.nn.Sequential(torch.nn.Linear(1, 2), NormalParamExtractor()),
                         in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"], distribution_class=TanhNormal, distribution_kwargs={"low": 0.0, "high": 1.0},
        spec=env.action_spec, return_log_prob=True,
    )
    rollout = env.rollout(5, policy, break_when_any_done=False)
    assert rollout.batch_size == (2, 5) and rollout["action_log_prob"].shape == (2, 5)


def test_probabilistic_actor_with_action_mask():
    net = TensorDictModule(torch.nn.Linear(3, 4), in_keys=["observation"], out_keys=["logits"])
    actor = ProbabilisticActor(net, in_keys={"logits": "logits", "mask": "action_mask"},
                               distribution_class=MaskedCategorical)
    mask = torch.tensor([[True, False, False, True]]).expand(300, 4)
    out = actor(TensorDict(observation=torch.randn(300, 3), action_mask=mask, batch_size=[300]))
    assert set(out["action"].unique().tolist()) <= {0, 3}


def test_probabilistic_actor_bad_arguments():
    with pytest.raises(SpecError, match=r"module must be a tensordict\.nn module"):
        ProbabilisticActor(torch.nn.Linear(3, 2), in_keys=["loc"], distribution_class=IndependentNormal)
    with pytest.raises(SpecError, match="distribution_class is required"):
        ProbabilisticActor(gaussian_params(), in_keys=["loc", "scale"])


# ---------------------------------------------------------------- Q-values
def test_qvalue_actor_picks_the_argmax_one_hot():
    actor = QValueActor(torch.nn.Linear(4, 3), spec=OneHot(3))
    td = actor(TensorDict(observation=torch.randn(8, 4), batch_size=[8]))
    values = td["action_value"]
    assert td["action"].dtype is torch.bool
    assert torch.equal(td["action"].to(torch.int64).argmax(-1), values.argmax(-1))
    torch.testing.assert_close(td["chosen_action_value"], values.max(-1, keepdim=True).values)


def test_qvalue_actor_categorical_follows_the_spec_shape():
    scalar = QValueActor(torch.nn.Linear(4, 3), spec=Categorical(3))
    assert scalar(TensorDict(observation=torch.randn(5, 4), batch_size=[5]))["action"].shape == (5,)
    column = QValueActor(torch.nn.Linear(4, 3), spec=Categorical(3, shape=(1,)))
    out = column(TensorDict(observation=torch.randn(5, 4), batch_size=[5]))
    assert out["action"].shape == (5, 1) and out["action"].dtype is torch.int64


def test_qvalue_module_respects_masks():
    qv = QValueModule(action_space="categorical", action_mask_key="action_mask")
    values = torch.tensor([[5.0, 1.0, 3.0], [0.0, 9.0, -1.0]])
    mask = torch.tensor([[False, True, True], [True, False, True]])
    td = qv(TensorDict(action_value=values, action_mask=mask, batch_size=[2]))
    assert td["action"].tolist() == [2, 0]
    assert td["chosen_action_value"][:, 0].tolist() == [3.0, 0.0]
    with pytest.raises(SpecError, match=r"must be a bool tensor of the action values' shape \[2, 3\]"):
        qv(TensorDict(action_value=values, action_mask=mask[:, :2], batch_size=[2]))


def test_qvalue_module_needs_a_space():
    with pytest.raises(SpecError, match="give action_space"):
        QValueModule()
    with pytest.raises(SpecError, match="unknown action_space 'binary'"):
        QValueModule(action_space="binary")
    with pytest.raises(SpecError, match="must be OneHot or Categorical"):
        QValueModule(spec=Bounded(0.0, 1.0, shape=(2,)))


def test_qvalue_actor_with_a_dueling_network():
    net = DuelingMlpDQNet(3, mlp_kwargs_feature={"num_cells": [8], "out_features": 8})
    actor = QValueActor(net, spec=OneHot(3))
    td = actor(TensorDict(observation=torch.randn(4, 5), batch_size=[4]))
    assert td["action_value"].shape == (4, 3)


# ---------------------------------------------------------------- actor-critic containers
def test_actor_value_operator_shares_the_trunk():
    common = TensorDictModule(torch.nn.Linear(3, 8), in_keys=["observation"], out_keys=["hidden"])
    policy = ProbabilisticActor(
        TensorDictModule(torch.nn.Sequential(torch.nn.Linear(8, 4), NormalParamExtractor()),
                         in_keys=["hidden"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"], distribution_class=TanhNormal,
    )
    value = ValueOperator(torch.nn.Linear(8, 1), in_keys=["hidden"])
    avo = ActorValueOperator(common, policy, value)
    td = avo(TensorDict(observation=torch.randn(5, 3), batch_size=[5]))
    assert {"hidden", "action", "state_value"} <= set(td.keys())
    policy_op, value_op = avo.get_policy_operator(), avo.get_value_operator()
    assert policy_op.get_dist(TensorDict(observation=torch.randn(5, 3), batch_size=[5])).batch_shape == (5,)
    assert value_op(TensorDict(observation=torch.randn(5, 3), batch_size=[5]))["state_value"].shape == (5, 1)
    assert policy_op.module[0] is value_op.module[0] is avo.get_common_operator()
    assert isinstance(policy_op, ProbabilisticActor)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        out = policy_op(TensorDict(observation=torch.randn(5, 3), batch_size=[5]))
    torch.testing.assert_close(out["action"], torch.tanh(out["loc"]))
    assert avo.get_policy_head() is policy and avo.get_value_head() is value


def test_actor_critic_operator_and_wrapper():
    common = TensorDictModule(torch.nn.Linear(3, 8), in_keys=["observation"], out_keys=["hidden"])
    policy = Actor(torch.nn.Linear(8, 2), in_keys=["hidden"])
    critic = ValueOperator(MLP(out_features=1, num_cells=[4]), in_keys=["hidden", "action"])
    aco = ActorCriticOperator(common, policy, critic)
    td = aco(TensorDict(observation=torch.randn(5, 3), batch_size=[5]))
    assert td["state_action_value"].shape == (5, 1)
    critic_op = aco.get_critic_operator()
    assert critic_op(td.exclude("state_action_value", "hidden"))["state_action_value"].shape == (5, 1)
    with pytest.raises(SpecError, match="use get_critic_operator"):
        aco.get_value_operator()
    p, v = Actor(torch.nn.Linear(3, 2)), ValueOperator(torch.nn.Linear(3, 1))
    acw = ActorCriticWrapper(p, v)
    assert acw.get_policy_operator() is p and acw.get_value_operator() is v
    assert {"action", "state_value"} <= set(acw(TensorDict(observation=torch.randn(2, 3), batch_size=[2])).keys())
    with pytest.raises(SpecError, match=r"value_operator must be a tensordict\.nn module"):
        ActorCriticWrapper(p, torch.nn.Linear(3, 1))
