"""A tiny gymnasium adaptor for the transform tests (the real one is the rlkernel-gym plugin).

``GymAdaptor("CartPole-v1")`` has batch size ``()``; ``num_envs=N`` steps ``N`` gymnasium
envs side by side with batch size ``(N,)`` and resets only the masked ones on a partial
reset, which is what the transforms' partial-reset paths need.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.envs import EnvBase
from rlkernel.specs import Bounded, Categorical, Composite, TensorSpec, Unbounded

_DTYPES = {np.dtype("float32"): torch.float32, np.dtype("float64"): torch.float64, np.dtype("uint8"): torch.uint8}


def _box_spec(space: gym.spaces.Box, batch: tuple[int, ...], dtype: torch.dtype | None = None) -> TensorSpec:
    dtype = dtype or _DTYPES[space.dtype]
    shape = (*batch, *space.shape)
    if np.isfinite(space.low).all() and np.isfinite(space.high).all():
        return Bounded(torch.as_tensor(space.low, dtype=dtype), torch.as_tensor(space.high, dtype=dtype),
                       shape=shape, dtype=dtype)
    return Unbounded(shape=shape, dtype=dtype)


class GymAdaptor(EnvBase):
    """``observation`` (and ``pixels`` with ``from_pixels``), reward, terminated/truncated."""

    def __init__(self, env_id: str, *, num_envs: int | None = None, from_pixels: bool = False,
                 pixels_only: bool = False, action_dtype: torch.dtype | None = None) -> None:
        batch = () if num_envs is None else (num_envs,)
        super().__init__(batch_size=batch)
        render = "rgb_array" if from_pixels else None
        self.envs = [gym.make(env_id, render_mode=render) for _ in range(num_envs or 1)]
        self.from_pixels, self.pixels_only = from_pixels, pixels_only
        space = self.envs[0].observation_space
        obs = Composite(shape=batch)
        if not pixels_only:
            obs["observation"] = _box_spec(space, batch)
        if from_pixels:
            self.envs[0].reset(seed=0)
            frame = self.envs[0].render()
            obs["pixels"] = Bounded(0, 255, shape=(*batch, *frame.shape), dtype=torch.uint8)
        self.observation_space = space
        self.observation_spec = obs
        act = self.envs[0].action_space
        if isinstance(act, gym.spaces.Discrete):
            self.action_spec = Categorical(int(act.n), shape=batch)
        else:
            self.action_spec = _box_spec(act, batch, action_dtype)
        self._obs_dtype = _DTYPES[space.dtype]
        self._seed: int | None = None
        self._last: list[dict[str, torch.Tensor]] = [{} for _ in self.envs]

    def _set_seed(self, seed: int | None) -> None:
        self._seed = seed
        for i, env in enumerate(self.envs):
            env.action_space.seed(None if seed is None else seed + i)

    def _entries(self, i: int, obs: np.ndarray) -> dict[str, torch.Tensor]:
        out = {}
        if not self.pixels_only:
            out["observation"] = torch.as_tensor(np.asarray(obs), dtype=self._obs_dtype)
        if self.from_pixels:
            out["pixels"] = torch.from_numpy(self.envs[i].render().copy())
        return out

    def _pack(self, rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        if not self.batch_size:
            return rows[0]
        return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}

    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        mask = tensordict.get("_reset", None) if tensordict is not None else None
        rows = range(len(self.envs))
        if mask is not None:
            rows = mask.reshape(len(self.envs), -1).any(-1).nonzero()[:, 0].tolist()
        seed, self._seed = self._seed, None
        for i in rows:
            obs, _ = self.envs[i].reset(seed=None if seed is None else seed + i)
            self._last[i] = self._entries(i, obs)
        return TensorDict(self._pack(self._last), self.batch_size)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get("action")
        rewards, terms, truncs = [], [], []
        for i, env in enumerate(self.envs):
            a = action if not self.batch_size else action[i]
            a = int(a) if isinstance(env.action_space, gym.spaces.Discrete) else a.cpu().numpy()
            obs, reward, term, trunc, _ = env.step(a)
            self._last[i] = self._entries(i, obs)
            rewards.append(float(reward))
            terms.append(bool(term))
            truncs.append(bool(trunc))
        shape = (*self.batch_size, 1)
        out = self._pack(self._last)
        out["reward"] = torch.tensor(rewards, dtype=torch.float32).reshape(shape)
        out["terminated"] = torch.tensor(terms).reshape(shape)
        out["truncated"] = torch.tensor(truncs).reshape(shape)
        out["done"] = out["terminated"] | out["truncated"]
        return TensorDict(out, self.batch_size)

    def close(self) -> None:
        for env in self.envs:
            env.close()
        super().close()
