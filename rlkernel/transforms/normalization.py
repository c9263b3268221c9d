""":class:`ObservationNorm`: an affine normalisation with fixed (or once-estimated) statistics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rlkernel.envs.step import NestedKey
from rlkernel.specs import Bounded, TensorSpec, Unbounded
from rlkernel.transforms._utils import TransformError
from rlkernel.transforms.base import Transform


def _as_stat(value: Any, name: str) -> torch.Tensor | None:
    if value is None:
        return None
    t = torch.as_tensor(value)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if not bool(torch.isfinite(t).all()):
        raise TransformError(f"ObservationNorm: {name} must be finite, got {t}")
    return t


class ObservationNorm(Transform):
    """``(obs - loc) / scale`` with ``standard_normal=True``, else ``obs * scale + loc``.

    ``loc`` and ``scale`` are buffers (they go with ``state_dict``). When they are not
    given, :meth:`init_stats` estimates them from random rollouts of the parent env. The
    output spec keeps the shape; ``Bounded`` bounds are mapped through the affine map
    (once the statistics are known) and integer observations become floating point.

    Args:
        loc, scale: numbers or tensors broadcastable to the observation's event shape.
        in_keys: keys to normalise (default ``["observation"]``).
        out_keys: where the results go (default: in place).
        in_keys_inv, out_keys_inv: action or state keys whose inverse is applied (the
            outside world then writes normalised values).
        standard_normal: which of the two formulas above is used.
        eps: lower bound of ``scale`` (standard_normal) or of the estimated std.

    Example::

        >>> from rlkernel.testing import CountingEnv
        >>> from rlkernel.transforms import TransformedEnv
        >>> env = TransformedEnv(CountingEnv(), ObservationNorm(loc=1.0, scale=2.0, standard_normal=True))
        >>> env.reset()["observation"]
        tensor([-0.5000])
    """

    spec_groups = ("observation",)

    def __init__(
        self,
        loc: Any = None,
        scale: Any = None,
        in_keys: Any = None,
        out_keys: Any = None,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
        standard_normal: bool = False,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(["observation"] if in_keys is None else in_keys, out_keys, in_keys_inv, out_keys_inv)
        if (loc is None) != (scale is None):
            raise TransformError("ObservationNorm: give both loc and scale, or neither (then call init_stats)")
        if not eps > 0:
            raise TransformError(f"ObservationNorm: eps must be > 0, got {eps}")
        self.standard_normal = bool(standard_normal)
        self.eps = float(eps)
        loc_t, scale_t = _as_stat(loc, "loc"), _as_stat(scale, "scale")
        if scale_t is not None:
            if self.standard_normal:
                if bool((scale_t <= 0).any()):
                    raise TransformError(f"ObservationNorm: scale must be > 0 with standard_normal, got {scale_t}")
                scale_t = scale_t.clamp_min(self.eps)
            elif bool((scale_t == 0).any()):
                raise TransformError(f"ObservationNorm: scale must be non-zero, got {scale_t}")
        self.register_buffer("loc", loc_t)
        self.register_buffer("scale", scale_t)

    @property
    def initialized(self) -> bool:
        """Whether ``loc`` and ``scale`` are set."""
        return self.loc is not None and self.scale is not None

    def _stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.loc is None or self.scale is None:
            raise TransformError(
                f"{self!r} has no loc/scale yet: pass loc= and scale=, or call init_stats(num_iter) "
                "once it is inside a TransformedEnv"
            )
        return self.loc, self.scale

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        loc, scale = self._stats()
        if self.standard_normal:
            return (value - loc) / scale
        return value * scale + loc

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        loc, scale = self._stats()
        if self.standard_normal:
            return value * scale + loc
        return (value - loc) / scale

    def _out_dtype(self, dtype: torch.dtype) -> torch.dtype:
        stat = self.loc.dtype if self.loc is not None else torch.get_default_dtype()
        return torch.promote_types(dtype, stat)

    def _transform_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        dtype = self._out_dtype(spec.dtype)
        if isinstance(spec, Bounded) and self.initialized:
            a = self._apply_transform(spec.low.to(dtype))
            b = self._apply_transform(spec.high.to(dtype))
            shape = torch.broadcast_shapes(a.shape, spec.shape)
            if shape == spec.shape:
                return Bounded(torch.minimum(a, b), torch.maximum(a, b), shape=spec.shape, dtype=dtype)
        return Unbounded(shape=spec.shape, dtype=dtype, device=spec.device)

    def _transform_inv_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        return self._transform_spec(spec, key)

    def init_stats(
        self,
        num_iter: int,
        reduce_dim: int | Sequence[int] = 0,
        cat_dim: int | None = None,
        key: NestedKey | None = None,
        keep_dims: Sequence[int] | None = None,
    ) -> None:
        """Estimate ``loc`` and ``scale`` from ``num_iter`` random steps of the parent env.

        The values of ``key`` (default: the first in_key) are collected with
        ``parent.rollout(num_iter, break_when_any_done=False)``, concatenated along
        ``cat_dim`` (default: ``reduce_dim``, which must then be an int) and reduced over
        ``reduce_dim``: for an unbatched env the rollout has shape ``[T, *obs]`` and the
        defaults are right; for a batched env of batch size ``[N]`` pass
        ``reduce_dim=(0, 1), cat_dim=1``. ``keep_dims`` are reduced dims kept as size 1.
        Afterwards the observation follows a standard normal distribution (roughly).
        """
        if self.initialized:
            raise TransformError(f"{self!r}: loc and scale are already set")
        if not isinstance(num_iter, int) or num_iter < 2:
            raise TransformError(f"ObservationNorm.init_stats: num_iter must be an int >= 2, got {num_iter!r}")
        parent = self.parent
        if parent is None:
            raise TransformError("ObservationNorm.init_stats needs the transform to be inside a TransformedEnv")
        dims = [reduce_dim] if isinstance(reduce_dim, int) else list(reduce_dim)
        if cat_dim is None:
            if not isinstance(reduce_dim, int):
                raise TransformError("ObservationNorm.init_stats: give cat_dim when reduce_dim is not an int")
            cat_dim = reduce_dim
        key = self.in_keys[0] if key is None else key
        data = parent.rollout(num_iter, break_when_any_done=False).get(key)
        if not data.is_floating_point():
            data = data.to(torch.get_default_dtype())
        if data.shape[cat_dim] < 2:
            raise TransformError(f"ObservationNorm.init_stats: dim {cat_dim} of the rollout has fewer than 2 steps")
        loc = data.mean(dims, keepdim=True)
        std = data.std(dims, keepdim=True).clamp_min(self.eps)
        keep = {d % data.ndim for d in (keep_dims or ())}
        for d in sorted((d % data.ndim for d in dims), reverse=True):
            if d not in keep:
                loc, std = loc.squeeze(d), std.squeeze(d)
        if self.standard_normal:
            self.loc, self.scale = loc, std
        else:
            self.scale = 1.0 / std
            self.loc = -loc / std
        self._specs_changed()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # loc/scale may still be None here: materialise them so that loading fills them.
        for name in ("loc", "scale"):
            value = state_dict.get(prefix + name)
            if getattr(self, name) is None and value is not None:
                setattr(self, name, torch.empty_like(value))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _repr_args(self) -> list[str]:
        if not self.initialized:
            return ["uninitialized"]
        return [f"loc={self.loc}", f"scale={self.scale}", f"standard_normal={self.standard_normal}"]
