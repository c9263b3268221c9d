"""Image transforms: :class:`ToTensorImage`, :class:`Resize`, :class:`GrayScale` and
:class:`CenterCrop`.

Images are channels-last ``uint8`` when they come from a renderer (``H, W, C``) and
channels-first floats (``C, H, W``) after :class:`ToTensorImage`; any number of leading
(batch, time) dims is accepted. The default key is ``"pixels"``, as in TorchRL. As in
TorchRL, ``Resize(w, h)`` and ``CenterCrop(w, h)`` give images whose last two dims are
``(w, h)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from rlkernel.envs.step import NestedKey
from rlkernel.specs import Bounded, TensorSpec
from rlkernel.transforms._utils import TransformError, reshaped_leaf, show_key
from rlkernel.transforms.base import Transform

_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision's rgb_to_grayscale


def _positive_int(value: Any, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TransformError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


def _require_dims(spec: TensorSpec, key: NestedKey, ndim: int, owner: str, what: str) -> None:
    if len(spec.shape) < ndim:
        raise TransformError(f"{owner}: {show_key(key)} has shape {list(spec.shape)}; expected {what}")


class _ImageTransform(Transform):
    spec_groups = ("observation",)

    def __init__(self, in_keys: Any = None, out_keys: Any = None) -> None:
        super().__init__(["pixels"] if in_keys is None else in_keys, out_keys)


class ToTensorImage(_ImageTransform):
    """``H, W, C`` integer images (0-255) -> ``C, H, W`` floats in ``[0, 1]``.

    Args:
        from_int: divide by 255 (default: when the spec/value has an integer dtype).
        unsqueeze: add a leading dim when the image has no batch dim (as TorchRL).
        dtype: the output dtype.
        in_keys, out_keys: default ``["pixels"]``, in place.
    """

    def __init__(
        self,
        from_int: bool | None = None,
        unsqueeze: bool = False,
        dtype: torch.dtype = torch.float32,
        in_keys: Any = None,
        out_keys: Any = None,
    ) -> None:
        super().__init__(in_keys, out_keys)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TransformError(f"ToTensorImage: dtype must be a floating torch.dtype, got {dtype!r}")
        self.from_int = from_int
        self.unsqueeze = bool(unsqueeze)
        self.dtype = dtype

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        if value.ndim < 3:
            raise TransformError(f"{self!r}: expected H, W, C images, got a value of shape {list(value.shape)}")
        scale = self.from_int if self.from_int is not None else not value.is_floating_point()
        out = value.permute(*range(value.ndim - 3), -1, -3, -2).to(self.dtype)
        if scale:
            out = out.div(255.0)
        if self.unsqueeze and out.ndim == 3:
            out = out.unsqueeze(0)
        return out

    def _transform_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        _require_dims(spec, key, 3, repr(self), "H, W, C images")
        *lead, h, w, c = spec.shape
        shape = [*lead, c, h, w]
        if self.unsqueeze and len(spec.shape) == 3:
            shape = [1, *shape]
        scale = self.from_int if self.from_int is not None else not spec.dtype.is_floating_point
        if scale:
            return Bounded(0.0, 1.0, shape=shape, dtype=self.dtype, device=spec.device)
        return reshaped_leaf(spec, shape, owner=repr(self), key=key, dtype=self.dtype)


class Resize(_ImageTransform):
    """Resize ``C, H, W`` images to last dims ``(w, h)`` (``h`` defaults to ``w``).

    ``interpolation`` is a mode of :func:`torch.nn.functional.interpolate` (``"bilinear"``,
    ``"nearest"``, ``"bicubic"``, ``"area"``); bilinear and bicubic use antialiasing.
    Integer images are resized in float and rounded back to their dtype.
    """

    def __init__(self, w: int, h: int | None = None, interpolation: str = "bilinear", in_keys: Any = None,
                 out_keys: Any = None) -> None:
        super().__init__(in_keys, out_keys)
        self.w = _positive_int(w, "w", "Resize")
        self.h = _positive_int(w if h is None else h, "h", "Resize")
        modes = ("bilinear", "nearest", "bicubic", "area")
        if interpolation not in modes:
            raise TransformError(f"Resize: interpolation must be one of {modes}, got {interpolation!r}")
        self.interpolation = interpolation

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        if value.ndim < 3:
            raise TransformError(f"{self!r}: expected C, H, W images, got a value of shape {list(value.shape)}")
        lead = value.shape[:-3]
        x = value.reshape(-1, *value.shape[-3:])
        is_float = x.is_floating_point()
        if not is_float:
            x = x.to(torch.float32)
        kwargs: dict[str, Any] = {}
        if self.interpolation in ("bilinear", "bicubic"):
            kwargs = {"align_corners": False, "antialias": True}
        out = F.interpolate(x, size=(self.w, self.h), mode=self.interpolation, **kwargs)
        if not is_float:
            info = torch.iinfo(value.dtype)
            out = out.round().clamp(info.min, info.max).to(value.dtype)
        return out.reshape(*lead, *out.shape[-3:])

    def _transform_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        _require_dims(spec, key, 3, repr(self), "C, H, W images")
        return reshaped_leaf(spec, [*spec.shape[:-2], self.w, self.h], owner=repr(self), key=key)

    def _repr_args(self) -> list[str]:
        return [f"w={self.w}", f"h={self.h}", f"interpolation={self.interpolation!r}"]


class GrayScale(_ImageTransform):
    """``3, H, W`` RGB images -> ``1, H, W`` luma (integer images stay integers)."""

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        if value.ndim < 3 or value.shape[-3] != 3:
            raise TransformError(f"{self!r}: expected 3, H, W images, got a value of shape {list(value.shape)}")
        r, g, b = value.unbind(-3)
        is_float = value.is_floating_point()
        if not is_float:
            r, g, b = r.float(), g.float(), b.float()
        wr, wg, wb = _GRAY_WEIGHTS
        out = (r * wr + g * wg + b * wb).unsqueeze(-3)
        if not is_float:
            out = out.round().to(value.dtype)
        return out

    def _transform_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        _require_dims(spec, key, 3, repr(self), "3, H, W images")
        if spec.shape[-3] != 3:
            raise TransformError(
                f"{self!r}: {show_key(key)} has shape {list(spec.shape)}; expected 3 channels at dim -3"
            )
        return reshaped_leaf(spec, [*spec.shape[:-3], 1, *spec.shape[-2:]], owner=repr(self), key=key)


class CenterCrop(_ImageTransform):
    """Crop the centre of ``C, H, W`` images to last dims ``(w, h)`` (``h`` defaults to ``w``)."""

    def __init__(self, w: int, h: int | None = None, in_keys: Any = None, out_keys: Any = None) -> None:
        super().__init__(in_keys, out_keys)
        self.w = _positive_int(w, "w", "CenterCrop")
        self.h = _positive_int(w if h is None else h, "h", "CenterCrop")

    def _window(self, rows: int, cols: int) -> tuple[int, int]:
        if self.w > rows or self.h > cols:
            raise TransformError(f"{self!r}: cannot crop ({self.w}, {self.h}) out of images of size ({rows}, {cols})")
        return round((rows - self.w) / 2.0), round((cols - self.h) / 2.0)

    def _crop(self, value: torch.Tensor) -> torch.Tensor:
        top, left = self._window(value.shape[-2], value.shape[-1])
        return value[..., top : top + self.w, left : left + self.h]

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        if value.ndim < 2:
            raise TransformError(f"{self!r}: expected images, got a value of shape {list(value.shape)}")
        return self._crop(value)

    def _transform_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        _require_dims(spec, key, 2, repr(self), "images")
        self._window(spec.shape[-2], spec.shape[-1])
        shape = [*spec.shape[:-2], self.w, self.h]
        return reshaped_leaf(spec, shape, owner=repr(self), key=key, bounds=lambda b: self._crop(b).contiguous())

    def _repr_args(self) -> list[str]:
        return [f"w={self.w}", f"h={self.h}"]
