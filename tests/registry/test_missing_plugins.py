"""A name whose plugin is absent says which distribution to install.

That an installed plugin switched off is reported as disabled, not missing, is tested with
the plugins that provide the names (``plugins/rlkernel-gym/tests/test_gym_plugin_hints.py``,
``plugins/rlkernel-algos/tests/test_algos_plugin_hints.py``)."""

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


@pytest.mark.parametrize(("kind", "item"), [("envs", "env"), ("losses", "loss"), ("algos", "algo")])
def test_messages_name_one_item_of_a_kind(kind: str, item: str) -> None:
    assert Registry(discover=False)[kind].item_name == item


def test_provider_hint_without_the_distribution() -> None:
    assert provider_hint("rlkernel-marl", Registry(discover=False)) == (
        "rlkernel-marl provides it and is not installed: pip install rlkernel-marl"
    )
