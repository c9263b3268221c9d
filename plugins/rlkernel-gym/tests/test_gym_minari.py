"""Minari datasets read back through ``minari:<id>``: every transition, sampling, slices.

The datasets are written here by Minari's own ``DataCollector`` on real gymnasium
environments (into a temporary ``MINARI_DATASETS_PATH``), while the test records what the
environment returned; the buffer must hold exactly that.
"""

from __future__ import annotations

import copy
import os
import socket
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch

minari = pytest.importorskip("minari")
pytest.importorskip("h5py")
pytest.importorskip("jax")  # Minari's DataCollector needs it ("minari[create]")

import rlkernel_gym_testenvs  # noqa: E402,F401  (the test envs' module must be importable by id)

import rlkernel  # noqa: E402
from rlkernel.data import LazyMemmapStorage, LazyTensorStorage, SliceSampler  # noqa: E402
from rlkernel_gym import GymEnv  # noqa: E402
from rlkernel_gym.datasets import DatasetError, MinariDataset, list_local_datasets, minari_dataset  # noqa: E402

Key = tuple[str, ...]
Flatten = Callable[[Any], dict[Key, np.ndarray]]

DICT_ID, TUPLE_ID = "MinariTest/DictObs-v0", "MinariTest/TupleObs-v0"
# Registered with string entry points: Minari stores the env spec as JSON.
for _id, _cls, _steps in ((DICT_ID, "DictObsEnv", 12), (TUPLE_ID, "TupleObsEnv", 6)):
    if _id not in gymnasium.registry:
        gymnasium.register(_id, entry_point=f"rlkernel_gym_testenvs:{_cls}", max_episode_steps=_steps)


class InfoWrapper(gymnasium.Wrapper):
    """Adds the same info entries on reset and step: a step count and a nested array."""

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, _ = self.env.reset(**kwargs)
        self.t = 0
        return obs, self._info(obs)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict]:
        obs, reward, terminated, truncated, _ = self.env.step(action)
        self.t += 1
        return obs, reward, terminated, truncated, self._info(obs)

    def _info(self, obs: np.ndarray) -> dict:
        return {"t": self.t, "nested": {"cos": np.array([obs[0]], dtype=np.float32)}}


def collect(dataset_id: str, env: gymnasium.Env, episodes: int, *, record_infos: bool = False) -> list[dict]:
    """Run ``env`` under Minari's DataCollector with random actions; return every step as
    the environment gave it, and write the dataset."""
    collector = minari.DataCollector(env, record_infos=record_infos)
    steps: list[dict] = []
    for episode in range(episodes):
        obs, info = collector.reset(seed=100 + episode)
        collector.action_space.seed(200 + episode)
        done = False
        while not done:
            action = collector.action_space.sample()
            next_obs, reward, terminated, truncated, next_info = collector.step(action)
            steps.append(
                copy.deepcopy(
                    dict(
                        episode=episode,
                        obs=obs,
                        action=action,
                        reward=reward,
                        terminated=terminated,
                        truncated=truncated,
                        next_obs=next_obs,
                        info=info,
                        next_info=next_info,
                    )
                )
            )
            obs, info, done = next_obs, next_info, terminated or truncated
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Minari asks for an author, a description, ...
        collector.create_dataset(dataset_id, algorithm_name="random")
    collector.close()
    return steps


def plain(value: Any) -> dict[Key, np.ndarray]:
    return {("observation",): np.asarray(value)}


def plain_action(value: Any) -> dict[Key, np.ndarray]:
    return {("action",): np.asarray(value)}


def dict_obs(value: Any) -> dict[Key, np.ndarray]:
    sensors = value["sensors"]
    return {
        ("position",): value["position"],
        ("sensors", "velocity"): sensors["velocity"],
        ("sensors", "mode"): np.asarray(sensors["mode"] - 1),  # Discrete(3, start=1): 0-based
    }


def dict_action(value: Any) -> dict[Key, np.ndarray]:
    return {("action",): np.asarray(value + 1)}  # Discrete(3, start=-1)


