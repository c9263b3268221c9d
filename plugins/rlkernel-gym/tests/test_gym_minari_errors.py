"""Bad input to the Minari reader: each case is a clear rlkernel error naming what is wrong.

A pristine CartPole dataset is written once by Minari's ``DataCollector``; each test
copies it and breaks the copy in one way.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import gymnasium
import numpy as np
import pytest

minari = pytest.importorskip("minari")
h5py = pytest.importorskip("h5py")
pytest.importorskip("jax")  # Minari's DataCollector needs it ("minari[create]")

import rlkernel  # noqa: E402
from rlkernel.errors import RLKernelError  # noqa: E402
from rlkernel_gym.datasets import (  # noqa: E402
    DatasetError,
    DatasetFormatError,
    DatasetNotFoundError,
    MinariDataset,
)

DATASET = "cartpole/base-v0"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        collector = minari.DataCollector(gymnasium.make("CartPole-v1", max_episode_steps=10))
        for seed in range(3):
            collector.reset(seed=seed)
            done = False
            while not done:
                *_, terminated, truncated, _ = collector.step(collector.action_space.sample())
                done = terminated or truncated
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            collector.create_dataset(DATASET, algorithm_name="random")
        collector.close()
    return root


@pytest.fixture
def root(pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "datasets"
    shutil.copytree(pristine, copy)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(copy))
    return copy


def data(root: Path) -> Path:
    return root / DATASET / "data"


def edit_metadata(root: Path, change: Callable[[dict], None]) -> Path:
    path = data(root) / "metadata.json"
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))
    return path


def edit_hdf5(root: Path, change: Callable[[h5py.File], None]) -> Path:
    path = data(root) / "main_data.hdf5"
    with h5py.File(path, "a") as file:
        change(file)
    return path


def test_the_pristine_copy_loads(root: Path) -> None:
    assert len(MinariDataset(DATASET)) > 0


def test_missing_dataset_names_the_folder_the_local_datasets_and_the_closest(root: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        MinariDataset("cartpole/bse-v0")
    message = str(info.value)
    assert str(root / "cartpole" / "bse-v0" / "data") in message
    assert "local datasets: cartpole/base-v0" in message and "closest: cartpole/base-v0" in message
    assert "never downloads" in message
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, RLKernelError)


def test_missing_root_and_empty_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        MinariDataset(DATASET, root=tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="local datasets: none"):
        MinariDataset(DATASET, root=tmp_path)


@pytest.mark.parametrize("bad", ["", "../cartpole/base-v0", "/abs/x-v0", "a b-v0", 3])
def test_malformed_ids(root: Path, bad: object) -> None:
    with pytest.raises(DatasetError, match="not a Minari dataset id"):
        MinariDataset(bad)  # type: ignore[arg-type]


def test_download_true_is_refused(root: Path) -> None:
    with pytest.raises(DatasetError, match="never downloads"):
        MinariDataset(DATASET, download=True)
    with pytest.raises(DatasetError, match="never downloads"):
        rlkernel.registry.datasets[f"minari:{DATASET}"](download=True)


def test_missing_metadata_file(root: Path) -> None:
    (data(root) / "metadata.json").unlink()
    with pytest.raises(DatasetFormatError, match=r"metadata\.json: missing") as info:
        rlkernel.registry.datasets[f"minari:{DATASET}"]()  # still listed: its data folder is there
    assert str(data(root) / "metadata.json") in str(info.value)


def test_unreadable_metadata(root: Path) -> None:
    (data(root) / "metadata.json").write_text("{not json")
    with pytest.raises(DatasetFormatError, match="not readable as JSON"):
        MinariDataset(DATASET)


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda m: m.pop("observation_space"), r"missing entries \['observation_space'\]"),
        (lambda m: m.update(data_format="arrow"), "'hdf5' format only"),
        (lambda m: m.update(total_steps=m["total_steps"] + 1), "declares total_steps="),
        (lambda m: m.update(total_steps=-1), "non-negative integer"),
        (lambda m: m.update(total_episodes=5), "declares 5 episodes but the file holds 3"),
        (lambda m: m.update(dataset_id="other/name-v0"), "sits in the folder of"),
        (
            lambda m: m.update(observation_space=json.dumps({"type": "Text", "max_length": 3})),
            "Text space has no tensor layout",
        ),
        (
            lambda m: m.update(
                observation_space=json.dumps(
                    {"type": "Dict", "subspaces": {"episode": {"type": "Discrete", "n": 2, "start": 0}}}
                )
            ),
            "clash with the step layout",
        ),
    ],
)
def test_bad_metadata_entries(root: Path, change: Callable[[dict], None], match: str) -> None:
    path = edit_metadata(root, change)
    with pytest.raises(DatasetFormatError, match=match) as info:
        MinariDataset(DATASET)
    assert str(path.parent) in str(info.value)


def test_missing_main_file(root: Path) -> None:
    (data(root) / "main_data.hdf5").unlink()
    with pytest.raises(DatasetFormatError, match=r"main_data.hdf5: missing; the data folder holds \['metadata.json'\]"):
        MinariDataset(DATASET)


def test_missing_main_file_with_a_cache_dir(root: Path, tmp_path: Path) -> None:
    (data(root) / "main_data.hdf5").unlink()
    with pytest.raises(DatasetFormatError, match=r"main_data\.hdf5: missing"):
        MinariDataset(DATASET, cache_dir=tmp_path / "cache")


def test_truncated_main_file(root: Path) -> None:
    path = data(root) / "main_data.hdf5"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetFormatError, match="not a readable HDF5 file") as info:
        MinariDataset(DATASET)
    assert str(path) in str(info.value)


def test_missing_episode_group(root: Path) -> None:
    path = edit_hdf5(root, lambda f: f.__delitem__("episode_1"))
    with pytest.raises(DatasetFormatError, match="missing groups: episode_1") as info:
        MinariDataset(DATASET)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["rewards", "actions", "terminations", "observations"])
def test_missing_step_dataset(root: Path, name: str) -> None:
    edit_hdf5(root, lambda f: f["episode_2"].__delitem__(name))
    with pytest.raises(DatasetFormatError, match=rf"group 'episode_2' lacks \['{name}'\]"):
        MinariDataset(DATASET)


def test_observations_without_the_final_row(root: Path) -> None:
    def cut(file: h5py.File) -> None:
        obs = file["episode_0/observations"][:-1]
        del file["episode_0/observations"]
        file["episode_0/observations"] = obs

    edit_hdf5(root, cut)
    steps = h5py.File(data(root) / "main_data.hdf5", "r")["episode_0/rewards"].shape[0]
    with pytest.raises(DatasetFormatError, match=rf"episode_0/observations has {steps} rows; .* needs {steps + 1}"):
        MinariDataset(DATASET)


def test_observations_of_the_wrong_shape(root: Path) -> None:
    def widen(file: h5py.File) -> None:
        obs = file["episode_1/observations"][:]
        del file["episode_1/observations"]
        file["episode_1/observations"] = np.concatenate([obs, obs[:, :1]], axis=1)

    edit_hdf5(root, widen)
    with pytest.raises(DatasetFormatError, match=r"rows of shape \(5,\); 'observation' needs \(4,\)"):
        MinariDataset(DATASET)


def test_float_actions_for_a_discrete_space(root: Path) -> None:
    def to_float(file: h5py.File) -> None:
        actions = file["episode_0/actions"][:].astype(np.float64)
        del file["episode_0/actions"]
        file["episode_0/actions"] = actions

    edit_hdf5(root, to_float)
    with pytest.raises(DatasetFormatError, match="holds float64 values; 'action' needs int64"):
        MinariDataset(DATASET)


def test_an_empty_dataset(root: Path) -> None:
    def drop_all(file: h5py.File) -> None:
        for name in list(file):
            del file[name]

    edit_hdf5(root, drop_all)
    edit_metadata(root, lambda m: m.update(total_steps=0, total_episodes=0))
    with pytest.raises(DatasetError, match="holds no steps"):
        MinariDataset(DATASET)
