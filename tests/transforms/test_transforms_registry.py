"""The transforms are registered by name, lazily, and ``import rlkernel.transforms`` is cheap."""

from __future__ import annotations

import json
import subprocess
import sys

import rlkernel.transforms as transforms
from rlkernel.registries import Registry
from rlkernel.transforms import TRANSFORM_NAMES, Transform


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_is_cheap() -> None:
    found = _run(
        "import sys, json; import rlkernel.transforms as t; "
        "print(json.dumps({'torch': 'torch' in sys.modules, 'names': len(t.TRANSFORM_NAMES)}))"
    )
    assert found == {"torch": False, "names": len(TRANSFORM_NAMES)}


def test_every_exported_transform_is_named() -> None:
    exported = {n for n in transforms.__all__ if isinstance(getattr(transforms, n), type)
                and issubclass(getattr(transforms, n), Transform) and n != "Transform"}
    assert exported == set(TRANSFORM_NAMES)


def test_builtins_register_every_transform_lazily() -> None:
    from rlkernel import builtins

    reg = Registry(discover=False)
    builtins.rlkernel_register(reg)
    for name in TRANSFORM_NAMES:
        assert name in reg.transforms, f"{name} is not registered"
        assert reg.transforms[name] is getattr(transforms, name)
    found = _run(
        "import sys, json, rlkernel; names = rlkernel.registry.transforms.names(); "
        "print(json.dumps({'has': 'ObservationNorm' in names, "
        "'loaded': 'rlkernel.transforms.normalization' in sys.modules}))"
    )
    assert found == {"has": True, "loaded": False}