def tuple_obs(value: Any) -> dict[Key, np.ndarray]:
    box, bits, md = value
    return {
        ("observation", "0"): box,
        ("observation", "1"): bits,
        ("observation", "2"): md - np.array([1, -2]),  # MultiDiscrete start [1, -2]
    }


def tuple_action(value: Any) -> dict[Key, np.ndarray]:
    choice, bits = value
    return {("action", "0"): choice - np.array([0, 1]), ("action", "1"): bits}


def info_entries(value: dict) -> dict[Key, np.ndarray]:
    return {("info", "t"): np.asarray(value["t"]), ("info", "nested", "cos"): value["nested"]["cos"]}


def expected_rows(steps: list[dict], obs: Flatten, action: Flatten, infos: bool = False) -> dict[Key, torch.Tensor]:
    """The step layout built by hand from what the environment returned."""
    columns: dict[Key, list[Any]] = {}

    def put(key: Key, value: Any) -> None:
        columns.setdefault(key, []).append(np.asarray(value))

    for step in steps:
        for key, value in obs(step["obs"]).items():
            put(key, value)
        for key, value in obs(step["next_obs"]).items():
            put(("next", *key), value)
        for key, value in action(step["action"]).items():
            put(key, value)
        if infos:
            for key, value in info_entries(step["info"]).items():
                put(key, value)
            for key, value in info_entries(step["next_info"]).items():
                put(("next", *key), value)
        put(("next", "reward"), np.array([step["reward"]], dtype=np.float32))
        put(("next", "terminated"), [step["terminated"]])
        put(("next", "truncated"), [step["truncated"]])
        put(("next", "done"), [step["terminated"] or step["truncated"]])
        for name in ("done", "terminated", "truncated"):
            put((name,), [False])
        put(("episode",), step["episode"])
    return {key: torch.as_tensor(np.stack(values)) for key, values in columns.items()}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        made = {
            "cartpole/random-v0": (
                collect("cartpole/random-v0", gymnasium.make("CartPole-v1", max_episode_steps=20), 6),
                plain,
                plain_action,
                False,
            ),
            "pendulum/info-v0": (
                collect(
                    "pendulum/info-v0",
                    InfoWrapper(gymnasium.make("Pendulum-v1", max_episode_steps=8)),
                    3,
                    record_infos=True,
                ),
                plain,
                plain_action,
                True,
            ),
            "structured/dict-v0": (
                collect("structured/dict-v0", gymnasium.make(DICT_ID), 3),
                dict_obs,
                dict_action,
                False,
            ),
            "structured/tuple-v0": (
                collect("structured/tuple-v0", gymnasium.make(TUPLE_ID), 3),
                tuple_obs,
                tuple_action,
                False,
            ),
        }
        yield root, made


def check_rows(rb: MinariDataset, expected: dict[Key, torch.Tensor]) -> None:
    rows = rb[:]
    actual = {key if isinstance(key, tuple) else (key,) for key in rows.keys(True, True)}
    assert actual == set(expected), sorted(actual ^ set(expected))
    for key, want in expected.items():
        got = rows.get(key)
        assert got.shape == want.shape, (key, got.shape, want.shape)
        assert torch.equal(got, want.to(got.dtype)), key


@pytest.mark.parametrize(
    "dataset_id", ["cartpole/random-v0", "pendulum/info-v0", "structured/dict-v0", "structured/tuple-v0"]
)
def test_every_transition_equals_what_the_env_returned(datasets: Any, dataset_id: str) -> None:
    _, made = datasets
    steps, obs, action, infos = made[dataset_id]
    rb = rlkernel.registry.datasets[f"minari:{dataset_id}"]()
    assert isinstance(rb, MinariDataset)
    assert len(rb) == len(steps) == rb.metadata.total_steps
    assert rb.metadata.total_episodes == len({s["episode"] for s in steps})
    check_rows(rb, expected_rows(steps, obs, action, infos))
    # next/observation of a step is the observation of the following step in the episode
    rows = rb[:]
    same_episode = rows["episode"][1:] == rows["episode"][:-1]
    for key in rb.metadata.observation_spec.keys(True, True):
        assert torch.equal(rows["next", key][:-1][same_episode], rows[key][1:][same_episode])


