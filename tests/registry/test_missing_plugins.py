"""A name or command whose plugin is absent says which distribution to install, or that it is disabled."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from rlkernel.plugin_hints import provider_hint
from rlkernel.registries import Registry


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "RLKERNEL_DISABLE_PLUGINS"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**environ, **env},
                          capture_output=True, text=True, timeout=120)


MAKE = """
    import rlkernel
    try:
        rlkernel.make_env({name!r})
    except rlkernel.UnknownNameError as err:
        print(err)
"""


def test_a_namespace_of_a_distribution_that_is_not_installed() -> None:
    out = run(MAKE.format(name="vmas:balance"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        "unknown env name 'vmas:balance': the namespace 'vmas' is not registered; rlkernel-marl provides it and is "
        "not installed: pip install rlkernel-marl"
    )


def test_a_disabled_plugin_is_reported_as_disabled_not_missing() -> None:
    out = run(MAKE.format(name="gym:CartPole-v1"), RLKERNEL_DISABLE_PLUGINS="gym")
    assert out.returncode == 0, out.stderr
    assert "rlkernel-gym provides it and is installed, but its plugin 'gym' is disabled by RLKERNEL_DISABLE_PLUGINS" \
        in out.stdout


def test_a_command_of_a_disabled_plugin() -> None:
    out = run("import sys, rlkernel.cli; sys.exit(rlkernel.cli.main(['train']))", RLKERNEL_DISABLE_PLUGINS="all")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "rlkernel: error: no installed plugin adds the command 'train': rlkernel-algos provides it and is installed, "
        "but its plugin 'algos' is disabled by RLKERNEL_DISABLE_PLUGINS"
    )


def test_a_misspelt_name_expands_only_its_own_namespace() -> None:
    out = run(
        """
        import sys, rlkernel
        try:
            rlkernel.make_env("gym:CartPol-v1")
        except rlkernel.UnknownNameError as err:
            print(err)
        print(sorted(m for m in ("dm_control", "mujoco", "gymnasium") if m in sys.modules))
        """
    )
    assert out.returncode == 0, out.stderr
    message, imported = out.stdout.strip().splitlines()
    assert message.startswith("unknown env name 'gym:CartPol-v1'; closest registered names: gym:CartPole-v1")
    assert imported == "['gymnasium']"  # dm_control (seconds to import) is not touched


@pytest.mark.parametrize(("kind", "item"), [("envs", "env"), ("losses", "loss"), ("algos", "algo")])
def test_messages_name_one_item_of_a_kind(kind: str, item: str) -> None:
    assert Registry(discover=False)[kind].item_name == item


def test_provider_hint_without_the_distribution() -> None:
    assert provider_hint("rlkernel-marl", Registry(discover=False)) == (
        "rlkernel-marl provides it and is not installed: pip install rlkernel-marl"
    )
