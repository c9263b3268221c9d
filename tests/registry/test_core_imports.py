"""The core imports no plugin: every ``import`` under ``rlkernel/`` is read from its syntax tree."""

from __future__ import annotations

import ast
from pathlib import Path

import rlkernel

CORE = Path(rlkernel.__file__).parent


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every import statement of the file at ``path``, however nested."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def test_the_reader_sees_every_form_of_import(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "import rlkernel_gym\nfrom rlkernel_algos.cli import x\n"
        "def f():\n    import importlib\n    return importlib.import_module('rlkernel_dmc.envs')\n"
    )
    assert [m for _, m in imported_modules(source)] == ["rlkernel_gym", "rlkernel_algos.cli", "importlib",
                                                       "rlkernel_dmc.envs"]


def test_no_core_module_imports_a_plugin() -> None:
    modules = sorted(CORE.rglob("*.py"))
    assert len(modules) > 50  # the whole core was read
    offenders = [
        f"{path.relative_to(CORE.parent)}:{line}: {module}"
        for path in modules
        for line, module in imported_modules(path)
        if module.split(".")[0].startswith("rlkernel_")
    ]
    assert not offenders, "the core imports a plugin package:\n" + "\n".join(offenders)
