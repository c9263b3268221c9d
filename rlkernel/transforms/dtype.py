"""Dtype casts: :class:`DTypeCastTransform` and :class:`DoubleToFloat`."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from rlkernel.envs.step import NestedKey
from rlkernel.specs import Composite, TensorSpec
from rlkernel.transforms._utils import TransformError, spec_keys
from rlkernel.transforms.base import Transform


class DTypeCastTransform(Transform):
    """Cast ``dtype_in`` values to ``dtype_out`` on the way out, and back on the way in.

    ``in_keys`` are observations or rewards cast to ``dtype_out``. ``in_keys_inv`` are
    the env's action or state keys: the outside world writes ``dtype_out`` values, the env
    receives ``dtype_in``. Left to ``None``, they are every observation/reward (resp.
    action/state) of dtype ``dtype_in`` in the specs of the env the transform wraps when
    *both* are ``None``; outside an env, ``forward`` then casts every ``dtype_in`` entry.

    Example::

        >>> t = DTypeCastTransform(torch.float64, torch.float32, in_keys=["obs"])
        >>> from tensordict import TensorDict
        >>> t(TensorDict({"obs": torch.zeros(2, dtype=torch.float64)}, []))["obs"].dtype
        torch.float32
    """

    spec_groups = ("observation", "reward")

    def __init__(
        self,
        dtype_in: torch.dtype,
        dtype_out: torch.dtype,
        in_keys: Any = None,
        out_keys: Any = None,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
    ) -> None:
        for name, dtype in (("dtype_in", dtype_in), ("dtype_out", dtype_out)):
            if not isinstance(dtype, torch.dtype):
                raise TransformError(f"{type(self).__name__}: {name} must be a torch.dtype, got {dtype!r}")
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        self.dtype_in = dtype_in
        self.dtype_out = dtype_out
        self._auto = self._auto_inv = in_keys is None and in_keys_inv is None

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.to(self.dtype_out)

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.to(self.dtype_in)

    def _transform_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        if spec.dtype != self.dtype_in:
            raise TransformError(f"{self!r}: {key!r} has dtype {spec.dtype}, expected {self.dtype_in} ({spec!r})")
        return spec.to(self.dtype_out)

    def _validate_keys(self, output_spec: Composite, input_spec: Composite, where: str) -> None:
        if self._auto:
            groups = [output_spec["full_observation_spec"], output_spec["full_reward_spec"]]
            self.in_keys = [k for g in groups for k in spec_keys(g) if g[k].dtype == self.dtype_in]
            self.out_keys = None
        if self._auto_inv:
            groups = [input_spec["full_action_spec"], input_spec["full_state_spec"]]
            self.in_keys_inv = [k for g in groups for k in spec_keys(g) if g[k].dtype == self.dtype_in]
            self.out_keys_inv = None
        super()._validate_keys(output_spec, input_spec, where)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Cast ``in_keys`` (root and ``"next"``); with automatic keys, every ``dtype_in`` leaf."""
        if not self._auto or self.in_keys:
            return super().forward(tensordict)
        for key in list(tensordict.keys(include_nested=True, leaves_only=True)):
            value = tensordict.get(key)
            if isinstance(value, torch.Tensor) and value.dtype == self.dtype_in:
                tensordict.set(key, value.to(self.dtype_out))
        return tensordict

    def inv(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self._auto_inv and not self.in_keys_inv:
            raise TransformError(
                f"{self!r}.inv: no in_keys_inv: give them, or put the transform in a TransformedEnv"
            )
        return super().inv(tensordict)

    def _repr_args(self) -> list[str]:
        return [f"dtype_in={self.dtype_in}", f"dtype_out={self.dtype_out}"]


class DoubleToFloat(DTypeCastTransform):
    """``DTypeCastTransform(torch.float64, torch.float32, ...)``: float64 envs (MuJoCo)
    seen as float32, with float32 actions cast back to float64 for the env."""

    def __init__(self, in_keys: Any = None, out_keys: Any = None, in_keys_inv: Any = None,
                 out_keys_inv: Any = None) -> None:
        super().__init__(torch.float64, torch.float32, in_keys, out_keys, in_keys_inv, out_keys_inv)

