"""The core's CLI answer when this plugin's commands are switched off (in a fresh interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "RLKERNEL_DISABLE_PLUGINS"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**environ, **env},
                          capture_output=True, text=True, timeout=120)


def test_a_command_of_a_disabled_plugin() -> None:
    out = run("import sys, rlkernel.cli; sys.exit(rlkernel.cli.main(['train']))", RLKERNEL_DISABLE_PLUGINS="all")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "rlkernel: error: no installed plugin adds the command 'train': rlkernel-algos provides it and is installed, "
        "but its plugin 'algos' is disabled by RLKERNEL_DISABLE_PLUGINS"
    )