def test_dtypes_and_metadata(datasets: Any) -> None:
    rb = MinariDataset("cartpole/random-v0")
    rows = rb[:]
    assert rows["observation"].dtype == torch.float32 and rows["action"].dtype == torch.int64
    assert rows["next", "reward"].dtype == torch.float32 and rows["next", "reward"].shape[-1] == 1
    assert rows["next", "terminated"].dtype == torch.bool and rows["episode"].dtype == torch.int64
    assert rows["next", "terminated"].any() or rows["next", "truncated"].any()
    meta = rb.metadata
    assert meta.env_id == "CartPole-v1" and meta.env_spec["max_episode_steps"] == 20
    assert meta.dataset_id == "cartpole/random-v0" and meta.minari_version == minari.__version__
    assert isinstance(meta.action_space, gymnasium.spaces.Discrete)
    pendulum = MinariDataset("pendulum/info-v0")
    assert pendulum[:]["action"].dtype == torch.float32 and pendulum[:]["action"].shape[-1] == 1
    assert pendulum[:]["next", "info", "nested", "cos"].shape[-1] == 1


@pytest.mark.parametrize("dataset_id,env_id", [("cartpole/random-v0", "CartPole-v1"), ("structured/dict-v0", DICT_ID)])
def test_layout_and_specs_match_gymenv(datasets: Any, dataset_id: str, env_id: str) -> None:
    rb = MinariDataset(dataset_id)
    env = GymEnv(env_id)
    online = set(env.rollout(3).keys(True, True))
    assert set(rb[:].keys(True, True)) == online | {"episode"}
    for spec, env_spec in (
        (rb.metadata.observation_spec, env.observation_spec),
        (rb.metadata.action_spec, env.full_action_spec),
    ):
        assert set(spec.keys(True, True)) == set(env_spec.keys(True, True))
        for key in spec.keys(True, True):
            assert type(spec[key]) is type(env_spec[key])
            assert spec[key].shape == env_spec[key].shape and spec[key].dtype == env_spec[key].dtype
            assert spec[key].is_in(rb[:][key][0])


def test_sample_returns_stored_rows(datasets: Any) -> None:
    rb = rlkernel.registry.datasets["minari:cartpole/random-v0"](batch_size=16)
    batch = rb.sample(32)
    assert batch.batch_size == torch.Size([32])
    stored = rb[batch["index"]]
    for key in stored.keys(True, True):
        assert torch.equal(batch[key], stored[key])
    assert rb.sample().batch_size == torch.Size([16])


def test_slice_sampler_stays_within_episodes(datasets: Any) -> None:
    rb = MinariDataset("cartpole/random-v0", sampler=SliceSampler(slice_len=4, traj_key="episode"), batch_size=24)
    for _ in range(5):
        batch = rb.sample().view(6, 4)
        assert (batch["episode"] == batch["episode"][:, :1]).all()
        assert (batch["index"].diff(dim=1) == 1).all()
        assert torch.equal(batch["next", "observation"][:, :-1], batch["observation"][:, 1:])
        assert batch["next", "truncated"][:, -1].all()  # the slice end is flagged


def test_split_trajs_gives_one_padded_row_per_episode(datasets: Any) -> None:
    _, made = datasets
    steps = made["cartpole/random-v0"][0]
    lengths = torch.bincount(torch.tensor([s["episode"] for s in steps]))
    rb = MinariDataset("cartpole/random-v0", split_trajs=True, batch_size=2)
    rows = rb[:]
    assert rows.batch_size == torch.Size([len(lengths), int(lengths.max())])
    mask = rows["collector", "mask"]
    assert torch.equal(mask.sum(1), lengths)
    flat = MinariDataset("cartpole/random-v0")[:]
    assert torch.equal(rows["observation"][mask], flat["observation"])
    assert torch.equal(rows["episode"][mask], flat["episode"])
    assert rb.sample().batch_size == torch.Size([2, int(lengths.max())])


