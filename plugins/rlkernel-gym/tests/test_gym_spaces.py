"""gymnasium space -> rlkernel spec conversion, and the values going both ways."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from tensordict import TensorDict

from rlkernel.errors import SpecError
from rlkernel.specs import Binary, Bounded, Categorical, Composite, MultiCategorical, Unbounded
from rlkernel_gym.spaces import Layout, space_to_spec


def test_box_with_finite_bounds_is_bounded_and_keeps_dtype() -> None:
    spec = space_to_spec(spaces.Box(-2.0, 3.0, shape=(2,), dtype=np.float64))
    assert isinstance(spec, Bounded) and spec.dtype is torch.float64 and spec.shape == (2,)
    assert torch.equal(spec.low, torch.full((2,), -2.0, dtype=torch.float64))


def test_box_with_an_infinite_bound_is_unbounded() -> None:
    spec = gymnasium.make("CartPole-v1").observation_space
    converted = space_to_spec(spec)
    assert isinstance(converted, Unbounded) and converted.dtype is torch.float32 and converted.shape == (4,)


def test_integer_box_is_bounded_integer_and_batch_dims_lead() -> None:
    spec = space_to_spec(spaces.Box(0, 255, shape=(4, 5, 3), dtype=np.uint8), batch_size=(2,))
    assert isinstance(spec, Bounded) and spec.dtype is torch.uint8 and spec.shape == (2, 4, 5, 3)
    assert int(spec.high.max()) == 255


def test_discrete_start_becomes_zero_based_categorical() -> None:
    space = spaces.Discrete(3, start=-1)
    layout = Layout(space, "action", (), None)
    spec = layout.spec["action"]
    assert isinstance(spec, Categorical) and spec.n == 3 and spec.shape == ()
    # rlkernel value 0 is gymnasium's -1, and back.
    assert layout.to_gym(TensorDict({"action": torch.tensor(0)}, [])) == -1
    obs_layout = Layout(space, None, (), None)
    assert obs_layout.tensors(np.int64(1))[("observation",)].item() == 2


def test_multidiscrete_and_multibinary() -> None:
    md = space_to_spec(spaces.MultiDiscrete([2, 5], start=[1, 0]), batch_size=(3,))
    assert isinstance(md, MultiCategorical) and md.shape == (3, 2) and md.nvec.tolist() == [2, 5]
    mb = space_to_spec(spaces.MultiBinary(4))
    assert isinstance(mb, Binary) and mb.shape == (4,) and mb.dtype is torch.int8
    layout = Layout(spaces.MultiDiscrete([2, 5], start=[1, 0]), "action", (), None)
    gym_value = layout.to_gym(TensorDict({"action": torch.tensor([1, 4])}, []))
    assert gym_value.tolist() == [2, 4]


def test_dict_entries_become_root_keys_and_nested_dicts_nested_keys() -> None:
    space = spaces.Dict(
        {"position": spaces.Box(-1, 1, (2,)), "inner": spaces.Dict({"mode": spaces.Discrete(2)})}
    )
    layout = Layout(space, None, (4,), None)
    assert isinstance(layout.spec, Composite) and layout.spec.shape == (4,)
    assert sorted(map(str, layout.keys)) == sorted(map(str, [("position",), ("inner", "mode")]))
    assert layout.spec["inner", "mode"].shape == (4,)


def test_tuple_becomes_composite_with_numbered_keys_under_observation() -> None:
    space = spaces.Tuple((spaces.Box(0, 1, (3,)), spaces.Discrete(4)))
    layout = Layout(space, None, (), None)
    assert layout.keys == [("observation", "0"), ("observation", "1")]
    flat = layout.tensors((np.ones(3, dtype=np.float32), 2))
    assert flat[("observation", "1")].item() == 2


def test_dict_action_round_trip() -> None:
    space = spaces.Dict({"move": spaces.Box(-1, 1, (2,)), "fire": spaces.Discrete(2, start=5)})
    layout = Layout(space, "action", (), None)
    td = TensorDict({"action": {"move": torch.tensor([0.5, -0.5]), "fire": torch.tensor(1)}}, [])
    value = layout.to_gym(td)
    assert space.contains(value) and value["fire"] == 6


def test_unsupported_space_names_the_key_and_space() -> None:
    space = spaces.Dict({"name": spaces.Text(5)})
    with pytest.raises(SpecError, match=r"'name'.*Text"):
        Layout(space, None, (), None)
    with pytest.raises(SpecError, match="1-D nvec"):
        space_to_spec(spaces.MultiDiscrete([[2, 3], [4, 5]]))
