"""The installed plugin: entry point, lazy registration, the CLI, and what the .so links."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

import pytest

import rlkernel
from rlkernel_cext.trees import MinTree, SumTree


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (plugins are discovered once per process)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RLKERNEL_DISABLE_PLUGINS", "RLKERNEL_KERNELS")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_entry_point_is_declared() -> None:
    found = {ep.name: ep.value for ep in metadata.entry_points(group="rlkernel")}
    assert found.get("cext") == "rlkernel_cext.plugin"


def test_kernels_are_registered() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # another plugin's failure is not this plugin's test
        kernels = rlkernel.registry.kernels
        assert "sum_tree:cpp" in kernels
    assert "min_tree:cpp" in kernels
    assert kernels["sum_tree:cpp"] is SumTree
    assert kernels["min_tree:cpp"] is MinTree
    info = next(p for p in rlkernel.registry.plugins if p.name == "cext")
    assert info.status == "loaded", info.error
    assert sorted(info.registered["kernels"]) == ["min_tree:cpp", "sum_tree:cpp"]
    assert info.distribution is not None and info.distribution.replace("_", "-") == "rlkernel-cext"


def test_registration_imports_no_compiled_module() -> None:
    out = run_python(
        "import json, sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import rlkernel\n"
        "assert 'sum_tree:cpp' in rlkernel.registry.kernels\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('rlkernel_cext'))))\n"
    )
    loaded = json.loads(out)
    assert "rlkernel_cext.plugin" in loaded  # the plugin did register ...
    assert "rlkernel_cext._trees" not in loaded  # ... without the compiled module
    assert "rlkernel_cext.trees" not in loaded


def test_lookup_then_use_imports_the_compiled_module() -> None:
    out = run_python(
        "import sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import torch, rlkernel\n"
        "tree = rlkernel.registry.kernels.make('sum_tree:cpp', 4, dtype=torch.float32)\n"
        "tree.update(torch.tensor([1]), torch.tensor([2.0]))\n"
        "print(tree.total(), 'rlkernel_cext._trees' in sys.modules)\n"
    )
    assert out.split() == ["2.0", "True"]


def test_cli_lists_the_plugin() -> None:
    script = Path(sys.executable).with_name("rlkernel")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "rlkernel.cli"]
    done = subprocess.run([*command, "plugins"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["cext"])
    assert "rlkernel" in header and "loaded" in header
    assert any("kernels:" in line and "sum_tree:cpp" in line and "min_tree:cpp" in line for line in lines)


def test_extension_does_not_link_libtorch() -> None:
    spec = importlib.util.find_spec("rlkernel_cext._trees")
    assert spec is not None and spec.origin is not None, "the compiled module is not built"
    ldd = shutil.which("ldd")
    if ldd is None:
        pytest.skip("ldd is not available")
    done = subprocess.run([ldd, spec.origin], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    linked = done.stdout.lower()
    assert "libtorch" not in linked and "libc10" not in linked, done.stdout
