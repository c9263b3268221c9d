"""rlkernel._compat.tensordict: the versions it knows, each shim against tensordict's public
behaviour, and no private tensordict name anywhere else in rlkernel or its plugins.

An upgrade of tensordict that renames or changes a private name used by the compatibility
module fails here (the shim no longer matches the public behaviour, or ``MISSING`` is not
empty), instead of slowing down or breaking a hot path somewhere else.
"""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import pytest
import tensordict
import torch
from tensordict import TensorDict
from tensordict.nn import (
    InteractionType,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    set_interaction_type,
)
from torch import distributions as D
from torch import nn

from rlkernel._compat import tensordict as td_compat

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ versions
def test_the_installed_version_is_a_known_one_and_every_private_name_is_found():
    assert td_compat.KNOWN_VERSIONS == ("0.15.0", "0.15.1", "0.15.2", "0.15.3")
    assert tensordict.__version__ in td_compat.KNOWN_VERSIONS, (
        f"tensordict {tensordict.__version__} is not among the versions rlkernel._compat.tensordict was "
        f"checked against; check each shim (this file) and add it to KNOWN_VERSIONS"
    )
    assert td_compat.MISSING == ()


def test_known_versions_lie_in_the_supported_range_which_is_the_declared_one():
    low, high = td_compat.SUPPORTED
    for version in td_compat.KNOWN_VERSIONS:
        assert td_compat.check_version(version)
    declared = f'"tensordict>={low[0]}.{low[1]},<{high[0]}.{high[1]}"'
    pyprojects = [ROOT / "pyproject.toml", *ROOT.glob("plugins/*/pyproject.toml")]
    for path in pyprojects:
        text = path.read_text()
        if path.parent == ROOT or '"tensordict' in text:
            assert declared in text, f"{path.relative_to(ROOT)} must declare {declared}, the range rlkernel supports"


@pytest.mark.parametrize("version", ["0.14.3", "0.16.0", "1.0.0", "nonsense"])
def test_an_unknown_version_warns_and_does_not_raise(version):
    with pytest.warns(td_compat.TensorDictVersionWarning, match=rf"tensordict {re.escape(version)} is installed"):
        assert td_compat.check_version(version) is False


def test_a_known_version_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert td_compat.check_version("0.15.3+abc")


# -------------------------------------------------------------------------- TensorDicts
def _same(a: TensorDict, b: TensorDict) -> None:
    assert type(a) is type(b) and a.batch_size == b.batch_size and a.device == b.device and a.names == b.names
    assert set(a.keys(True, True)) == set(b.keys(True, True))
    for key in a.keys(True, True):
        assert torch.equal(a.get(key), b.get(key)), key


@pytest.mark.parametrize("names", [None, ["env", "time"]])
def test_new_unsafe_builds_what_the_constructor_builds(names):
    source = {"obs": torch.randn(2, 3, 4), "done": torch.zeros(2, 3, 1, dtype=torch.bool)}
    nested = {**source, "next": {"obs": torch.randn(2, 3, 4)}}
    kwargs = {"batch_size": torch.Size([2, 3]), "device": torch.device("cpu"), "names": names}
    _same(td_compat.new_unsafe(dict(source), nested=False, **kwargs), TensorDict(dict(source), **kwargs))
    _same(td_compat.new_unsafe(dict(nested), **kwargs), TensorDict(dict(nested), **kwargs))


def test_entries_are_the_root_items():
    td = TensorDict(a=torch.zeros(3), b=TensorDict(c=torch.ones(3, 2), batch_size=[3]), batch_size=[3])
    got = td_compat.entries(td)
    assert set(got) == set(td.keys())
    assert got["a"] is td.get("a") and got["b"].get("c") is td.get(("b", "c"))


def test_has_names_says_whether_names_are_set():
    td = TensorDict(a=torch.zeros(3, 2), batch_size=[3, 2])
    assert td_compat.has_names(td) is False
    td.names = ["x", None]
    assert td_compat.has_names(td) is True


