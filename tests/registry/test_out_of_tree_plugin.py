"""A real out-of-tree plugin: built, installed into a folder, discovered in a subprocess.

The plugin is ``docs/plugin-template`` (the one ``docs/plugins.md`` walks through). Broken
plugins are written next to it. Everything runs in subprocesses whose ``PYTHONPATH`` holds
the installation folder, so the test environment itself is never modified.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "docs" / "plugin-template"


def _write_plugin(folder: Path, dist: str, package: str, entry: str, plugin_source: str) -> Path:
    src = folder / dist
    (src / "src" / package).mkdir(parents=True)
    (src / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "0.0.1"

            [project.entry-points.rlkernel]
            {entry} = "{package}.plugin"

            [tool.setuptools.packages.find]
            where = ["src"]
            """
        )
    )
    (src / "src" / package / "__init__.py").write_text("")
    (src / "src" / package / "plugin.py").write_text(textwrap.dedent(plugin_source))
    return src


BROKEN_IMPORT = """
    raise ImportError("this plugin needs the library 'quantum_physics' which is not installed")
"""

FUTURE_API = """
    import rlkernel
    RLKERNEL_API_VERSION = 99

    @rlkernel.hookimpl
    def rlkernel_register(registry):
        registry.envs.register("future:Env-v0", "os:getcwd")
"""

RAISING_HOOK = """
    import rlkernel
    RLKERNEL_API_VERSION = 1

    @rlkernel.hookimpl
    def rlkernel_register(registry):
        registry.envs.register("half:Registered-v0", "os:getcwd")
        raise RuntimeError("registration blew up halfway")
"""

COMMANDS = """
    import rlkernel
    RLKERNEL_API_VERSION = 1

    @rlkernel.hookimpl
    def rlkernel_add_commands(commands):
        hello = commands.add_parser("hello", help="say hello")
        hello.add_argument("--name", default="world")
        hello.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)
"""

BROKEN_COMMANDS = """
    import rlkernel
    RLKERNEL_API_VERSION = 1

    @rlkernel.hookimpl
    def rlkernel_add_commands(commands):
        commands.add_parser("half-added")
        raise RuntimeError("adding commands blew up")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install the template plugin and three broken ones into one folder."""
    work = tmp_path_factory.mktemp("plugins")
    target = work / "site"
    template = work / "rlkernel-example"
    shutil.copytree(TEMPLATE, template, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    sources = [
        template,
        _write_plugin(work, "rlkernel-broken", "rlkernel_broken", "broken", BROKEN_IMPORT),
        _write_plugin(work, "rlkernel-future", "rlkernel_future", "future", FUTURE_API),
        _write_plugin(work, "rlkernel-half", "rlkernel_half", "half", RAISING_HOOK),
        _write_plugin(work, "rlkernel-hello", "rlkernel_hello", "hello", COMMANDS),
        _write_plugin(work, "rlkernel-badcmd", "rlkernel_badcmd", "badcmd", BROKEN_COMMANDS),
    ]
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *isolation, "--target", str(target),
         *map(str, sources)],
        check=True,
        capture_output=True,
    )
    return target


def run(site: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), **env}
    environ.pop("RLKERNEL_DISABLE_PLUGINS", None) if "RLKERNEL_DISABLE_PLUGINS" not in env else None
    return subprocess.run(
        [sys.executable, "-W", "always", "-c", textwrap.dedent(code)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_discovery_lists_the_plugin_with_its_distribution(site: Path) -> None:
    out = run(site, "import sys, rlkernel.cli; sys.exit(rlkernel.cli.main(['plugins']))")
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("example"))
    assert "rlkernel-example 0.1.0" in line and "loaded" in line
    assert "envs: example:RandomWalk-v0" in out.stdout


def test_factory_module_is_imported_only_when_used(site: Path) -> None:
    out = run(
        site,
        """
        import sys, rlkernel
        assert "example:RandomWalk-v0" in rlkernel.registry.envs
        assert "rlkernel_example.plugin" in sys.modules
        assert "rlkernel_example.envs" not in sys.modules, "registration imported the backend"
        env = rlkernel.make_env("example:RandomWalk-v0", size=2)
        assert "rlkernel_example.envs" in sys.modules
        td = env.rollout(10)
        print("steps", td.batch_size[0])
        """,
    )
    assert out.returncode == 0, out.stderr
    assert "steps" in out.stdout


def test_broken_plugins_are_skipped_with_one_warning_each_and_reported(site: Path) -> None:
    out = run(
        site,
        """
        import rlkernel
        env = rlkernel.make_env("example:RandomWalk-v0")   # the rest keeps working
        print("still works", env.rollout(3).batch_size)
        """,
    )
    assert out.returncode == 0, out.stderr
    assert "still works" in out.stdout
    warnings = [ln for ln in out.stderr.splitlines() if "PluginWarning" in ln]
    assert len(warnings) == 3, out.stderr
    assert any("'broken'" in w and "quantum_physics" in w for w in warnings)
    assert any("'future'" in w and "API version 99" in w for w in warnings)
    assert any("'half'" in w and "registration blew up halfway" in w for w in warnings)

    report = run(site, "import sys, rlkernel.cli; sys.exit(rlkernel.cli.main(['plugins']))")
    text = report.stdout
    assert "broken" in text and "failed" in text and "quantum_physics" in text
    assert "rlkernel-broken 0.0.1" in text
    assert "needs rlkernel API version 99" in text


def test_a_failed_registration_is_withdrawn(site: Path) -> None:
    out = run(
        site,
        """
        import warnings, rlkernel
        warnings.simplefilter("ignore")
        print("half:Registered-v0" in rlkernel.registry.envs)
        """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_disable_plugins_by_name(site: Path) -> None:
    out = run(
        site,
        """
        import rlkernel
        info = {p.name: p.status for p in rlkernel.registry.plugins}
        print(info["example"], info["broken"], info["core"])
        try:
            rlkernel.make_env("example:RandomWalk-v0")
        except rlkernel.UnknownNameError as err:
            print("error:", err)
        """,
        RLKERNEL_DISABLE_PLUGINS="example,broken,future,half",
    )
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first == "disabled disabled loaded"
    assert second.startswith("error: unknown env name 'example:RandomWalk-v0'")
    assert "PluginWarning" not in out.stderr


def test_disable_all_keeps_the_core(site: Path) -> None:
    out = run(
        site,
        "import rlkernel; print(sorted((p.name, p.status) for p in rlkernel.registry.plugins))",
        RLKERNEL_DISABLE_PLUGINS="all",
    )
    assert out.returncode == 0, out.stderr
    assert "('core', 'loaded')" in out.stdout
    assert "('example', 'disabled')" in out.stdout


def test_a_plugin_adds_a_command_and_a_broken_one_is_reported(site: Path) -> None:
    out = run(site, "import sys, rlkernel.cli; sys.exit(rlkernel.cli.main(['hello', '--name', 'plugins']))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hello plugins"
    assert "plugin 'badcmd' could not add its commands: RuntimeError: adding commands blew up" in out.stderr
    half = run(site, "import sys, rlkernel.cli; sys.exit(rlkernel.cli.main(['half-added']))")
    assert half.returncode == 2 and "invalid choice: 'half-added'" in half.stderr  # withdrawn with its plugin
    gone = run(site, "import sys, rlkernel.cli; sys.exit(rlkernel.cli.main(['hello']))",
               RLKERNEL_DISABLE_PLUGINS="hello")
    assert gone.returncode == 2 and "invalid choice: 'hello'" in gone.stderr
