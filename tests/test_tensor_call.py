"""rlkernel.tensor_call: a tensordict.nn module as a function of tensors, computing what the
module's TensorDict call writes; how modules are taken apart (declared, never guessed)."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import (
    NormalParamExtractor,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    TensorDictModuleBase,
    TensorDictSequential,
)
from torch import distributions as D
from torch import nn

from rlkernel.collectors.policy import PolicyCaller
from rlkernel.errors import RLKernelError
from rlkernel.exploration import ExplorationType, set_exploration_type
from rlkernel.tensor_call import (
    DistStep,
    MapStep,
    ModuleStep,
    TensorCall,
    TensorCallError,
    TensorDictStep,
    module_steps,
    steps_as,
)

MODES = [ExplorationType.RANDOM, ExplorationType.DETERMINISTIC, ExplorationType.MODE, ExplorationType.MEAN]


def _same_as_forward(module, td, mode=None, seed=0):
    """Run ``module`` through TensorCall and through its TensorDict call with the same seed."""
    call = TensorCall(module)
    with torch.no_grad(), set_exploration_type(mode) if mode is not None else torch.no_grad():
        torch.manual_seed(seed)
        want = module(td.clone())
        torch.manual_seed(seed)
        got = call(*(td.get(k) for k in call.in_keys), batch_size=td.batch_size)
    assert set(call.out_keys) == set(want.keys(True, True)) - set(td.keys(True, True))
    for key, value in zip(call.out_keys, got):
        assert value.dtype == want.get(key).dtype and torch.equal(value, want.get(key)), key
    return call


class _Joint(D.Normal):
    """Draws and scores in one call (as TanhNormal does): the module uses that method."""

    def rsample_and_log_prob(self, sample_shape=()):
        value = self.rsample(torch.Size(sample_shape))
        return value, self.log_prob(value) + 1.0  # distinguishable from sample-then-log_prob


def _gaussian(dist_class=D.Normal, **kwargs):
    net = TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()), ["obs"], ["loc", "scale"])
    return ProbabilisticTensorDictSequential(
        net, ProbabilisticTensorDictModule(["loc", "scale"], ["act"], distribution_class=dist_class, **kwargs)
    )


def _categorical(**kwargs):
    net = TensorDictModule(nn.Linear(3, 5), ["obs"], ["logits"])
    return ProbabilisticTensorDictSequential(
        net, ProbabilisticTensorDictModule(["logits"], ["act"], distribution_class=D.Categorical, **kwargs)
    )


TD = TensorDict(obs=torch.randn(6, 3), extra=torch.randn(6, 2), batch_size=[6])


# ---------------------------------------------------------------- same values as forward
def test_a_tensordict_module_is_a_call_of_its_inner_module():
    module = TensorDictModule(nn.Linear(3, 2), ["obs"], ["out"])
    call = _same_as_forward(module, TD)
    assert call.exact and isinstance(call.steps[0], ModuleStep) and call.in_keys == ["obs"]


def test_keyword_inputs_methods_and_the_placeholder_out_key():
    class Net(nn.Module):
        def forward(self, x, y):
            return x.sum(-1, keepdim=True) + y[..., :1], x * 2

        def half(self, x, y, scale=1.0):
            return scale * x / 2, y

    keyword = TensorDictModule(Net(), in_keys={"y": "extra", "x": "obs"}, out_keys=["s", "_"])
    call = _same_as_forward(keyword, TD)
    assert call.out_keys == ["s"]
    method = TensorDictModule(Net(), ["obs", "extra"], ["h", ("nested", "y")], method="half",
                              method_kwargs={"scale": 3.0})
    assert _same_as_forward(method, TD).out_keys == ["h", ("nested", "y")]


@pytest.mark.parametrize(
    ("make", "mode"),
    # a categorical distribution has no mean value to write: that pair is not a case
    [(make, mode) for make in (_gaussian, _categorical) for mode in (None, *MODES)
     if not (make is _categorical and mode is ExplorationType.MEAN)],
)
@pytest.mark.parametrize("log_prob", [False, True])
def test_a_probabilistic_sequence_draws_what_forward_draws(make, mode, log_prob):
    module = make(return_log_prob=log_prob)
    call = _same_as_forward(module, TD, mode, seed=5)
    assert call.exact and isinstance(call.steps[-1], DistStep)
    assert ("act_log_prob" in call.out_keys) == log_prob


def test_a_joint_draw_and_score_is_used_as_forward_uses_it():
    call = _same_as_forward(_gaussian(_Joint, return_log_prob=True), TD, ExplorationType.RANDOM, seed=2)
    assert call.exact


def test_a_sequence_with_a_module_of_its_own_is_taken_apart_around_it():
    class Doubler(TensorDictModuleBase):
        in_keys, out_keys = ["hidden"], ["doubled"]

        def forward(self, td):
            td.set("doubled", 2 * td.get("hidden"))
            return td

    module = TensorDictSequential(
        TensorDictModule(nn.Linear(3, 4), ["obs"], ["hidden"]),
        Doubler(),
        TensorDictModule(lambda x, y: x + y.sum(-1, keepdim=True), ["doubled", "extra"], ["out"]),
    )
    call = _same_as_forward(module, TD)
    assert [type(s) for s in call.steps] == [ModuleStep, TensorDictStep, ModuleStep]
    assert not call.exact and call.in_keys == ["obs", "extra"]


def test_parameters_are_the_modules_own():
    module = _gaussian()
    call = TensorCall(module)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        loc = call(TD["obs"])[call.out_keys.index("act")]
    loc.sum().backward()
    assert module.module[0].module[0].weight.grad is not None


# ------------------------------------------------------------ declared, never guessed
def test_a_subclass_with_its_own_forward_is_called_through_it():
    class Noisy(TensorDictModule):
        def forward(self, tensordict, *args, **kwargs):
            out = super().forward(tensordict, *args, **kwargs)
            out.set("out", out.get("out") + 1)
            return out

    module = Noisy(nn.Linear(3, 2), ["obs"], ["out"])
    call = _same_as_forward(module, TD)
    assert not call.exact and isinstance(call.steps[0], TensorDictStep)


def test_a_subclass_declares_its_steps_and_its_own_subclasses_keep_or_drop_them():
    class Shifted(TensorDictModule):
        def forward(self, tensordict, *args, **kwargs):
            out = super().forward(tensordict, *args, **kwargs)
            out.set("out", out.get("out") + 1)
            return out

        def tensor_call_steps(self):
            return [*steps_as(self, TensorDictModule), MapStep(lambda v: v + 1, ["out"], ["out"])]

    class Renamed(Shifted):  # keeps forward: keeps the declaration
        pass

    class Changed(Shifted):  # a new forward: the declaration no longer says what it does
        def forward(self, tensordict, *args, **kwargs):
            return super().forward(tensordict, *args, **kwargs).set("out", torch.zeros(6, 2))

    for cls, exact in ((Shifted, True), (Renamed, True), (Changed, False)):
        call = _same_as_forward(cls(nn.Linear(3, 2), ["obs"], ["out"]), TD)
        assert call.exact == exact, cls


def test_hooks_and_configurations_that_change_the_output_use_the_tensordict_call():
    hooked = TensorDictModule(nn.Linear(3, 2), ["obs"], ["out"])
    hooked.register_forward_hook(lambda module, args, out: out.set("out", out.get("out") * 0))
    selected = _gaussian()
    selected.select_out_keys("act")
    sampled_twice = _gaussian(num_samples=2)
    for module in (hooked, selected, sampled_twice):
        call = TensorCall(module)
        assert not call.exact, module
    _same_as_forward(hooked, TD)
    _same_as_forward(selected, TD, ExplorationType.RANDOM, seed=1)


def test_a_wrong_number_of_outputs_and_a_plain_module_are_clear_errors():
    two = TensorDictModule(lambda x: (x, x), ["obs"], ["a", "b", "c"])
    with pytest.raises(TensorCallError, match=r"returned 2 value\(s\) for the 3 out_keys") as info:
        TensorCall(two)(TD["obs"])
    assert isinstance(info.value, RLKernelError)
    with pytest.raises(TensorCallError, match=r"tensordict\.nn module"):
        module_steps(nn.Linear(3, 2))
    with pytest.raises(TypeError, match="is not a"):
        steps_as(TensorDictModule(nn.Linear(3, 2), ["obs"], ["out"]), TensorDictSequential)


# ---------------------------------------------------------------------- the collector
@pytest.mark.parametrize("make", [_gaussian, _categorical])
@pytest.mark.parametrize("mode", [ExplorationType.RANDOM, ExplorationType.DETERMINISTIC])
def test_the_collectors_policy_call_writes_what_forward_writes(make, mode):
    module = make(return_log_prob=True)
    caller = PolicyCaller(module, torch.device("cpu"), None)
    params = [("logits",)] if make is _categorical else [("loc",), ("scale",)]
    assert caller.fast is not None and caller.output_paths() == {*params, ("act",), ("act_log_prob",)}
    got, want = TD.clone(), TD.clone()
    with torch.no_grad(), set_exploration_type(mode):
        torch.manual_seed(9)
        caller(got)
        torch.manual_seed(9)
        module(want)
    assert set(got.keys(True, True)) == set(want.keys(True, True)) and (got == want).all()
