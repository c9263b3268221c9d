"""Unit tests of the named registries (in-process, no installed plugin needed)."""

from __future__ import annotations

import sys
import types

import pytest
import torch

import rlkernel
from rlkernel.errors import PluginError, RegistryError, UnknownNameError
from rlkernel.registries import NamedRegistry, Registry


@pytest.fixture
def registry() -> Registry:
    return Registry(discover=False)


def test_callable_and_lazy_factories(registry: Registry) -> None:
    registry.losses.register("sum", sum)
    registry.losses.register("join", "os.path:join")
    assert registry.losses["sum"]([1, 2]) == 3
    assert registry.losses["join"]("a", "b").endswith("b")
    assert sorted(registry.losses) == ["join", "sum"]
    assert len(registry.losses) == 2


def test_lazy_factory_is_not_imported_at_registration(registry: Registry, tmp_path, monkeypatch) -> None:
    (tmp_path / "heavy_backend_for_test.py").write_text("LOADED = True\ndef make():\n    return 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.envs.register("heavy:Env-v0", "heavy_backend_for_test:make")
    assert "heavy:Env-v0" in registry.envs
    assert "heavy_backend_for_test" not in sys.modules
    assert registry.envs.make("heavy:Env-v0") == 42
    assert "heavy_backend_for_test" in sys.modules


def test_pattern_passes_the_matched_part(registry: Registry) -> None:
    registry.envs.register("echo:*", lambda name, suffix="": name + suffix)
    assert registry.envs.make("echo:CartPole-v1", suffix="!") == "CartPole-v1!"
    assert "echo:anything" in registry.envs
    assert "other:anything" not in registry.envs


def test_pattern_with_a_names_provider_is_exact(registry: Registry) -> None:
    registry.envs.register("zoo:*", lambda name: name, names=lambda: ["zoo:Lion-v0", "zoo:Tiger-v1"])
    assert "zoo:Lion-v0" in registry.envs
    assert "zoo:Lino-v0" not in registry.envs
    with pytest.raises(UnknownNameError, match=r"zoo:Lion-v0"):
        registry.envs["zoo:Lino-v0"]
    assert registry.envs.names(expand=True) == ["zoo:Lion-v0", "zoo:Tiger-v1"]
    assert registry.envs.names() == ["zoo:*"]


def test_exact_name_wins_over_pattern(registry: Registry) -> None:
    registry.envs.register("gym:*", lambda name: ("pattern", name))
    registry.envs.register("gym:Special-v0", lambda: "exact")
    assert registry.envs.make("gym:Special-v0") == "exact"
    assert registry.envs.make("gym:Other-v0") == ("pattern", "Other-v0")


def test_unknown_name_lists_the_closest(registry: Registry) -> None:
    for name in ("gym:CartPole-v1", "gym:Pendulum-v1", "dmc:cartpole/swingup"):
        registry.envs.register(name, dict)
    with pytest.raises(UnknownNameError) as err:
        registry.envs["gym:CartPol-v1"]
    message = str(err.value)
    assert "unknown env name 'gym:CartPol-v1'" in message
    assert "gym:CartPole-v1" in message
    assert isinstance(err.value, KeyError) and isinstance(err.value, rlkernel.RLKernelError)


def test_unknown_name_in_an_empty_registry_says_so(registry: Registry) -> None:
    with pytest.raises(UnknownNameError, match="nothing is registered in losses"):
        registry.losses["ppo"]


def test_duplicate_needs_replace(registry: Registry) -> None:
    registry.algos.register("ppo", dict)
    with pytest.raises(RegistryError, match="'ppo' is already registered"):
        registry.algos.register("ppo", list)
    registry.algos.register("ppo", list, replace=True)
    assert registry.algos["ppo"] is list


@pytest.mark.parametrize(
    ("name", "factory", "fragment"),
    [
        ("", dict, "non-empty string"),
        ("x", 3, "must be a callable or a 'module:attr' string"),
        ("x", "no_colon_here", "'package.module:attr'"),
    ],
)
def test_bad_registrations(registry: Registry, name, factory, fragment) -> None:
    with pytest.raises(RegistryError, match=fragment):
        registry.envs.register(name, factory)


def test_broken_lazy_target_names_module_and_plugin(registry: Registry) -> None:
    registry.envs.register("ghost:Env-v0", "rlkernel_no_such_module_xyz:Env")
    registry.envs.register("attr:Env-v0", "os:no_such_attribute")
    with pytest.raises(PluginError, match="cannot import 'rlkernel_no_such_module_xyz'"):
        registry.envs["ghost:Env-v0"]
    with pytest.raises(PluginError, match="has no attribute 'no_such_attribute'"):
        registry.envs["attr:Env-v0"]


def test_unknown_kind(registry: Registry) -> None:
    with pytest.raises(UnknownNameError, match="did you mean losses"):
        registry["loses"]


def test_unregister(registry: Registry) -> None:
    registry.envs.register("a:b", dict)
    registry.envs.unregister("a:b")
    assert "a:b" not in registry.envs
    with pytest.raises(UnknownNameError):
        registry.envs.unregister("a:b")


def test_in_process_plugin_goes_through_the_hook(registry: Registry) -> None:
    plugin = types.ModuleType("my_inline_plugin")
    plugin.RLKERNEL_API_VERSION = 1

    @rlkernel.hookimpl
    def rlkernel_register(registry):
        registry.loggers.register("inline:csv", dict)

    plugin.rlkernel_register = rlkernel_register
    info = registry.register_plugin(plugin, name="inline")
    assert info.ok and info.registered == {"loggers": ["inline:csv"]}
    assert "inline:csv" in registry.loggers


def test_plugin_with_an_unknown_hook_is_refused(registry: Registry) -> None:
    plugin = types.ModuleType("typo_plugin")
    plugin.RLKERNEL_API_VERSION = 1

    @rlkernel.hookimpl
    def rlkernel_regster(registry):  # misspelled on purpose
        pass

    plugin.rlkernel_regster = rlkernel_regster
    with pytest.warns(rlkernel.plugin_loader.PluginWarning, match="unknown hook"):
        info = registry.register_plugin(plugin, name="typo")
    assert info.status == "failed" and "rlkernel_regster" in info.error


def test_plugin_without_api_version_is_refused_with_the_fix(registry: Registry) -> None:
    plugin = types.ModuleType("old_plugin")
    with pytest.warns(rlkernel.plugin_loader.PluginWarning, match="RLKERNEL_API_VERSION = 1"):
        info = registry.register_plugin(plugin, name="old")
    assert info.status == "failed"


def test_process_wide_registry_has_the_core_builtins() -> None:
    assert "testing:counting" in rlkernel.registry.envs
    core = next(p for p in rlkernel.registry.plugins if p.name == "core")
    assert core.ok and "testing:counting" in core.registered["envs"]
    env = rlkernel.make_env("testing:counting", max_count=2)
    assert env.rollout(5, policy=lambda td: td.set("action", torch.ones(1))).batch_size == (2,)


def test_named_registry_without_owner_works_standalone() -> None:
    reg = NamedRegistry("things")
    reg.register("t:*", "builtins:str")
    assert reg["t:x"]() == "x"
