"""rlkernel-algos knows no environment backend: it imports no simulator and no env plugin."""

from __future__ import annotations

import ast
from pathlib import Path

import rlkernel_algos

PACKAGE = Path(rlkernel_algos.__file__).parent
BACKENDS = {"gymnasium", "gym", "dm_control", "mujoco", "pettingzoo", "mpe2", "vmas", "minari",
            "rlkernel_gym", "rlkernel_dmc", "rlkernel_marl"}


def test_algos_imports_no_env_backend_or_env_plugin() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 30
    offenders = []
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            offenders += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {name}"
                          for name in names if name.split(".")[0] in BACKENDS]
    assert not offenders, "rlkernel-algos imports an env backend:\n" + "\n".join(offenders)