def test_registry_names_list_the_local_datasets(datasets: Any) -> None:
    root, made = datasets
    names = rlkernel.registry.datasets.names(expand=True)
    assert {f"minari:{i}" for i in made} <= set(names)
    assert list_local_datasets() == sorted(made)
    assert "minari:cartpole/random-v0" in rlkernel.registry.datasets
    assert "minari:cartpole/randm-v0" not in rlkernel.registry.datasets
    with pytest.raises(KeyError, match="minari:cartpole/random-v0"):
        rlkernel.registry.datasets["minari:cartpole/randm-v0"]
    # the same dataset through root= instead of the environment variable
    moved = MinariDataset("cartpole/random-v0", root=root)
    assert torch.equal(moved[:]["observation"], MinariDataset("cartpole/random-v0")[:]["observation"])


def test_listing_names_does_not_import_h5py_or_minari(datasets: Any) -> None:
    import json
    import subprocess

    code = (
        "import json, sys, rlkernel\n"
        "names = rlkernel.registry.datasets.names(expand=True)\n"
        "print(json.dumps([names, 'h5py' in sys.modules, 'minari' in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    names, h5py_loaded, minari_loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "minari:structured/dict-v0" in names
    assert not h5py_loaded and not minari_loaded


def test_loading_never_touches_the_network(datasets: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert len(MinariDataset("structured/tuple-v0", cache_dir=None)) > 0


def test_cache_dir_is_reused_until_the_source_changes(
    datasets: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = datasets
    first = MinariDataset("cartpole/random-v0", cache_dir=tmp_path, batch_size=8)
    assert not first.from_cache and isinstance(first.storage, LazyMemmapStorage)
    with monkeypatch.context() as mp:  # a complete copy is reused without opening the HDF5 file
        mp.setattr(minari_dataset, "EpisodeFile", None)
        second = MinariDataset("cartpole/random-v0", cache_dir=tmp_path, batch_size=8)
    assert second.from_cache
    assert (second[:] == first[:]).all()
    assert second.sample().batch_size == torch.Size([8])
    # an interrupted fill (fewer rows than the dataset) is redone
    folder = second.storage.scratch_dir
    del first, second
    LazyMemmapStorage(len(MinariDataset("cartpole/random-v0")), scratch_dir=folder).empty()
    third = MinariDataset("cartpole/random-v0", cache_dir=tmp_path)
    assert not third.from_cache and len(third) == third.metadata.total_steps
    assert (third[:] == MinariDataset("cartpole/random-v0")[:]).all()
    # a changed source file gets a new copy
    main = root / "cartpole" / "random-v0" / "data" / "main_data.hdf5"
    stat = main.stat()
    os.utime(main, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    fourth = MinariDataset("cartpole/random-v0", cache_dir=tmp_path)
    assert not fourth.from_cache and fourth.storage.scratch_dir != folder
    assert MinariDataset("cartpole/random-v0", cache_dir=tmp_path).from_cache


def test_storage_argument(datasets: Any, tmp_path: Path) -> None:
    total = MinariDataset("pendulum/info-v0").metadata.total_steps
    rb = MinariDataset("pendulum/info-v0", storage=LazyMemmapStorage(total + 5, scratch_dir=tmp_path / "s"))
    assert len(rb) == total and rb.storage.scratch_dir == tmp_path / "s"
    with pytest.raises(DatasetError, match="at most 3 rows"):
        MinariDataset("pendulum/info-v0", storage=LazyTensorStorage(3))
    with pytest.raises(DatasetError, match="already holds"):
        MinariDataset("pendulum/info-v0", storage=rb.storage)
    with pytest.raises(DatasetError, match="not both"):
        MinariDataset("pendulum/info-v0", storage=LazyTensorStorage(100), cache_dir=tmp_path)


def test_transform_is_applied_to_samples(datasets: Any) -> None:
    def scale(batch: Any) -> Any:
        batch["next", "reward"] = batch["next", "reward"] * 10
        return batch

    rb = MinariDataset("cartpole/random-v0", transform=scale, batch_size=4)
    assert (rb.sample()["next", "reward"] == 10).all()
