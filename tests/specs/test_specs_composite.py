"""Tests of the Composite spec: nested keys, locking, TensorDict values, shape operations."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from specs_strategies import specs
from tensordict import TensorDict

from rlkernel.specs import (
    Bounded,
    Categorical,
    Composite,
    OneHot,
    SpecError,
    TensorSpec,
    Unbounded,
)


def make_spec(batch: tuple[int, ...] = (4,)) -> Composite:
    return Composite(
        observation=Unbounded((*batch, 3)),
        action=Bounded(-1.0, 1.0, shape=(*batch, 2)),
        next=Composite(
            reward=Unbounded((*batch, 1)),
            agents=Composite(obs=OneHot(5, shape=(*batch, 2, 5)), shape=(*batch, 2)),
            shape=batch,
        ),
        shape=batch,
    )


def test_keys_values_items() -> None:
    spec = make_spec()
    assert list(spec) == ["observation", "action", "next"]
    assert len(spec) == 3
    assert spec.keys() == ["observation", "action", "next"]
    assert spec.keys(leaves_only=True) == ["observation", "action"]
    assert spec.keys(include_nested=True) == [
        "observation",
        "action",
        "next",
        ("next", "reward"),
        ("next", "agents"),
        ("next", "agents", "obs"),
    ]
    assert spec.keys(include_nested=True, leaves_only=True) == [
        "observation",
        "action",
        ("next", "reward"),
        ("next", "agents", "obs"),
    ]
    items = spec.items(include_nested=True, leaves_only=True)
    assert [k for k, _ in items] == spec.keys(include_nested=True, leaves_only=True)
    assert items[2][1] == Unbounded((4, 1))
    assert spec.values(include_nested=True, leaves_only=True)[3] == OneHot(5, shape=(4, 2, 5))


def test_nested_get_set_contains_delete() -> None:
    spec = make_spec()
    assert spec["next", "agents", "obs"] is spec["next"]["agents"]["obs"]
    assert ("next", "reward") in spec and "reward" not in spec and ("next", "nope") not in spec
    assert 3 not in spec
    assert spec.get(("next", "nope")) is None and spec.get("x", 1) == 1
    spec["extra", "deep", "leaf"] = Categorical(3, shape=(4,))
    inner = spec["extra", "deep"]
    assert isinstance(inner, Composite) and inner.shape == (4,)
    assert spec.set(("extra", "other"), Unbounded((4,))) is spec
    del spec["extra", "deep", "leaf"]
    assert ("extra", "deep", "leaf") not in spec and ("extra", "deep") in spec
    with pytest.raises(KeyError, match="nope"):
        spec["next", "nope"]
    with pytest.raises(SpecError, match="nope"):
        del spec["nope"]


def test_dict_children_become_composites() -> None:
    spec = Composite({"a": {"b": Unbounded((2, 1))}}, shape=(2,))
    assert isinstance(spec["a"], Composite) and spec["a"].shape == (2,)
    assert spec.keys(True, True) == [("a", "b")]


def test_lock_refuses_writes_everywhere() -> None:
    spec = make_spec().lock_()
    assert spec.is_locked and spec["next"].is_locked and spec["next", "agents"].is_locked
    with pytest.raises(SpecError, match="locked"):
        spec["new"] = Unbounded((4,))
    with pytest.raises(SpecError, match="locked"):
        spec["next"]["new"] = Unbounded((4,))
    with pytest.raises(SpecError, match="locked"):
        spec["next", "agents", "x"] = Unbounded((4, 2))
    with pytest.raises(SpecError, match="locked"):
        del spec["observation"]
    with pytest.raises(SpecError, match="locked"):
        spec.update({"observation": Unbounded((4, 3))})
    assert "new" not in spec and "observation" in spec
    spec.unlock_()
    assert not spec["next", "agents"].is_locked
    spec["next", "agents", "x"] = Unbounded((4, 2))
    assert ("next", "agents", "x") in spec


def test_child_shape_must_start_with_batch_shape() -> None:
    with pytest.raises(SpecError, match=r"'bad'.*\[3\].*\[4\]"):
        Composite(good=Unbounded((4, 3)), bad=Unbounded((3,)), shape=(4,))
    spec = make_spec()
    with pytest.raises(SpecError, match=r"\('next', 'agents', 'bad'\).*\[4, 2\]"):
        spec["next", "agents", "bad"] = Unbounded((4, 3))
    with pytest.raises(SpecError, match="not a Composite"):
        spec["observation", "x"] = Unbounded((4,))
    with pytest.raises(SpecError, match="TensorSpec"):
        spec["x"] = torch.zeros(4)


def test_rand_zero_are_tensordicts_in_spec() -> None:
    spec = make_spec()
    for td in (spec.rand(), spec.zero()):
        assert isinstance(td, TensorDict) and td.batch_size == (4,)
        assert td["next", "agents"].batch_size == (4, 2)
        assert td["next", "agents", "obs"].shape == (4, 2, 5)
        assert spec.is_in(td), spec.why_not_in(td)
        assert spec.why_not_in(td) is None
    td = spec.rand((3,))
    assert td.batch_size == (3, 4) and td["action"].shape == (3, 4, 2)
    assert spec.is_in(td)
    assert spec.zero()["action"].abs().sum() == 0


def test_is_in_false_for_bad_leaf_and_why_names_nested_key() -> None:
    spec = make_spec()
    td = spec.rand()
    td["next", "agents", "obs"] = torch.zeros(4, 2, 5, dtype=torch.bool)
    assert not spec.is_in(td)
    why = spec.why_not_in(td)
    assert "('next', 'agents', 'obs')" in why and "expected exactly one" in why
    td = spec.rand()
    td["action"][1, 0] = 3.5
    assert not spec.is_in(td)
    assert "'action'" in spec.why_not_in(td) and "3.5" in spec.why_not_in(td)
    with pytest.raises(SpecError, match=r"'action'.*3\.5 is above high 1\.0 at index \(1, 0\)"):
        spec.assert_is_in(td)


def test_is_in_missing_and_extra_keys() -> None:
    spec = make_spec()
    td = spec.rand()
    td["unrelated"] = torch.zeros(4)
    assert spec.is_in(td)
    del td["next", "reward"]
    assert not spec.is_in(td)
    assert spec.why_not_in(td) == "key ('next', 'reward') is missing"
    assert not spec.is_in(torch.zeros(4))
    plain = {"a": torch.zeros(2)}
    assert Composite(a=Unbounded((2,))).is_in(plain)


def test_project_and_encode() -> None:
    spec = make_spec()
    td = spec.rand()
    td["action"] = torch.full((4, 2), 7.0)
    td["next", "reward"] = torch.full((4, 1), float("nan"))
    td["kept"] = torch.ones(4)
    out = spec.project(td)
    assert spec.is_in(out)
    assert out["action"].eq(1.0).all() and out["next", "reward"].eq(0).all()
    assert torch.equal(out["kept"], td["kept"])
    assert td["action"].eq(7.0).all(), "project must not modify its input"
    enc = Composite(a=Bounded(0, 5, shape=(2,), dtype=torch.int64), b={"c": Unbounded(())}).encode(
        {"a": [1, 2], "b": {"c": 3}}
    )
    assert enc.batch_size == () and enc["a"].tolist() == [1, 2] and enc["b", "c"].item() == 3.0


def test_expand_index_unsqueeze_squeeze() -> None:
    spec = make_spec()
    big = spec.expand(3, 4)
    assert big.shape == (3, 4) and big["next", "agents"].shape == (3, 4, 2)
    assert big["next", "agents", "obs"].shape == (3, 4, 2, 5)
    assert big[1] == spec
    assert big[:, 0] == make_spec((3,))
    assert big[0, 1] == make_spec(())
    assert big.is_in(big.rand()) and spec.is_in(big.rand()[2])
    assert spec.unsqueeze(0).shape == (1, 4)
    assert spec.unsqueeze(-1)["action"].shape == (4, 1, 2)
    assert spec.unsqueeze(0).squeeze() == spec
    assert spec.unsqueeze(1).squeeze(1) == spec
    assert spec.ndim == 1 and big.ndim == 2
    with pytest.raises(SpecError):
        spec[0, 0]


def test_equality_clone_select_exclude_update_empty() -> None:
    spec = make_spec()
    copy = spec.clone()
    assert copy == spec and copy is not spec and copy["next"] is not spec["next"]
    copy["next", "reward"] = Unbounded((4, 2))
    assert copy != spec
    sel = spec.select("observation", ("next", "agents", "obs"))
    assert sel.keys(True, True) == ["observation", ("next", "agents", "obs")]
    assert sel["next", "agents"].shape == (4, 2)
    with pytest.raises(KeyError):
        spec.select("nope")
    assert spec.select("nope", strict=False).is_empty()
    exc = spec.exclude("action", ("next", "reward"), "missing")
    assert exc.keys(True, True) == ["observation", ("next", "agents", "obs")]
    assert "action" in spec, "exclude must not touch the original"
    other = Composite(
        next={"reward": Unbounded((4, 2)), "done": Categorical(2, (4, 1))}, shape=(4,)
    )
    spec.update(other)
    assert spec["next", "reward"] == Unbounded((4, 2)) and ("next", "done") in spec
    assert ("next", "agents", "obs") in spec
    empty = spec.empty()
    assert empty.shape == spec.shape and len(empty) == 0 and empty.is_empty()
    assert not spec.is_empty()
    assert Composite(a=Composite()).is_empty()
    assert spec != Unbounded(())


def test_to_dtype_casts_float_leaves_only() -> None:
    spec = Composite(x=Unbounded((2,)), c=Categorical(3), shape=())
    doubled = spec.to(torch.float64)
    assert doubled["x"].dtype == torch.float64 and doubled["c"].dtype == torch.int64
    assert spec.to("cpu") is spec


def test_repr_is_multiline_and_names_keys() -> None:
    text = repr(make_spec())
    assert text.startswith("Composite(\n    observation: Unbounded(shape=[4, 3], dtype=float32),")
    assert "        agents: Composite(\n            obs: OneHot(" in text
    assert text.endswith("    shape=[4])")
    assert repr(Composite()) == "Composite(shape=[])"


@settings(max_examples=30, deadline=None)
@given(leaves=st.lists(specs(), min_size=1, max_size=4), k=st.integers(1, 3))
def test_composite_of_random_leaves(leaves: list[TensorSpec], k: int) -> None:
    spec = Composite({f"k{i}": leaf for i, leaf in enumerate(leaves)})
    spec["nested", "x"] = leaves[0]
    td = spec.rand((2,))
    assert td.batch_size == (2,) and spec.is_in(td)
    assert spec.is_in(spec.zero())
    big = spec.expand(k)
    assert big[k - 1] == spec and spec.is_in(big.rand()[0])
    assert spec.is_in(spec.project(td))