def test_get_paths_and_set_validated_match_get_and_set():
    td = TensorDict(a=torch.zeros(3), nxt=TensorDict(b=torch.ones(3, 2), batch_size=[3]), batch_size=[3])
    got = td_compat.get_paths(td, [("a",), ("nxt", "b"), ("missing",), ("nxt", "missing")])
    assert got[0] is td.get("a") and got[1] is td.get(("nxt", "b")) and got[2:] == [None, None]
    value = torch.arange(3.0)
    td_compat.set_validated(td, ("nxt", "c"), value)
    td_compat.set_many_validated(td, [(("d",), 0), (("nxt", "e"), 1)], [value, 2 * value])
    want = td.clone().exclude(("nxt", "c"), "d", ("nxt", "e"))
    want.set(("nxt", "c"), value)
    want.set("d", value)
    want.set(("nxt", "e"), 2 * value)
    _same(td, want)
    stacked = torch.stack([td.clone(), td.clone()], 1)  # a lazy stack: the public path
    td_compat.set_validated(stacked, ("f",), torch.zeros(3, 2))
    assert torch.equal(td_compat.get_paths(stacked, [("f",)])[0], torch.zeros(3, 2))


# ----------------------------------------------------------------------- tensordict.nn
def test_call_signature_names_the_keyword_inputs():
    positional = TensorDictModule(nn.Linear(3, 1), ["obs"], ["v"])
    assert td_compat.call_signature(positional) == (None, {})
    keyword = TensorDictModule(lambda x, y: x - y, in_keys={"y": "b", "x": "a"}, out_keys=["out"])
    names, get_kwargs = td_compat.call_signature(keyword)
    assert get_kwargs == {}
    a, b = torch.randn(4), torch.randn(4)
    inputs = {"a": a, "b": b}
    want = keyword(TensorDict(a=a, b=b, batch_size=[4]))["out"]
    got = keyword.module(**{name: inputs[key] for name, key in zip(names, keyword.in_keys)})
    assert torch.equal(got, want)


def test_selects_out_keys_follows_select_out_keys():
    seq = ProbabilisticTensorDictSequential(
        TensorDictModule(nn.Linear(3, 2), ["obs"], ["logits"]),
        ProbabilisticTensorDictModule(["logits"], ["action"], distribution_class=D.Categorical),
    )
    assert td_compat.selects_out_keys(seq) is False
    seq.select_out_keys("action")
    assert td_compat.selects_out_keys(seq) is True
    assert "logits" not in seq(TensorDict(obs=torch.zeros(5, 3), batch_size=[5])).keys()


def test_requires_sample_is_false_when_an_earlier_module_writes_the_sample():
    samples = ProbabilisticTensorDictSequential(
        TensorDictModule(nn.Linear(3, 2), ["obs"], ["logits"]),
        ProbabilisticTensorDictModule(["logits"], ["action"], distribution_class=D.Categorical),
    )
    writes_it = ProbabilisticTensorDictSequential(
        TensorDictModule(nn.Linear(3, 2), ["obs"], ["action"]),
        ProbabilisticTensorDictModule({"logits": "action"}, ["action"], distribution_class=D.Categorical),
    )
    assert td_compat.requires_sample(samples) is True
    assert td_compat.requires_sample(writes_it) is False
    td = TensorDict(obs=torch.zeros(5, 3), batch_size=[5])
    assert writes_it(td.clone())["action"].dtype == torch.float32  # not sampled: the net's output stays


def test_has_generator_follows_the_constructor():
    plain = ProbabilisticTensorDictModule(["loc", "scale"], ["x"], distribution_class=D.Normal)
    own = ProbabilisticTensorDictModule(
        ["loc", "scale"], ["x"], distribution_class=D.Normal, generator=torch.Generator().manual_seed(0)
    )
    keyed = ProbabilisticTensorDictModule(["loc", "scale"], ["x"], distribution_class=D.Normal, generator="gen")
    assert (td_compat.has_generator(plain), td_compat.has_generator(own), td_compat.has_generator(keyed)) == (
        False, True, True
    )


@pytest.mark.parametrize(
    ("dist_class", "kind"),
    # a categorical distribution has no mean value to write: that pair is not a case
    [(dist, kind) for dist in (D.Normal, D.Categorical)
     for kind in (None, InteractionType.RANDOM, InteractionType.DETERMINISTIC, InteractionType.MODE,
                  InteractionType.MEAN)
     if not (dist is D.Categorical and kind is InteractionType.MEAN)],
)
def test_dist_sample_writes_what_the_module_writes(dist_class, kind):
    keys = ["loc", "scale"] if dist_class is D.Normal else ["logits"]
    module = ProbabilisticTensorDictModule(keys, ["x"], distribution_class=dist_class)
    params = {"loc": torch.randn(6, 2), "scale": torch.rand(6, 2) + 0.1} if dist_class is D.Normal else {
        "logits": torch.randn(6, 4)
    }
    td = TensorDict(params, batch_size=[6])
    with set_interaction_type(kind):
        torch.manual_seed(3)
        want = module(td.clone())["x"]
        torch.manual_seed(3)
        got = td_compat.dist_sample(module, module.get_dist(td), kind)
    assert torch.equal(got, want)


