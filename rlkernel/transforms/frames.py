"""Transforms over the last frames of an episode: :class:`CatFrames` and :class:`TimeMaxPool`."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from rlkernel.envs.step import DONE, NestedKey
from rlkernel.specs import Composite, TensorSpec
from rlkernel.transforms._utils import (
    TransformError,
    episode_starts,
    expand_mask,
    gather_time,
    missing_key_error,
    next_key,
    reset_mask,
    reshaped_leaf,
    show_key,
    window_index,
)
from rlkernel.transforms.base import Transform


def _trajectory(tensordict: TensorDictBase, owner: str) -> TensorDictBase:
    if tensordict.batch_dims == 0:
        raise TransformError(f"{owner}.forward needs a trajectory: a TensorDict whose last batch dim is time")
    return tensordict


class CatFrames(Transform):
    """Concatenate the last ``N`` frames of each ``in_key`` along ``dim``.

    After ``reset`` the window is filled with the first frame; each step drops the oldest
    frame and appends the new one. With a batched env and a partial reset only the reset
    sub-environments are refilled. The frames are kept in the transform (one buffer per
    key), so step the env from what it returned last, as rollouts and collectors do.

    ``forward`` on a trajectory ``[*B, T]`` (a replay-buffer slice) builds the same
    windows from the stored single frames: at the root from ``in_key``, under ``"next"``
    from the root frames and ``("next", in_key)``, restarting at episode boundaries
    (``("next", "done")``) and repeating the trajectory's first frame before its start.

    Args:
        N: number of frames.
        dim: where to concatenate, a negative dim of the frame (``-3`` for ``C, H, W``
            images gives ``N * C`` channels; ``-1`` for vectors).
        in_keys: default ``["pixels"]`` (as in TorchRL).
        out_keys: default: in place.

    Example::

        >>> from rlkernel.testing import CountingEnv
        >>> from rlkernel.transforms import TransformedEnv
        >>> env = TransformedEnv(CountingEnv(), CatFrames(3, -1, in_keys=["observation"]))
        >>> env.rollout(2, policy=lambda td: td.set("action", torch.ones(1)))["next", "observation"]
        tensor([[0., 0., 1.],
                [0., 1., 2.]])
    """

    spec_groups = ("observation",)

    def __init__(self, N: int, dim: int, in_keys: Any = None, out_keys: Any = None, done_key: NestedKey = DONE) -> None:
        super().__init__(["pixels"] if in_keys is None else in_keys, out_keys)
        if isinstance(N, bool) or not isinstance(N, int) or N < 1:
            raise TransformError(f"CatFrames: N must be a positive int, got {N!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim >= 0:
            raise TransformError(
                f"CatFrames: dim must be a negative int (a dim of the frame, counted from the end), got {dim!r}"
            )
        self.N = N
        self.dim = dim
        self.done_key = done_key
        self._buffers: dict[NestedKey, torch.Tensor] = {}

    def _transform_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        if -self.dim > len(spec.shape):
            raise TransformError(
                f"{self!r}: dim {self.dim} is out of range for {show_key(key)} of shape {list(spec.shape)}"
            )
        shape = list(spec.shape)
        shape[self.dim] *= self.N
        return reshaped_leaf(spec, shape, owner=repr(self), key=key, bounds=self._repeat)

    def _repeat(self, frame: torch.Tensor) -> torch.Tensor:
        return torch.cat([frame] * self.N, self.dim)

    def _validate_keys(self, output_spec: Composite, input_spec: Composite, where: str) -> None:
        super()._validate_keys(output_spec, input_spec, where)
        obs = output_spec["full_observation_spec"]
        for key in self.in_keys:
            if key not in obs:
                raise TransformError(f"{where}: {show_key(key)} is not an observation; CatFrames stacks observations")
            event = len(obs[key].shape) - len(obs.shape)
            if -self.dim > event:
                raise TransformError(
                    f"{where}: dim {self.dim} reaches past the {event} dim(s) of {show_key(key)} "
                    f"(shape {list(obs[key].shape)} with batch dims {list(obs.shape)})"
                )

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        mask = reset_mask(tensordict, tensordict_reset.batch_size)
        for in_key, out_key in self._key_pairs():
            frame = tensordict_reset.get(in_key, None)
            if frame is None:
                raise missing_key_error(repr(self), in_key, tensordict_reset, "reset output")
            full = self._repeat(frame)
            old = self._buffers.get(in_key)
            if mask is not None and old is not None and old.shape == full.shape:
                full = torch.where(expand_mask(mask, full), full, old)
            self._buffers[in_key] = full
            tensordict_reset.set(out_key, full)
        return tensordict_reset

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in self._key_pairs():
            frame = next_tensordict.get(in_key, None)
            if frame is None:
                raise missing_key_error(repr(self), in_key, next_tensordict, "environment's output")
            old = self._buffers.get(in_key)
            if old is None:
                raise TransformError(f"{self!r}: step() before reset(); reset the environment first")
            width = frame.shape[self.dim]
            new = torch.cat([old.narrow(self.dim, width, width * (self.N - 1)), frame], self.dim)
            self._buffers[in_key] = new
            next_tensordict.set(out_key, new)
        return next_tensordict

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Build the windows of a trajectory ``[*B, T]`` (root and ``"next"``)."""
        td = _trajectory(tensordict, "CatFrames")
        starts = episode_starts(td, self.done_key)
        nd = td.batch_dims
        root_idx = window_index(starts, self.N)
        for in_key, out_key in self._key_pairs():
            frames = td.get(in_key, None)
            if frames is None:
                raise missing_key_error(repr(self), in_key, td, "TensorDict given to forward()")
            nxt = td.get(next_key(in_key), None)
            windows = gather_time(frames, root_idx)  # [*B, T, N, *E]
            td.set(out_key, self._merge(windows, nd))
            if nxt is not None:
                shifted = torch.cat([windows.narrow(nd, 1, self.N - 1), nxt.unsqueeze(nd)], nd)
                td.set(next_key(out_key), self._merge(shifted, nd))
        return tensordict

    def _merge(self, windows: torch.Tensor, nd: int) -> torch.Tensor:
        """``[*B, T, N, *E]`` -> the N frames concatenated along ``dim`` of ``E``."""
        frames = windows.unbind(nd)
        return torch.cat(frames, self.dim)

    def _repr_args(self) -> list[str]:
        return [f"N={self.N}", f"dim={self.dim}"]


