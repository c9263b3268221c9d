"""Where the reference libraries live: their own virtualenvs, never ours.

``nox -s bench`` builds ``.nox/reference`` (torch 2.13.0, TorchRL 0.14, Stable-Baselines3,
gymnasium) and points ``RLKERNEL_TORCHRL_PYTHON`` at its interpreter. Benchmarks call that
interpreter in a subprocess, alternating rounds with ours, and say so when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = (ROOT / ".nox" / "reference" / "bin" / "python",)


def torchrl_python() -> str:
    """The interpreter of the reference environment (may not exist: callers check)."""
    explicit = os.environ.get("RLKERNEL_TORCHRL_PYTHON")
    if explicit:
        return explicit
    for candidate in CANDIDATES:
        if candidate.exists():
            return str(candidate)
    return str(CANDIDATES[0])
