"""Checkpoint files: random-number-generator states, atomic saving, safe loading.

A checkpoint is one file written by ``torch.save`` and read by ``torch.load(...,
weights_only=True)``: it holds only tensors, numbers, strings, lists, tuples and dicts, so
loading it cannot run code. The RNG states of torch, numpy and Python's ``random`` are
stored as such values (numpy's state array becomes a tensor).
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlkernel_algos.trainers.hooks import TrainerError

__all__ = [
    "CHECKPOINT_FORMAT",
    "checkpoint_path",
    "get_rng_state",
    "latest_checkpoint",
    "load_checkpoint_file",
    "save_checkpoint_file",
    "seed_everything",
    "set_rng_state",
]

CHECKPOINT_FORMAT = "rlkernel_algos.trainer.checkpoint"
_NAME = re.compile(r"checkpoint-(\d+)\.pt\Z")


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python's ``random`` with ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TrainerError(f"seed must be an int, got {seed!r}")
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def get_rng_state() -> dict[str, Any]:
    """The states of torch's, numpy's and Python's global generators, as safe-to-load values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state(
        (npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))


def checkpoint_path(directory: str | os.PathLike[str], frames: int) -> Path:
    """``directory/checkpoint-<frames>.pt`` (frames zero-padded so names sort in order)."""
    return Path(directory) / f"checkpoint-{frames:012d}.pt"


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """The checkpoint with the most frames in ``directory`` (``None`` when there is none)."""
    folder = Path(directory)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return max(found)[1] if found else None


def save_checkpoint_file(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` to ``path`` atomically (a temporary file, then a rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    os.replace(tmp, target)
    return target


def load_checkpoint_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; a clear error if it is not one."""
    source = Path(path)
    if source.is_dir():
        found = latest_checkpoint(source)
        if found is None:
            raise TrainerError(f"no checkpoint-*.pt file in the folder {source}")
        source = found
    if not source.is_file():
        raise TrainerError(f"checkpoint {source} does not exist")
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as err:
        raise TrainerError(f"cannot read the checkpoint {source}: {err}") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainerError(f"{source} is not a checkpoint written by rlkernel_algos.trainers (TrainingLoop, Trainer)")
    return state
