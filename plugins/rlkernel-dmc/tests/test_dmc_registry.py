"""The ``dmc`` plugin: ``dmc:<domain>/<task>`` names, registered without importing dm_control."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede importing dm_control

import pytest

import rlkernel
from rlkernel.errors import UnknownNameError


def _run(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_discovery_does_not_import_dm_control() -> None:
    result = _run(
        """
        import json, sys, rlkernel
        status = {p.name: p.status for p in rlkernel.registry.plugins}.get("dmc")
        names = rlkernel.registry.envs.names()
        print(json.dumps({"status": status, "pattern": "dmc:*/*" in names,
                          "imported": "dm_control" in sys.modules or "mujoco" in sys.modules}))
        """
    )
    assert result == {"status": "loaded", "pattern": True, "imported": False}


def test_names_and_make_env() -> None:
    result = _run(
        """
        import json, rlkernel
        envs = rlkernel.registry.envs
        env = rlkernel.make_env("dmc:walker/walk", concat_observations=True)
        served = [n for n in envs.names(expand=True) if n.startswith("dmc:")]
        print(json.dumps({"in": "dmc:cartpole/swingup" in envs, "typo": "dmc:cartpole/swing" in envs,
                          "no_task": "dmc:cartpole" in envs, "type": type(env).__name__,
                          "obs": list(env.observation_spec["observation"].shape), "count": len(served)}))
        """
    )
    from dm_control import suite

    assert result == {
        "in": True, "typo": False, "no_task": False, "type": "DMControlEnv", "obs": [24],
        "count": len(suite.ALL_TASKS),
    }


def test_unknown_task_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError, match="dmc:cartpole/swingup"):
        rlkernel.make_env("dmc:cartpole/swingupp")


def test_the_listed_tasks_are_the_installed_suites() -> None:
    from dm_control import suite

    from rlkernel_dmc.registry_names import SUITE_TASKS

    assert SUITE_TASKS == tuple(f"{domain}/{task}" for domain, task in suite.ALL_TASKS)


def test_a_misspelt_name_is_answered_without_importing_dm_control() -> None:
    result = _run(
        """
        import json, sys, rlkernel
        try:
            rlkernel.registry.envs.entry("dmc:cartpol/swingup")
        except rlkernel.UnknownNameError as err:
            message = str(err)
        print(json.dumps({"message": message, "imported": "dm_control" in sys.modules}))
        """
    )
    assert result["message"].startswith("unknown env name 'dmc:cartpol/swingup'; closest registered names: "
                                        "dmc:cartpole/swingup")
    assert result["imported"] is False