class _Joint(D.Normal):
    """A distribution drawing and scoring in one call, as TanhNormal does."""

    calls = 0

    def rsample_and_log_prob(self, sample_shape=()):
        type(self).calls += 1
        value = self.rsample(torch.Size(sample_shape))
        return value, self.log_prob(value)


def test_joint_sample_and_log_prob_is_what_the_module_uses():
    assert td_compat.joint_sample_and_log_prob(D.Normal(torch.zeros(2), torch.ones(2))) is None
    dist = _Joint(torch.zeros(2), torch.ones(2))
    joint = td_compat.joint_sample_and_log_prob(dist)
    torch.manual_seed(0)
    value, log_prob = joint(torch.Size(()))
    module = ProbabilisticTensorDictModule(["loc", "scale"], ["x"], distribution_class=_Joint, return_log_prob=True)
    before = _Joint.calls
    torch.manual_seed(0)
    with set_interaction_type(InteractionType.RANDOM):
        out = module(TensorDict(loc=torch.zeros(2), scale=torch.ones(2), batch_size=[]))
    assert _Joint.calls == before + 1  # the module draws through the same method
    assert torch.equal(out["x"], value) and torch.equal(out["x_log_prob"], log_prob)


# ------------------------------------------------------- no private name anywhere else
#: tensordict's private names rlkernel could be tempted to use; reach them through the
#: compatibility module instead.
PRIVATE_NAMES = frozenset({
    "_new_unsafe", "_tensordict", "_set_tuple", "_get_tuple", "_set_str", "_get_str", "_set_at_tuple",
    "_get_tuple_maybe_non_tensor", "_dist_sample", "_draw_dist_sample", "_get_joint_sample_and_log_prob",
    "_has_names", "_batch_size", "_kwargs", "_get_kwargs", "_select_before_return", "_requires_sample",
    "_generator", "_generator_key", "_last_module", "_module_iter", "_is_locked", "_is_shared", "_is_memmap",
    "_td_dim_names", "_erase_names", "_last_op", "_write_to_tensordict", "_call_module", "_source",
    "_write_key", "_resolve_generator", "_StringOnlyDict", "_unravel_key_to_tuple", "_zip_strict",
})
#: Names a class of rlkernel also uses for its own attributes: allowed on ``self``/``cls``.
OWN_TOO = frozenset({"_batch_size", "_kwargs", "_generator", "_source"})


_REFLECTION = frozenset({"getattr", "hasattr", "setattr", "delattr"})


def _sources() -> list[Path]:
    files = [*(ROOT / "rlkernel").rglob("*.py"), *ROOT.glob("plugins/*/src/**/*.py")]
    files += (ROOT / "benchmarks").rglob("*.py")
    return sorted(p for p in files if "_compat" not in p.relative_to(ROOT).parts)


def private_uses(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` for each use of a private tensordict name in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tensordict":
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append((node.lineno, f"from {node.module} import ..."))
            found += [(node.lineno, f"import of {a.name}") for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, f"import {a.name}")
                for a in node.names
                if a.name.split(".")[0] == "tensordict" and any(p.startswith("_") for p in a.name.split("."))
            ]
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES:
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if not (own and node.attr in OWN_TOO):
                found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _REFLECTION:
            name = node.args[1] if len(node.args) > 1 else None  # getattr(x, "_name", ...)
            if isinstance(name, ast.Constant) and name.value in PRIVATE_NAMES:
                found.append((node.lineno, f"{node.func.id}(..., {name.value!r})"))
    return sorted(found)


def test_the_detector_finds_each_kind_of_private_use():
    code = """
from tensordict._td import TensorDict
from tensordict.nn.probabilistic import _get_joint_sample_and_log_prob
import tensordict._C
td._tensordict
TensorDict._new_unsafe({}, batch_size=[])
module._dist_sample(dist)
getattr(seq, "_select_before_return", False)
other._batch_size
self._batch_size = 3
self.batch_size
"""
    assert [line for line, _ in private_uses(code)] == [2, 3, 4, 5, 6, 7, 8, 9]


def test_no_module_outside_the_compat_package_uses_a_private_tensordict_name():
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in _sources()
        for line, what in private_uses(path.read_text())
    ]
    assert not offenders, "use rlkernel._compat.tensordict instead of:\n" + "\n".join(offenders)
