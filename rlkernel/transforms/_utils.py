"""Helpers shared by the transform modules: keys, errors, reset masks, spec reshaping and
the time-window arithmetic used by ``forward`` on trajectories.

Nothing here is public API except the two exception classes, which
:mod:`rlkernel.transforms` re-exports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import unravel_key

from rlkernel.envs.step import DONE, NEXT, RESET, NestedKey
from rlkernel.errors import RLKernelError
from rlkernel.specs import Bounded, Categorical, Composite, TensorSpec, Unbounded


class TransformError(RLKernelError, ValueError):
    """A transform was given bad arguments, or met a spec or a value it cannot handle."""


class TransformKeyError(TransformError, KeyError):
    """A key a transform reads is missing; the message names it and the keys present."""

    def __str__(self) -> str:  # KeyError would otherwise print the repr of the message
        return str(self.args[0]) if self.args else ""


# ----------------------------------------------------------------------------- keys
def show_key(key: NestedKey) -> str:
    """``'obs'`` or ``('next', 'obs')``, as messages print keys."""
    return repr(key)


def as_key(key: Any, owner: str, what: str) -> NestedKey:
    """A string or a (possibly nested) tuple of strings, flattened TensorDict-style."""
    try:
        out = unravel_key(key)
    except Exception:  # tensordict raises a variety of types here
        out = None
    if not isinstance(out, (str, tuple)) or (isinstance(out, tuple) and not out):
        raise TransformError(f"{owner}: {what} must hold strings or tuples of strings, got {key!r}")
    return out


def as_keys(keys: Any, owner: str, what: str) -> list[NestedKey]:
    """Normalise ``None``, one key or a sequence of keys into a list of keys."""
    if keys is None:
        return []
    if isinstance(keys, str) or (isinstance(keys, tuple) and all(isinstance(k, str) for k in keys)):
        return [as_key(keys, owner, what)]
    if not isinstance(keys, Sequence):
        raise TransformError(f"{owner}: {what} must be a key or a list of keys, got {keys!r}")
    return [as_key(k, owner, what) for k in keys]


def leaf_keys(td: TensorDictBase) -> list[str]:
    """The leaf keys of ``td`` as sorted strings, for messages."""
    return sorted(map(str, td.keys(include_nested=True, leaves_only=True)))


def missing_key_error(owner: str, key: NestedKey, td: TensorDictBase, where: str) -> TransformKeyError:
    return TransformKeyError(
        f"{owner}: key {show_key(key)} not found in the {where}; keys present: {leaf_keys(td)}"
    )


def next_key(key: NestedKey) -> tuple[str, ...]:
    """``"obs"`` -> ``("next", "obs")``; ``("a", "b")`` -> ``("next", "a", "b")``."""
    return (NEXT, *key) if isinstance(key, tuple) else (NEXT, key)


def sibling_key(key: NestedKey, name: str) -> NestedKey:
    """The key ``name`` next to ``key``: ``("agents", "reward")`` -> ``("agents", name)``."""
    return (*key[:-1], name) if isinstance(key, tuple) else name


def spec_keys(spec: Composite) -> list[NestedKey]:
    return list(spec.keys(include_nested=True, leaves_only=True))


class KeyList:
    """A list-of-keys attribute: normalised when set; ``None`` means empty, or the value of
    ``default`` (``out_keys`` defaults to ``in_keys``). Setting it drops the cached pairs."""

    def __init__(self, default: str | None = None, cache: str = "_pairs") -> None:
        self.default = default
        self.cache = cache

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__.get("_" + self.name)
        if value is None:
            return list(getattr(obj, self.default)) if self.default else []
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        keys = None if value is None else as_keys(value, type(obj).__name__, self.name)
        obj.__dict__["_" + self.name] = keys
        obj.__dict__[self.cache] = None


def group_keys(spec: Composite, groups: tuple[str, ...]) -> list[NestedKey]:
    """The leaf keys of the named sub-composites of ``spec`` (``"full_observation_spec"``, ...)."""
    keys: list[NestedKey] = []
    for group in groups:
        sub = spec.get(group)
        if sub is not None:
            keys += spec_keys(sub)
    return keys


# ----------------------------------------------------------------------------- reset masks
def reset_mask(tensordict: TensorDictBase | None, batch_size: torch.Size) -> torch.Tensor | None:
    """The sub-environments being reset, as a bool tensor of shape ``batch_size``.

    ``None`` means all of them (no ``"_reset"`` entry, or one that is all True). An
    unbatched env gets a 0-dim mask when its ``"_reset"`` entry is False.
    """
    if tensordict is None:
        return None
    mask = tensordict.get(RESET, None)
    if mask is None:
        return None
    if mask.ndim > len(batch_size):
        mask = mask.reshape(*batch_size, -1).any(-1)
    if bool(mask.all()):
        return None
    return mask


def expand_mask(mask: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Reshape a batch-shaped mask so that it broadcasts against ``value``."""
    return mask.reshape(*mask.shape, *([1] * (value.ndim - mask.ndim)))


