"""Every workflow of the repository: ``nox -s tests``, ``lint``, ``bench``, ``demo``, ``learn``,
and ``nox -t alone`` (each distribution installed and tested alone).

Each session installs the pinned CPU build of torch first (a bare ``torch`` requirement
would pull a multi-GB CUDA build), then the core and every plugin under ``plugins/``,
all under ``constraints.txt``. ``nox -t ci`` is what CI runs: lint, the whole suite with
everything installed, then each distribution alone.
"""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).parent
TORCH = "torch==2.13.0"
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))
PLUGINS = sorted(str(p.parent) for p in (ROOT / "plugins").glob("*/pyproject.toml"))
ENV_DEPS = ("gymnasium[classic-control,mujoco,box2d]",)  # what the environment plugins' tests drive
TEST_DEPS = (
    "pytest",
    "hypothesis",
    "minari[create,hdf5]>=0.5,<0.6",
    "h5py",
    "pillow",
    "tensorboard",
    "wandb",
)

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


def install_stack(session: nox.Session, *extra: str) -> None:
    """torch first, then the core, every plugin and ``extra``, all constrained."""
    session.install(TORCH)
    session.install(*CONSTRAINTS, "-e", str(ROOT), *[x for p in PLUGINS for x in ("-e", p)], *extra)


@nox.session(tags=["ci"])
def tests(session: nox.Session) -> None:
    """Install everything and run the whole test suite (core and plugins)."""
    install_stack(session, *ENV_DEPS, *TEST_DEPS)
    session.env.setdefault("MUJOCO_GL", "egl")
    session.env.setdefault("OMP_NUM_THREADS", "1")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session(tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff on the whole repository."""
    session.install(*CONSTRAINTS, "ruff")
    session.run("ruff", "check", ".")


#: Each distribution alone: its folder and its tests. Only the distribution, the core and its
#: ``test`` extra are installed, so a test that needs something else must say so
#: (``pytest.importorskip`` for an optional backend), and a missing dependency shows.
ALONE = {
    "core": (ROOT, ("tests",)),
    **{Path(p).name.removeprefix("rlkernel-"): (Path(p), (str(Path(p, "tests").relative_to(ROOT)),)) for p in PLUGINS},
}


def _alone_session(name: str, folder: Path, test_paths: tuple[str, ...]) -> None:
    def alone(session: nox.Session) -> None:
        session.install(TORCH)
        packages = ["-e", f"{ROOT}[test]"] if folder == ROOT else ["-e", f"{ROOT}[test]", "-e", f"{folder}[test]"]
        session.install(*CONSTRAINTS, *packages)
        session.env.setdefault("MUJOCO_GL", "egl")
        session.env.setdefault("OMP_NUM_THREADS", "1")
        session.run("pytest", *(session.posargs or ["-q", *test_paths]))

    alone.__doc__ = f"{name} installed alone (with its test extra) and its own tests."
    nox.session(name=f"alone-{name}", tags=["alone", "ci"])(alone)


for _name, (_folder, _tests) in ALONE.items():
    _alone_session(_name, _folder, _tests)


REFERENCE = ROOT / ".nox" / "reference"
REFERENCE_PACKAGES = (
    "torchrl==0.14.1", "tensordict==0.14.3", "gymnasium[classic-control]==1.4.0", "stable-baselines3==2.9.2"
)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the references, in one run; ``-- --write`` stores docs/benchmarks.json.

    TorchRL 0.14 and Stable-Baselines3 live in their own virtualenv (``.nox/reference``), so
    their pins never touch ours; the benchmarks call it in subprocesses, alternating rounds.
    """
    install_stack(session, *ENV_DEPS)
    python = REFERENCE / "bin" / "python"
    if not python.exists():
        session.run("python", "-m", "venv", str(REFERENCE), external=True)
        session.run(str(python), "-m", "pip", "install", "-q", TORCH, external=True)
        session.run(str(python), "-m", "pip", "install", "-q", *REFERENCE_PACKAGES, external=True)
    session.env["RLKERNEL_TORCHRL_PYTHON"] = str(python)
    session.env.setdefault("OMP_NUM_THREADS", "1")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: train PPO on CartPole-v1 with a progress bar, then evaluate it.

    Writes ``runs/<algo>-<env>-<seed>-<time>/`` (config, metrics CSV, checkpoints and
    ``learning_curve.png``) and prints the deterministic policy's return over 10 episodes.
    """
    install_stack(session, *ENV_DEPS)
    session.env.setdefault("OMP_NUM_THREADS", "1")
    session.run("rlkernel", "plugins")
    session.run("rlkernel", "train", "--run-dir", "runs/demo", *session.posargs)
    session.run("rlkernel", "eval", "runs/demo", "--episodes", "10")


@nox.session
def learn(session: nox.Session) -> None:
    """The full learning runs of every recipe, 3 seeds each (2 at once); writes the table in docs/results.md."""
    install_stack(session, *ENV_DEPS)
    session.env.setdefault("OMP_NUM_THREADS", "1")
    session.env.setdefault("MUJOCO_GL", "egl")
    session.run("python", "-m", "rlkernel_algos.recipes.learn", "--jobs", "2", "--write", "docs/results.md",
                *session.posargs)


@nox.session(name="tests_upper")
def tests_upper(session: nox.Session) -> None:
    """The core's tests with each declared dependency range at its upper end.

    Everything is installed without ``constraints.txt`` and with ``--upgrade-strategy
    eager``, so pip takes the newest release this machine can install inside each range the
    core and the plugins declare (``tensordict>=0.15,<0.16`` gives the newest 0.15.x). torch
    stays the pinned CPU build: newer torch wheels on PyPI are CUDA builds of several GB. The
    versions in use are printed before the tests; ``-- PYTEST ARGS`` replaces ``-q tests``.
    """
    pinned_torch = Path(session.create_tmp()) / "torch.txt"
    pinned_torch.write_text(TORCH + "\n")
    session.install(TORCH)
    session.install(
        "--upgrade", "--upgrade-strategy", "eager", "-c", str(pinned_torch),
        "-e", f"{ROOT}[test]", *[x for p in PLUGINS for x in ("-e", p)], *ENV_DEPS,
    )
    session.run("python", "-c", "import importlib.metadata as m; print({d: m.version(d) for d in "
                "('torch', 'tensordict', 'pluggy', 'cloudpickle', 'gymnasium')})")
    session.env.setdefault("MUJOCO_GL", "egl")
    session.env.setdefault("OMP_NUM_THREADS", "1")
    session.run("pytest", *(session.posargs or ["-q", "tests"]))