class TimeMaxPool(Transform):
    """The element-wise maximum of the last ``T`` frames of each ``in_key`` (same shape).

    After ``reset`` the history holds the first frame only. ``forward`` on a trajectory
    ``[*B, T]`` takes the maximum over the same windows, restarting at episode
    boundaries.

    Args:
        in_keys: default ``["observation"]``.
        out_keys: default: in place.
        T: window length.
    """

    spec_groups = ("observation",)

    def __init__(self, in_keys: Any = None, out_keys: Any = None, T: int = 1, done_key: NestedKey = DONE) -> None:
        super().__init__(["observation"] if in_keys is None else in_keys, out_keys)
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise TransformError(f"TimeMaxPool: T must be a positive int, got {T!r}")
        self.T = T
        self.done_key = done_key
        self._history: dict[NestedKey, torch.Tensor] = {}
        self._slot = 0

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        mask = reset_mask(tensordict, tensordict_reset.batch_size)
        for in_key, out_key in self._key_pairs():
            frame = tensordict_reset.get(in_key, None)
            if frame is None:
                raise missing_key_error(repr(self), in_key, tensordict_reset, "reset output")
            hist = self._history.get(in_key)
            if hist is None or mask is None or hist.shape[1:] != frame.shape:
                self._history[in_key] = frame.unsqueeze(0).repeat(self.T, *([1] * frame.ndim))
            else:
                hist[:, mask] = frame[mask].unsqueeze(0)
            tensordict_reset.set(out_key, self._history[in_key].amax(0))
        return tensordict_reset

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        slot = self._slot
        for in_key, out_key in self._key_pairs():
            frame = next_tensordict.get(in_key, None)
            if frame is None:
                raise missing_key_error(repr(self), in_key, next_tensordict, "environment's output")
            hist = self._history.get(in_key)
            if hist is None:
                raise TransformError(f"{self!r}: step() before reset(); reset the environment first")
            hist[slot].copy_(frame)
            next_tensordict.set(out_key, hist.amax(0))
        self._slot = (slot + 1) % self.T
        return next_tensordict

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Max over windows of a trajectory ``[*B, T]`` (root and ``"next"``)."""
        td = _trajectory(tensordict, "TimeMaxPool")
        starts = episode_starts(td, self.done_key)
        nd = td.batch_dims
        idx = window_index(starts, self.T)
        for in_key, out_key in self._key_pairs():
            frames = td.get(in_key, None)
            if frames is None:
                raise missing_key_error(repr(self), in_key, td, "TensorDict given to forward()")
            windows = gather_time(frames, idx)
            td.set(out_key, windows.amax(nd))
            nxt = td.get(next_key(in_key), None)
            if nxt is not None:
                shifted = torch.cat([windows.narrow(nd, 1, self.T - 1), nxt.unsqueeze(nd)], nd)
                td.set(next_key(out_key), shifted.amax(nd))
        return tensordict

    def _repr_args(self) -> list[str]:
        return [f"T={self.T}"]