def masked_fill_reset(mask: torch.Tensor | None, fresh: torch.Tensor, old: torch.Tensor | None) -> torch.Tensor:
    """``fresh`` where the mask is set (or everywhere without a mask), else ``old``."""
    if mask is None or old is None:
        return fresh
    return torch.where(expand_mask(mask, fresh), fresh, old)


# ----------------------------------------------------------------------------- specs
def reshaped_leaf(
    spec: TensorSpec,
    shape: Sequence[int],
    *,
    owner: str,
    key: NestedKey,
    bounds: Callable[[torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype | None = None,
) -> TensorSpec:
    """A spec like ``spec`` with another shape (and optionally dtype).

    ``Bounded`` bounds go through ``bounds`` when given (it must map a bound tensor of the
    old shape to one of the new shape), else become the overall min and max.
    """
    dtype = spec.dtype if dtype is None else dtype
    shape = torch.Size(shape)
    if isinstance(spec, Bounded):
        if bounds is not None:
            low, high = bounds(spec.low), bounds(spec.high)
        else:
            low, high = spec.low.min(), spec.high.max()
        return Bounded(low, high, shape=shape, dtype=dtype, device=spec.device)
    if isinstance(spec, Unbounded):
        return Unbounded(shape=shape, dtype=dtype, device=spec.device)
    if isinstance(spec, Categorical) and spec.mask is None and dtype == spec.dtype:
        return Categorical(spec.n, shape=shape, dtype=dtype, device=spec.device)
    raise TransformError(
        f"{owner}: cannot change the shape of the spec of {show_key(key)} ({spec!r}); "
        "supported specs: Unbounded, Bounded and Categorical without a mask"
    )


def event_shape(spec: TensorSpec, batch_ndim: int) -> torch.Size:
    return spec.shape[batch_ndim:]


# ----------------------------------------------------------------------------- time windows
def episode_starts(tensordict: TensorDictBase, done_key: NestedKey = DONE) -> torch.Tensor:
    """Where episodes start in a trajectory of batch size ``[*B, T]``: bool ``[*B, T]``.

    Step 0 starts a (possibly partial) episode; step ``t`` starts one when
    ``("next", done)`` was set at ``t - 1`` or when the root ``is_init`` flag says so.
    """
    batch = tensordict.batch_size
    starts = torch.zeros(batch, dtype=torch.bool, device=tensordict.device)
    starts[..., 0] = True
    done = tensordict.get(next_key(done_key), None)
    if done is not None:
        done = done.reshape(*batch, -1).any(-1)
        starts[..., 1:] |= done[..., :-1]
    is_init = tensordict.get("is_init", None)
    if is_init is not None and is_init.dtype == torch.bool:
        starts |= is_init.reshape(*batch, -1).any(-1)
    return starts


def episode_start_index(starts: torch.Tensor) -> torch.Tensor:
    """For each step of ``starts`` (bool ``[*B, T]``), the index of its episode's first step."""
    steps = torch.arange(starts.shape[-1], device=starts.device).expand_as(starts)
    return torch.where(starts, steps, torch.zeros_like(steps)).cummax(-1).values


def window_index(starts: torch.Tensor, n: int, shift: int = 0) -> torch.Tensor:
    """Source time indices ``[*B, T, n]`` of the ``n`` frames ending at ``t + shift``,
    oldest first, never reaching back before the start of ``t``'s episode."""
    t = starts.shape[-1]
    steps = torch.arange(t, device=starts.device)
    offsets = torch.arange(n - 1, -1, -1, device=starts.device)
    wanted = (steps.unsqueeze(-1) + shift - offsets).expand(*starts.shape, n)
    first = episode_start_index(starts).unsqueeze(-1)
    return torch.maximum(wanted, first)


def gather_time(value: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``value[*B, T, *E]`` gathered at ``index[*B, T, n]`` along T: ``[*B, T, n, *E]``."""
    lead = index.shape[:-2]
    t, n = index.shape[-2:]
    flat = value.reshape(-1, value.shape[len(lead)], *value.shape[len(lead) + 1 :])
    idx = index.reshape(-1, t, n)
    rows = torch.arange(flat.shape[0], device=value.device).reshape(-1, 1, 1)
    out = flat[rows, idx]
    return out.reshape(*lead, t, n, *value.shape[len(lead) + 1 :])
