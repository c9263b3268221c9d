"""Shape and value transforms on tensors: :class:`CatTensors`, :class:`UnsqueezeTransform`,
:class:`SqueezeTransform`, :class:`PermuteTransform` and :class:`ClipTransform`.

Dims are negative (counted from the end of each value) so that the same transform works
on an env's outputs and on replay-buffer samples with extra leading dims.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase

from rlkernel.envs.step import NEXT, NestedKey
from rlkernel.specs import Bounded, Composite, TensorSpec, Unbounded
from rlkernel.transforms._utils import (
    TransformError,
    TransformKeyError,
    as_key,
    missing_key_error,
    reshaped_leaf,
    show_key,
)
from rlkernel.transforms.base import Transform


def _negative_dim(dim: Any, owner: str) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim >= 0:
        raise TransformError(
            f"{owner}: dim must be a negative int (counted from the end, so that any batch size works), got {dim!r}"
        )
    return dim


class CatTensors(Transform):
    """Concatenate ``in_keys`` along ``dim`` into ``out_key`` (and drop them with ``del_keys``).

    As in TorchRL the keys are sorted first unless ``sort=False``. The output spec is
    ``Bounded`` when every input is (bounds concatenated), else ``Unbounded``; all inputs
    must share a dtype.
    """

    spec_groups = ("observation",)

    def __init__(
        self,
        in_keys: Sequence[NestedKey],
        out_key: NestedKey = "observation_vector",
        dim: int = -1,
        del_keys: bool = True,
        sort: bool = True,
    ) -> None:
        super().__init__(in_keys)
        if not self.in_keys:
            raise TransformError("CatTensors: give at least one in_key")
        if sort:
            self.in_keys = sorted(self.in_keys, key=lambda k: (k,) if isinstance(k, str) else k)
        self.out_key = as_key(out_key, "CatTensors", "out_key")
        self.dim = _negative_dim(dim, "CatTensors")
        self.del_keys = bool(del_keys)

    def _declared_keys(self) -> list[NestedKey]:
        return [self.out_key]

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        specs = [observation_spec[k] for k in self.in_keys]
        dtypes = {s.dtype for s in specs}
        if len(dtypes) != 1:
            raise TransformError(f"{self!r}: the in_keys have different dtypes {sorted(map(str, dtypes))}")
        try:
            shape = list(torch.cat([torch.empty(s.shape, device="meta") for s in specs], self.dim).shape)
        except RuntimeError as err:
            shapes = {show_key(k): list(s.shape) for k, s in zip(self.in_keys, specs)}
            raise TransformError(f"{self!r}: cannot concatenate shapes {shapes} along dim {self.dim}") from err
        if all(isinstance(s, Bounded) for s in specs):
            low = torch.cat([s.low for s in specs], self.dim)
            high = torch.cat([s.high for s in specs], self.dim)
            out: TensorSpec = Bounded(low, high, shape=shape, dtype=specs[0].dtype, device=observation_spec.device)
        else:
            out = Unbounded(shape=shape, dtype=specs[0].dtype, device=observation_spec.device)
        if self.del_keys:
            for key in self.in_keys:
                del observation_spec[key]
        observation_spec[self.out_key] = out
        return observation_spec

    def _validate_keys(self, output_spec: Composite, input_spec: Composite, where: str) -> None:
        obs = output_spec["full_observation_spec"]
        for key in self.in_keys:
            if key not in obs:
                raise TransformKeyError(
                    f"{where}: in_key {show_key(key)} is not an observation; observation keys: "
                    f"{sorted(map(str, obs.keys(True, True)))}"
                )

    def _cat(self, td: TensorDictBase, where: str) -> None:
        values = []
        for key in self.in_keys:
            value = td.get(key, None)
            if value is None:
                raise missing_key_error(repr(self), key, td, where)
            values.append(value)
        td.set(self.out_key, torch.cat(values, self.dim))
        if self.del_keys:
            for key in self.in_keys:
                td.del_(key)

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        self._cat(next_tensordict, "environment's output")
        return next_tensordict

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        self._cat(tensordict_reset, "reset output")
        return tensordict_reset

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Concatenate at the root and under ``"next"`` (where all in_keys are present)."""
        done = False
        for td in (tensordict, tensordict.get(NEXT, None)):
            if isinstance(td, TensorDictBase) and all(td.get(k, None) is not None for k in self.in_keys):
                self._cat(td, "TensorDict given to forward()")
                done = True
        if not done:
            missing = next(k for k in self.in_keys if tensordict.get(k, None) is None)
            raise missing_key_error(repr(self), missing, tensordict, "TensorDict given to forward()")
        return tensordict

    def _repr_args(self) -> list[str]:
        return [f"out_key={self.out_key!r}", f"dim={self.dim}", f"del_keys={self.del_keys}"]


class _ShapeTransform(Transform):
    """Shared spec logic: observation keys forward, action/state keys through the inverse."""

    spec_groups = ("observation", "state")

    def _shape_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        raise NotImplementedError

    def _transform_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        return self._shape_spec(spec, key)

    def _transform_inv_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        return self._shape_spec(spec, key)


