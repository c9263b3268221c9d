"""The core's answers about this plugin's names: disabled (not missing), and suggestions that expand
only the ``gym`` namespace (in a fresh interpreter each)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


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


def test_a_disabled_plugin_is_reported_as_disabled_not_missing() -> None:
    out = run(MAKE.format(name="gym:CartPole-v1"), RLKERNEL_DISABLE_PLUGINS="gym")
    assert out.returncode == 0, out.stderr
    assert "rlkernel-gym provides it and is installed, but its plugin 'gym' is disabled by RLKERNEL_DISABLE_PLUGINS" \
        in out.stdout


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
