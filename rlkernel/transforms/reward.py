"""Reward transforms: :class:`RewardScaling`, :class:`RewardClipping` and :class:`RewardSum`."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from rlkernel.envs.step import DONE, NestedKey
from rlkernel.specs import Bounded, Composite, TensorSpec, Unbounded
from rlkernel.transforms._utils import (
    TransformError,
    TransformKeyError,
    episode_start_index,
    episode_starts,
    masked_fill_reset,
    missing_key_error,
    next_key,
    reset_mask,
    show_key,
    sibling_key,
    spec_keys,
)
from rlkernel.transforms.base import Transform


class RewardScaling(Transform):
    """``reward * scale + loc``, or ``(reward - loc) / scale`` with ``standard_normal``.

    >>> from tensordict import TensorDict
    >>> RewardScaling(loc=1.0, scale=0.5)(TensorDict({"next": {"reward": torch.ones(1)}}, []))["next", "reward"]
    tensor([1.5000])
    """

    spec_groups = ("reward",)

    def __init__(
        self,
        loc: float | torch.Tensor = 0.0,
        scale: float | torch.Tensor = 1.0,
        in_keys: Any = None,
        out_keys: Any = None,
        standard_normal: bool = False,
    ) -> None:
        super().__init__(["reward"] if in_keys is None else in_keys, out_keys)
        scale_t = torch.as_tensor(scale, dtype=torch.get_default_dtype())
        if bool((scale_t == 0).any()) or not bool(torch.isfinite(scale_t).all()):
            raise TransformError(f"RewardScaling: scale must be finite and non-zero, got {scale}")
        self.register_buffer("loc", torch.as_tensor(loc, dtype=torch.get_default_dtype()))
        self.register_buffer("scale", scale_t)
        self.standard_normal = bool(standard_normal)

    def _apply_transform(self, reward: torch.Tensor) -> torch.Tensor:
        if self.standard_normal:
            return (reward - self.loc) / self.scale
        return reward * self.scale + self.loc

    def _transform_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        dtype = torch.promote_types(spec.dtype, self.scale.dtype)
        if isinstance(spec, Bounded):
            a, b = self._apply_transform(spec.low.to(dtype)), self._apply_transform(spec.high.to(dtype))
            if a.shape == spec.shape:
                return Bounded(torch.minimum(a, b), torch.maximum(a, b), shape=spec.shape, dtype=dtype)
        return Unbounded(shape=spec.shape, dtype=dtype, device=spec.device)

    def _repr_args(self) -> list[str]:
        return [f"loc={self.loc.tolist()}", f"scale={self.scale.tolist()}"]


class RewardClipping(Transform):
    """Clamp the reward into ``[clamp_min, clamp_max]`` (either may be ``None``).

    With both bounds the reward spec becomes ``Bounded(clamp_min, clamp_max)``.
    """

    spec_groups = ("reward",)

    def __init__(
        self,
        clamp_min: float | None = None,
        clamp_max: float | None = None,
        in_keys: Any = None,
        out_keys: Any = None,
    ) -> None:
        super().__init__(["reward"] if in_keys is None else in_keys, out_keys)
        if clamp_min is None and clamp_max is None:
            raise TransformError("RewardClipping: give clamp_min, clamp_max or both")
        if clamp_min is not None and clamp_max is not None and clamp_min > clamp_max:
            raise TransformError(f"RewardClipping: clamp_min {clamp_min} > clamp_max {clamp_max}")
        self.clamp_min = clamp_min
        self.clamp_max = clamp_max

    def _apply_transform(self, reward: torch.Tensor) -> torch.Tensor:
        return reward.clamp(self.clamp_min, self.clamp_max)

    def _transform_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        if self.clamp_min is not None and self.clamp_max is not None:
            low, high = self.clamp_min, self.clamp_max
            if isinstance(spec, Bounded):
                low = spec.low.clamp(self.clamp_min, self.clamp_max)
                high = spec.high.clamp(self.clamp_min, self.clamp_max)
            return Bounded(low, high, shape=spec.shape, dtype=spec.dtype, device=spec.device)
        if isinstance(spec, Bounded):
            return Bounded(
                spec.low.clamp(self.clamp_min, self.clamp_max),
                spec.high.clamp(self.clamp_min, self.clamp_max),
                shape=spec.shape,
                dtype=spec.dtype,
                device=spec.device,
            )
        return spec

    def _repr_args(self) -> list[str]:
        return [f"clamp_min={self.clamp_min}", f"clamp_max={self.clamp_max}"]


def _episode_key(key: NestedKey) -> NestedKey:
    name = key[-1] if isinstance(key, tuple) else key
    return sibling_key(key, f"episode_{name}")


class RewardSum(Transform):
    """The return of the current episode: ``episode_reward`` (one per reward key).

    It is an observation (in the observation spec, same shape and dtype as the reward),
    0 after ``reset`` (for the sub-environments being reset) and the running sum of the
    rewards after each step. ``forward`` on a trajectory ``[*B, T]`` recomputes it,
    restarting where ``("next", "done")`` ended an episode.

    Args:
        in_keys: reward keys (default: every reward key of the env, else ``["reward"]``).
        out_keys: default ``episode_<name>`` next to each reward key.
    """

    def __init__(self, in_keys: Any = None, out_keys: Any = None) -> None:
        super().__init__(in_keys, out_keys)
        self._auto_in = in_keys is None
        self._auto_out = out_keys is None
        if self._auto_in:
            self.in_keys = ["reward"]
        if self._auto_out:
            self.out_keys = [_episode_key(k) for k in self.in_keys]
        self._zeros: dict[NestedKey, tuple[torch.Size, torch.dtype, torch.device]] = {}

    def _validate_keys(self, output_spec: Composite, input_spec: Composite, where: str) -> None:
        rewards = spec_keys(output_spec["full_reward_spec"])
        if self._auto_in:
            self.in_keys = rewards
            if self._auto_out:
                self.out_keys = [_episode_key(k) for k in rewards]
        for key in self.in_keys:
            if key not in rewards:
                raise TransformKeyError(
                    f"{where}: in_key {show_key(key)} is not a reward key; reward keys: {sorted(map(str, rewards))}"
                )

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        return observation_spec

    def transform_output_spec(self, output_spec: Composite) -> Composite:
        rewards = output_spec["full_reward_spec"]
        obs = output_spec["full_observation_spec"]
        for in_key, out_key in self._key_pairs():
            if in_key in rewards:
                spec = rewards[in_key]
                obs[out_key] = Unbounded(shape=spec.shape, dtype=spec.dtype, device=spec.device)
                self._zeros[out_key] = (spec.shape, spec.dtype, spec.device)
        return output_spec

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        mask = reset_mask(tensordict, tensordict_reset.batch_size)
        for out_key in self.out_keys:
            shape, dtype, device = self._zeros[out_key]
            fresh = torch.zeros(shape, dtype=dtype, device=device)
            old = tensordict.get(out_key, None) if mask is not None else None
            tensordict_reset.set(out_key, masked_fill_reset(mask, fresh, old))
        return tensordict_reset

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in self._key_pairs():
            total = tensordict.get(out_key, None)
            if total is None:
                raise missing_key_error(
                    repr(self), out_key, tensordict, "input of step() (step from what reset() returned)"
                )
            reward = next_tensordict.get(in_key, None)
            if reward is None:
                raise missing_key_error(repr(self), in_key, next_tensordict, "environment's output")
            next_tensordict.set(out_key, total + reward)
        return next_tensordict

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Recompute the episode return along the last batch dim (time)."""
        td = tensordict if tensordict.batch_dims else tensordict.unsqueeze(0)
        starts = episode_starts(td, _done_of(self.in_keys[0]))
        first = episode_start_index(starts)
        for in_key, out_key in self._key_pairs():
            reward = td.get(next_key(in_key), None)
            if reward is None:
                raise missing_key_error(repr(self), next_key(in_key), tensordict, "TensorDict given to forward()")
            t_dim = td.batch_dims - 1
            flat = reward.reshape(*td.batch_size, -1)
            csum = flat.cumsum(t_dim)
            before = torch.cat([torch.zeros_like(csum.narrow(t_dim, 0, 1)), csum], t_dim)
            offset = before.gather(t_dim, first.unsqueeze(-1).expand_as(flat))
            total = (csum - offset).reshape(reward.shape)
            root0 = td.get(out_key, None)
            if root0 is not None:
                carry = root0.narrow(t_dim, 0, 1).reshape(*td.batch_size[:-1], 1, -1)
                in_first = (first == 0).unsqueeze(-1)
                total = total + torch.where(in_first, carry, torch.zeros_like(carry)).reshape(reward.shape)
            td.set(next_key(out_key), total)
            td.set(out_key, total - reward)
        return tensordict if tensordict.batch_dims else td.squeeze(0)


def _done_of(reward_key: NestedKey) -> NestedKey:
    return sibling_key(reward_key, DONE)

