"""A Minari dataset's ``metadata.json``: read, checked, and its spaces rebuilt.

Minari writes the dataset's spaces as JSON (``{"type": "Box", "dtype": "float32", "shape":
[4], "low": [...], "high": [...]}``; ``Discrete`` with ``n`` and ``start``; ``MultiDiscrete``
with ``nvec`` and ``start``; ``MultiBinary`` with ``n``; ``Dict`` and ``Tuple`` with
``subspaces``). :func:`space_from_json` rebuilds the gymnasium space without importing
Minari, and the specs come from :mod:`rlkernel_gym.spaces`, so a dataset's layout is the
one :class:`~rlkernel_gym.GymEnv` gives the same environment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from rlkernel.specs import Composite
from rlkernel_gym.datasets.errors import DatasetFormatError
from rlkernel_gym.spaces import Layout

__all__ = ["METADATA_FILE", "MinariMetadata", "read_metadata", "space_from_json"]

METADATA_FILE = "metadata.json"
_REQUIRED = ("total_episodes", "total_steps", "observation_space", "action_space")
spaces = gymnasium.spaces


@dataclass(frozen=True)
class MinariMetadata:
    """What a Minari dataset says about itself.

    Attributes:
        dataset_id: the id (``"cartpole/random-v0"``).
        data_path: the dataset's ``data`` folder.
        total_episodes, total_steps: the counts ``metadata.json`` declares (checked against
            the episodes when the data is read).
        data_format: Minari's storage format (rlkernel reads ``"hdf5"``).
        jpeg_encoding: whether image spaces may be stored as JPEG frames.
        observation_space, action_space: the gymnasium spaces.
        observation_spec, action_spec: the rlkernel specs of a row (no batch dims), keyed as
            in the replay buffer (``"observation"`` or the ``Dict`` entries; ``"action"``).
        observation_layout, action_layout: the :class:`~rlkernel_gym.spaces.Layout` of each
            space (its leaves: TensorDict key, place in the gymnasium value, spec, offset).
        env_spec: gymnasium's ``EnvSpec`` as a dict (``None`` if Minari could not store it).
        env_id: ``env_spec["id"]`` (``"CartPole-v1"``), or ``None``.
        minari_version: the Minari version that wrote the dataset, if recorded.
        raw: the whole ``metadata.json``.
    """

    dataset_id: str
    data_path: Path
    total_episodes: int
    total_steps: int
    data_format: str
    jpeg_encoding: bool
    observation_space: Any
    action_space: Any
    observation_spec: Composite
    action_spec: Composite
    observation_layout: Layout = field(repr=False)
    action_layout: Layout = field(repr=False)
    env_spec: dict[str, Any] | None
    env_id: str | None
    minari_version: str | None
    raw: dict[str, Any] = field(repr=False)


def _bad(path: Path, what: str) -> DatasetFormatError:
    return DatasetFormatError(f"{path}: {what}")


def space_from_json(desc: Any, *, where: str = "space") -> Any:
    """The gymnasium space Minari serialised as ``desc`` (a dict or its JSON string).

    >>> space_from_json('{"type": "Discrete", "dtype": "int64", "n": 3, "start": 1}')
    Discrete(3, start=1)
    """
    if isinstance(desc, str):
        desc = json.loads(desc)
    if not isinstance(desc, dict) or "type" not in desc:
        raise DatasetFormatError(f"{where}: expected a serialised space with a 'type', got {desc!r:.200}")
    kind = desc["type"]
    try:
        if kind == "Box":
            dtype = np.dtype(desc["dtype"])
            shape = tuple(int(s) for s in desc["shape"])
            low = np.array(desc["low"], dtype=dtype).reshape(shape)
            high = np.array(desc["high"], dtype=dtype).reshape(shape)
            return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
        if kind == "Discrete":
            return spaces.Discrete(int(desc["n"]), start=int(desc.get("start", 0)))
        if kind == "MultiDiscrete":
            dtype = np.dtype(desc.get("dtype", "int64"))
            return spaces.MultiDiscrete(np.array(desc["nvec"]), dtype=dtype, start=desc.get("start"))
        if kind == "MultiBinary":
            return spaces.MultiBinary(desc["n"])
        if kind == "Dict":
            subs = desc["subspaces"]
            return spaces.Dict({k: space_from_json(v, where=f"{where}[{k!r}]") for k, v in subs.items()})
        if kind == "Tuple":
            subs = desc["subspaces"]
            return spaces.Tuple(tuple(space_from_json(v, where=f"{where}[{i}]") for i, v in enumerate(subs)))
    except DatasetFormatError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise DatasetFormatError(
            f"{where}: malformed {kind} space {desc!r:.200} ({type(err).__name__}: {err})"
        ) from err
    raise DatasetFormatError(
        f"{where}: a {kind} space has no tensor layout in rlkernel; supported: Box, Discrete, "
        "MultiDiscrete, MultiBinary, Dict, Tuple"
    )


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        present = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
        raise _bad(path, f"missing: a Minari dataset's data folder holds {METADATA_FILE} (found: {present})")
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _bad(path, f"not readable as JSON ({type(err).__name__}: {err})") from err
    if not isinstance(content, dict):
        raise _bad(path, f"expected a JSON object, got {type(content).__name__}")
    return content


def read_metadata(dataset_id: str, data_path: Path) -> MinariMetadata:
    """Read and check ``<data_path>/metadata.json``.

    Raises :class:`DatasetFormatError` naming the file and the missing or malformed entry.
    """
    path = data_path / METADATA_FILE
    raw = _load_json(path)
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise _bad(
            path,
            f"missing entries {missing} (present: {sorted(raw)}); datasets written by Minari < 0.4 "
            "do not record their spaces and are not supported",
        )
    totals = {}
    for key in ("total_episodes", "total_steps"):
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _bad(path, f"{key} must be a non-negative integer, got {value!r}")
        totals[key] = value
    data_format = raw.get("data_format", "hdf5")
    if data_format != "hdf5":
        raise _bad(
            path,
            f"data_format is {data_format!r}; rlkernel reads Minari's 'hdf5' format only (convert the "
            "dataset with minari, e.g. by re-creating it with data_format='hdf5')",
        )
    stored_id = raw.get("dataset_id")
    if stored_id is not None and stored_id != dataset_id:
        raise _bad(path, f"dataset_id is {stored_id!r} but the dataset sits in the folder of {dataset_id!r}")
    obs_space = space_from_json(raw["observation_space"], where=f"{path}: observation_space")
    act_space = space_from_json(raw["action_space"], where=f"{path}: action_space")
    env_spec = _env_spec(raw.get("env_spec"))
    obs_layout = Layout(obs_space, None, (), None)
    act_layout = Layout(act_space, "action", (), None)
    return MinariMetadata(
        dataset_id=dataset_id,
        data_path=data_path,
        total_episodes=totals["total_episodes"],
        total_steps=totals["total_steps"],
        data_format=data_format,
        jpeg_encoding=bool(raw.get("jpeg_encoding", True)),
        observation_space=obs_space,
        action_space=act_space,
        observation_spec=obs_layout.spec,
        action_spec=act_layout.spec,
        observation_layout=obs_layout,
        action_layout=act_layout,
        env_spec=env_spec,
        env_id=env_spec.get("id") if env_spec else None,
        minari_version=raw.get("minari_version"),
        raw=raw,
    )


def _env_spec(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None
