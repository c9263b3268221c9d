"""``import rlkernel`` and the light CLI commands stay cheap: no torch, no plugin."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

ALLOWED_TOP_LEVEL = {"rlkernel", "pluggy", "importlib_metadata"}


def _modules_after(code: str) -> dict:
    probe = textwrap.dedent(
        f"""
        import sys, json
        before = set(sys.modules)
        {code}
        added = sorted(set(sys.modules) - before)
        print(json.dumps(added), file=sys.__stdout__)
        """
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_rlkernel_loads_no_torch_and_no_plugin() -> None:
    added = _modules_after("import rlkernel")
    top = {name.split(".")[0] for name in added}
    assert "torch" not in top and "tensordict" not in top
    third_party = {t for t in top - ALLOWED_TOP_LEVEL if t not in sys.stdlib_module_names and not t.startswith("_")}
    assert not third_party, f"import rlkernel pulled in {sorted(third_party)}"
    assert "rlkernel.builtins" not in added  # discovery has not happened


def test_cli_commands_do_not_import_torch() -> None:
    for argv in (["plugins"], ["list", "envs"]):
        added = _modules_after(
            f"import contextlib, io, rlkernel.cli; "
            f"contextlib.redirect_stdout(io.StringIO()).__enter__(); rlkernel.cli.main({argv!r})"
        )
        assert "torch" not in added, f"rlkernel {' '.join(argv)} imported torch"


def test_cli_version_and_unknown_kind() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "rlkernel.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("rlkernel 0.1.0")
    bad = subprocess.run([sys.executable, "-m", "rlkernel.cli", "list", "enviros"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "unknown registry kind 'enviros'" in bad.stderr and "envs" in bad.stderr
