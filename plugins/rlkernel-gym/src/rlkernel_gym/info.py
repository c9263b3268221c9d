"""Reading chosen entries of gymnasium's ``info`` dict into the TensorDict.

``GymEnv(..., info_keys=...)`` accepts

* a mapping ``{name: spec}``, the spec without batch dims (``{"x_position": Unbounded(())}``);
* a list of names, whose specs are inferred (shape and dtype kept, ``Unbounded``) from one
  ``reset`` and one random ``step`` taken when the environment is built.

Each entry becomes a root observation key named like the info entry (so it appears at the
root and under ``"next"``). After ``step`` a missing entry is an
:class:`~rlkernel.errors.EnvError` naming the key; after ``reset`` an entry that gymnasium
only reports on steps is filled with its spec's ``zero()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from rlkernel.errors import EnvError, SpecError
from rlkernel.specs import TensorSpec, Unbounded
from rlkernel_gym.spaces import numpy_dtype, torch_dtype


def infer_info_specs(names: Iterable[str], infos: list[dict[str, Any]], batched: bool) -> dict[str, TensorSpec]:
    """Specs (without batch dims) for ``names``, read from sample ``infos`` (later ones win)."""
    specs: dict[str, TensorSpec] = {}
    for name in names:
        sample = next((info[name] for info in reversed(infos) if name in info), None)
        if sample is None:
            seen = sorted({k for info in infos for k in info if not k.startswith("_")})
            raise SpecError(
                f"info_keys: gymnasium's info has no entry {name!r} after a reset and a step "
                f"(entries seen: {seen}); pass info_keys={{{name!r}: spec}} to declare it"
            )
        arr = np.asarray(sample)
        if arr.dtype.kind not in "biuf":
            raise SpecError(f"info_keys: info entry {name!r} holds {arr.dtype} values, not numbers or bools")
        shape = arr.shape[1:] if batched else arr.shape
        specs[name] = Unbounded(shape, dtype=torch_dtype(arr.dtype))
    return specs


class InfoReader:
    """Copies the chosen ``info`` entries into numpy buffers or fresh arrays.

    ``specs`` are the event specs (no batch dims); ``batch`` is the env's batch size. In a
    vectorised env gymnasium reports ``info[name]`` with a mask ``info["_" + name]``.
    """

    def __init__(self, specs: Mapping[str, TensorSpec], batch: tuple[int, ...], device: Any) -> None:
        self.names = list(specs)
        self.batch = tuple(batch)
        for name, spec in specs.items():
            if not isinstance(spec, TensorSpec):
                raise SpecError(f"info_keys: the spec of {name!r} must be a TensorSpec, got {type(spec).__name__}")
        self.specs = {
            name: spec.expand(*self.batch, *spec.shape).to(device) if self.batch else spec.to(device)
            for name, spec in specs.items()
        }
        self.dtypes = [numpy_dtype(spec.dtype) for spec in self.specs.values()]
        self.zeros = [spec.zero().cpu().numpy() for spec in self.specs.values()]

    def __bool__(self) -> bool:
        return bool(self.names)

    def _missing(self, name: str, info: Mapping[str, Any], where: str) -> EnvError:
        present = sorted(k for k in info if not k.startswith("_"))
        return EnvError(
            f"info_keys: gymnasium's info after {where} has no entry {name!r} (entries: {present}); "
            f"expected a value of {self.specs[name]!r}"
        )

    def arrays(self, info: Mapping[str, Any], where: str) -> list[np.ndarray]:
        """One fresh array per name; ``where`` is ``"reset"`` (missing -> zero) or ``"step"``."""
        out = []
        for name, dtype, zero in zip(self.names, self.dtypes, self.zeros):
            value = info.get(name)
            if value is None or (self.batch and not _all_present(info, name)):
                if where != "reset":
                    raise self._missing(name, info, where)
                if value is None:
                    out.append(zero.copy())
                    continue
                value = np.where(_mask(info, name, value.shape), value, zero)
            out.append(np.array(value, dtype=dtype).reshape(zero.shape))
        return out

    def write(self, info: Mapping[str, Any], buffers: list[np.ndarray], index: Any) -> None:
        """Step values into ``buffers[i][index]``; a missing entry is an :class:`EnvError`."""
        for name, buf in zip(self.names, buffers):
            value = info.get(name)
            if value is None or (self.batch and not _all_present(info, name)):
                raise self._missing(name, info, "step")
            buf[index] = value

    def write_reset(self, info: Mapping[str, Any], buffers: list[np.ndarray], index: Any, rows: Any = None) -> None:
        """Reset values into ``buffers[i][index]`` (missing -> zero); in a vectorised env only
        the sub-envs ``rows`` (a bool mask) are written."""
        for name, buf, zero in zip(self.names, buffers, self.zeros):
            value = info.get(name)
            if not self.batch:
                buf[index] = zero if value is None else value
                continue
            fresh = zero if value is None else np.where(_mask(info, name, np.shape(value)), value, zero)
            view = buf[index]
            view[rows] = fresh[rows]


def _all_present(info: Mapping[str, Any], name: str) -> bool:
    mask = info.get("_" + name)
    return mask is None or bool(np.all(mask))


def _mask(info: Mapping[str, Any], name: str, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.asarray(info.get("_" + name, True), dtype=bool)
    return mask.reshape(mask.shape + (1,) * (len(shape) - mask.ndim))