class UnsqueezeTransform(_ShapeTransform):
    """Insert a dim of size 1 at ``dim`` (negative); the inverse removes it.

    >>> from tensordict import TensorDict
    >>> UnsqueezeTransform(-1, in_keys=["x"])(TensorDict({"x": torch.zeros(2, 3)}, [2]))["x"].shape
    torch.Size([2, 3, 1])
    """

    def __init__(self, dim: int, in_keys: Any = None, out_keys: Any = None, in_keys_inv: Any = None,
                 out_keys_inv: Any = None) -> None:
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        self.dim = _negative_dim(dim, "UnsqueezeTransform")

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.unsqueeze(self.dim)

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.squeeze(self.dim)

    def _shape_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        shape = list(torch.empty(spec.shape, device="meta").unsqueeze(self.dim).shape)
        return reshaped_leaf(spec, shape, owner=repr(self), key=key, bounds=lambda b: b.unsqueeze(self.dim))

    def _repr_args(self) -> list[str]:
        return [f"dim={self.dim}"]


class SqueezeTransform(_ShapeTransform):
    """Remove the dim of size 1 at ``dim`` (negative); the inverse puts it back."""

    def __init__(self, dim: int, in_keys: Any = None, out_keys: Any = None, in_keys_inv: Any = None,
                 out_keys_inv: Any = None) -> None:
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        self.dim = _negative_dim(dim, "SqueezeTransform")

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        if value.shape[self.dim] != 1:
            raise TransformError(f"{self!r}: dim {self.dim} of a value of shape {list(value.shape)} is not 1")
        return value.squeeze(self.dim)

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.unsqueeze(self.dim)

    def _shape_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        if -self.dim > len(spec.shape) or spec.shape[self.dim] != 1:
            raise TransformError(
                f"{self!r}: {show_key(key)} has shape {list(spec.shape)}, whose dim {self.dim} is not of size 1"
            )
        shape = list(spec.shape)
        del shape[self.dim]
        return reshaped_leaf(spec, shape, owner=repr(self), key=key, bounds=lambda b: b.squeeze(self.dim))

    def _repr_args(self) -> list[str]:
        return [f"dim={self.dim}"]


class PermuteTransform(_ShapeTransform):
    """Permute the last ``len(dims)`` dims: ``dims`` reorders ``[-len(dims), ..., -1]``.

    ``PermuteTransform((-1, -3, -2))`` turns ``H, W, C`` into ``C, H, W``; the inverse
    permutes back.
    """

    def __init__(self, dims: Sequence[int], in_keys: Any = None, out_keys: Any = None, in_keys_inv: Any = None,
                 out_keys_inv: Any = None) -> None:
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        dims = list(dims)
        k = len(dims)
        if k == 0 or sorted(dims) != list(range(-k, 0)):
            raise TransformError(
                f"PermuteTransform: dims must be a reordering of {list(range(-k, 0))}, got {dims}"
            )
        self.dims = dims
        self._inverse = [dims.index(d) - k for d in range(-k, 0)]

    @staticmethod
    def _permute(value: torch.Tensor, dims: list[int]) -> torch.Tensor:
        lead = value.ndim - len(dims)
        return value.permute(*range(lead), *(value.ndim + d for d in dims))

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return self._permute(value, self.dims)

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return self._permute(value, self._inverse)

    def _shape_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        if len(self.dims) > len(spec.shape):
            raise TransformError(f"{self!r}: {show_key(key)} of shape {list(spec.shape)} has too few dims")
        shape = list(self._permute(torch.empty(spec.shape, device="meta"), self.dims).shape)
        return reshaped_leaf(spec, shape, owner=repr(self), key=key,
                             bounds=lambda b: self._permute(b, self.dims).contiguous())

    def _repr_args(self) -> list[str]:
        return [f"dims={self.dims}"]


class ClipTransform(Transform):
    """Clamp values into ``[low, high]``: ``in_keys`` (observations, rewards) on their way
    out, ``in_keys_inv`` (actions, states) on their way to the env.

    With both bounds an output spec becomes ``Bounded`` (intersected with the previous
    bounds). The outside spec of an ``in_keys_inv`` key is ``Unbounded``: any value may
    be written, the env receives it clamped.
    """

    spec_groups = ("observation", "reward", "state")

    def __init__(self, in_keys: Any = None, low: float | None = None, high: float | None = None, *,
                 out_keys: Any = None, in_keys_inv: Any = None, out_keys_inv: Any = None) -> None:
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        if not self.in_keys and not self.in_keys_inv:
            raise TransformError("ClipTransform: give in_keys and/or in_keys_inv")
        if low is None and high is None:
            raise TransformError("ClipTransform: give low, high or both")
        if low is not None and high is not None and low > high:
            raise TransformError(f"ClipTransform: low {low} > high {high}")
        self.low = low
        self.high = high

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.clamp(self.low, self.high)

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.clamp(self.low, self.high)

    def _transform_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        if isinstance(spec, Bounded):
            low, high = spec.low.clamp(self.low, self.high), spec.high.clamp(self.low, self.high)
            return Bounded(low, high, shape=spec.shape, dtype=spec.dtype, device=spec.device)
        if self.low is not None and self.high is not None and isinstance(spec, Unbounded):
            return Bounded(self.low, self.high, shape=spec.shape, dtype=spec.dtype, device=spec.device)
        return spec

    def _transform_inv_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        return Unbounded(shape=spec.shape, dtype=spec.dtype, device=spec.device)

    def _repr_args(self) -> list[str]:
        return [f"low={self.low}", f"high={self.high}"]
