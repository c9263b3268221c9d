"""Image observations in Minari datasets: JPEG-encoded frames (Minari's default) and raw ones.

CartPole rendered to ``rgb_array`` frames (``AddRenderObservation``), every 6th pixel kept
(a small metadata file and fast tests), gives a ``Box(0, 255, (67, 100, 3), uint8)``
observation space, which Minari stores as JPEG frames unless ``jpeg_encoding=False``.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

minari = pytest.importorskip("minari")
pytest.importorskip("h5py")
pytest.importorskip("jax")  # Minari's DataCollector needs it ("minari[create]")
pytest.importorskip("pygame")  # CartPole's rgb_array rendering
pytest.importorskip("PIL")

from rlkernel_gym.datasets import MinariDataset  # noqa: E402


class Subsample(gymnasium.ObservationWrapper):
    """Keeps every 6th pixel of each rendered frame."""

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        height, width, channels = env.observation_space.shape
        shape = (len(range(0, height, 6)), len(range(0, width, 6)), channels)
        self.observation_space = gymnasium.spaces.Box(0, 255, shape, np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(observation[::6, ::6])


def collect_frames(dataset_id: str, *, jpeg_encoding: bool) -> list[np.ndarray]:
    """Two short episodes of rendered CartPole; returns every observation (per episode,
    the reset frame then one per step), flattened in order."""
    env = Subsample(
        gymnasium.wrappers.AddRenderObservation(
            gymnasium.make("CartPole-v1", render_mode="rgb_array", max_episode_steps=3), render_only=True
        )
    )
    collector = minari.DataCollector(env, jpeg_encoding=jpeg_encoding)
    frames = []
    for seed in range(2):
        obs, _ = collector.reset(seed=seed)
        episode = [copy.deepcopy(obs)]
        done = False
        while not done:
            obs, _, terminated, truncated, _ = collector.step(collector.action_space.sample())
            episode.append(copy.deepcopy(obs))
            done = terminated or truncated
        frames.append(np.stack(episode))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        collector.create_dataset(dataset_id, algorithm_name="random")
    collector.close()
    return frames


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[np.ndarray]]:
    root = tmp_path_factory.mktemp("minari-images")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        made = {
            "pixels/jpeg-v0": collect_frames("pixels/jpeg-v0", jpeg_encoding=True),
            "pixels/raw-v0": collect_frames("pixels/raw-v0", jpeg_encoding=False),
        }
        yield made


def split(episodes: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(observation, next observation) rows of the step layout."""
    obs = np.concatenate([ep[:-1] for ep in episodes])
    nxt = np.concatenate([ep[1:] for ep in episodes])
    return torch.from_numpy(obs), torch.from_numpy(nxt)


def test_raw_frames_read_back_exactly(frames: dict[str, list[np.ndarray]]) -> None:
    rb = MinariDataset("pixels/raw-v0")
    obs, nxt = split(frames["pixels/raw-v0"])
    rows = rb[:]
    assert rows["observation"].dtype == torch.uint8 and rows["observation"].shape[1:] == (67, 100, 3)
    assert torch.equal(rows["observation"], obs) and torch.equal(rows["next", "observation"], nxt)


def test_jpeg_frames_decode_as_minari_decodes_them(frames: dict[str, list[np.ndarray]], tmp_path: Path) -> None:
    rb = MinariDataset("pixels/jpeg-v0", cache_dir=tmp_path)
    rows = rb[:]
    minari_episodes = [ep.observations for ep in minari.load_dataset("pixels/jpeg-v0").iterate_episodes()]
    obs, nxt = split(minari_episodes)
    assert torch.equal(rows["observation"], obs) and torch.equal(rows["next", "observation"], nxt)
    # JPEG is lossy: close to, not equal to, the rendered frames
    truth, _ = split(frames["pixels/jpeg-v0"])
    error = (rows["observation"].float() - truth.float()).abs().mean()
    assert 0 < error < 2, error
    assert torch.equal(MinariDataset("pixels/jpeg-v0", cache_dir=tmp_path)[:]["observation"], obs)
