"""The ``gym`` plugin: found by discovery, registers ``gym:*`` without importing gymnasium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

# An unknown-name lookup lists every plugin's names, which may import dm_control (rlkernel-dmc):
# give it a headless rendering backend as the repository's test sessions do.
os.environ.setdefault("MUJOCO_GL", "egl")

import pytest

import rlkernel
from rlkernel.errors import UnknownNameError


def _run(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_discovery_and_listing_do_not_import_gymnasium() -> None:
    result = _run(
        """
        import contextlib, io, json, sys
        import rlkernel, rlkernel.cli
        plugins = {p.name: p.status for p in rlkernel.registry.plugins}
        names = rlkernel.registry.envs.names()
        with contextlib.redirect_stdout(io.StringIO()) as shown:
            rlkernel.cli.main(["plugins"])
        print(json.dumps({"status": plugins.get("gym"), "names": names,
                          "cli": shown.getvalue(), "gymnasium": "gymnasium" in sys.modules}))
        """
    )
    assert result["status"] == "loaded"
    assert "gym:*" in result["names"]
    assert "gym:*" in result["cli"]
    assert result["gymnasium"] is False


def test_membership_runs_the_names_provider_and_make_env_builds() -> None:
    result = _run(
        """
        import json, rlkernel
        envs = rlkernel.registry.envs
        env = rlkernel.make_env("gym:CartPole-v1", num_envs=8)
        td = env.rollout(5, break_when_any_done=False)
        print(json.dumps({"in": "gym:CartPole-v1" in envs, "typo": "gym:CartPol-v1" in envs,
                          "batch": list(td.batch_size), "type": type(env).__name__,
                          "expanded": "gym:Pendulum-v1" in envs.names(expand=True)}))
        """
    )
    assert result == {"in": True, "typo": False, "batch": [8, 5], "type": "GymEnv", "expanded": True}


def test_unknown_gym_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError, match="gym:CartPole-v1"):
        rlkernel.make_env("gym:CartPol-v1")


def test_ids_registered_later_with_gymnasium_are_served() -> None:
    import rlkernel_gym_testenvs as testenvs

    env = rlkernel.make_env(f"gym:{testenvs.DICT_ID}")
    assert "position" in env.observation_keys
