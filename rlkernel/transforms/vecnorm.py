""":class:`VecNorm`: normalisation by running statistics, shareable across processes."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.envs.common import EnvBase
from rlkernel.envs.step import NEXT, NestedKey
from rlkernel.specs import TensorSpec, Unbounded
from rlkernel.transforms._utils import (
    TransformError,
    as_keys,
    missing_key_error,
    reset_mask,
    show_key,
)
from rlkernel.transforms.base import Transform

_STAT_DTYPE = torch.float64


def _path(key: NestedKey) -> tuple[str, ...]:
    return key if isinstance(key, tuple) else (key,)


class VecNorm(Transform):
    """Normalise by running mean and standard deviation: ``(x - mean) / max(std, eps)``.

    The statistics are running sums ``sum``, ``ssq`` (sum of squares) and ``count`` per
    key, each multiplied by ``decay`` before every update (``decay=1`` keeps all history).
    They live in a TensorDict (:attr:`shared_data`) of float64 tensors that are updated in
    place; share it (:meth:`share_memory_` or :meth:`build_shared_data`) and give it as
    ``shared_data=`` to the VecNorm of every worker process: all of them then update and
    read the same statistics. Pass the same ``lock`` (a ``multiprocessing`` lock) to every
    worker to make the updates atomic.

    Two ways to share: shared memory (the default) travels to processes started by
    ``multiprocessing`` (``Process(args=...)``, queues), which pass its tensors by handle;
    anything that serialises to plain bytes first (``ParallelEnv`` sends its factories
    through cloudpickle) would copy it. With ``path=`` the statistics live in
    memory-mapped files under ``path`` instead, which travel by file name through any
    pickling; guard them with a :class:`~rlkernel.transforms.file_lock.FileLock` (a path
    too), since a ``multiprocessing`` lock cannot travel that way and concurrent
    unguarded updates can lose counts.

    The statistics are updated on ``reset`` (for the sub-environments being reset) and
    ``step`` while the transform is in training mode and not :meth:`freeze`-d; ``forward``
    (replay-buffer data) only normalises. The output spec is ``Unbounded`` float.

    Args:
        in_keys: keys to normalise (default ``["observation"]``; TorchRL's default also
            normalises the reward).
        out_keys: where the results go (default: in place).
        decay: forgetting factor in ``(0, 1]``.
        eps: lower bound of the standard deviation.
        shared_data: statistics made by another VecNorm (:attr:`shared_data`) or by
            :meth:`build_shared_data`.
        lock: a lock guarding updates: ``multiprocessing.get_context(...).Lock()`` for
            processes you start, or ``FileLock(path)`` for factories sent as bytes.

    Example (workers in other processes)::

        shared = VecNorm.build_shared_data(make_env(), ["observation"])
        ctx = multiprocessing.get_context("spawn")
        workers = [ctx.Process(target=run, args=(shared, lock)) for _ in range(4)]
        # in run(): env = TransformedEnv(make_env(), VecNorm(shared_data=shared, lock=lock))

        # a ParallelEnv whose workers normalise with common statistics
        shared = VecNorm.build_shared_data(make_env(), path=tmpdir)
        lock = FileLock(os.path.join(tmpdir, "stats.lock"))
        env = ParallelEnv(4, functools.partial(make_normalized_env, shared_data=shared, lock=lock))
    """

    spec_groups = ("observation",)

    def __init__(
        self,
        in_keys: Any = None,
        out_keys: Any = None,
        decay: float = 0.9999,
        eps: float = 1e-4,
        shared_data: TensorDictBase | None = None,
        lock: Any = None,
    ) -> None:
        super().__init__(["observation"] if in_keys is None else in_keys, out_keys)
        if not 0.0 < decay <= 1.0:
            raise TransformError(f"VecNorm: decay must be in (0, 1], got {decay}")
        if not eps > 0:
            raise TransformError(f"VecNorm: eps must be > 0, got {eps}")
        if shared_data is not None and not isinstance(shared_data, TensorDictBase):
            raise TransformError(f"VecNorm: shared_data must be a TensorDict, got {type(shared_data).__name__}")
        self.decay = float(decay)
        self.eps = float(eps)
        self.lock = lock
        self.frozen = False
        self._shared = shared_data is not None
        self._data: TensorDictBase = shared_data if shared_data is not None else TensorDict({}, [])
        self._cache: dict[NestedKey, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    # ------------------------------------------------------------------ statistics
    @property
    def shared_data(self) -> TensorDictBase:
        """The statistics: ``data[key]`` holds ``sum``, ``ssq`` and ``count``."""
        return self._data

    def share_memory_(self, path: str | None = None) -> TensorDictBase:
        """Share the statistics (in place) and return them: in shared memory, or in
        memory-mapped files under the directory ``path`` (see the class docstring)."""
        missing = [k for k in self.in_keys if k not in self._cache]
        if missing:
            raise TransformError(
                f"VecNorm.share_memory_: no statistics yet for {missing}; put the transform in a "
                "TransformedEnv first (or use VecNorm.build_shared_data)"
            )
        self._data = _share(self._data, path)
        self._shared = True
        self._cache.clear()
        return self._data

    @staticmethod
    def build_shared_data(env: EnvBase, in_keys: Any = None, path: str | None = None) -> TensorDictBase:
        """Zero statistics for ``in_keys`` (default ``["observation"]``) of ``env``'s
        observation spec, in shared memory (or memory-mapped files under ``path``), to give
        as ``shared_data=`` to every VecNorm."""
        keys = as_keys(["observation"] if in_keys is None else in_keys, "VecNorm", "in_keys")
        data = TensorDict({}, [])
        spec = env.full_observation_spec
        for key in keys:
            if key not in spec:
                raise TransformError(
                    f"VecNorm.build_shared_data: {show_key(key)} is not in the observation spec; keys "
                    f"there: {sorted(map(str, spec.keys(True, True)))}"
                )
            event = spec[key].shape[len(env.batch_size):]
            data.set(_path(key), _zeros(event))
        return _share(data, path)

    def _ensure(self, key: NestedKey, event: torch.Size) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cached = self._cache.get(key)
        if cached is not None:
            if cached[0].shape != event:
                raise TransformError(
                    f"VecNorm: statistics of {show_key(key)} have shape {list(cached[0].shape)} but the "
                    f"values have event shape {list(event)}"
                )
            return cached
        stats = self._data.get(_path(key), None)
        if stats is None:
            if self._shared:
                raise TransformError(
                    f"VecNorm: shared_data has no statistics for {show_key(key)} (it holds "
                    f"{sorted(map(str, self._data.keys(True, True)))}); build it with "
                    "VecNorm.build_shared_data(env, in_keys)"
                )
            stats = _zeros(event)
            self._data.set(_path(key), stats)
        cached = (stats.get("sum"), stats.get("ssq"), stats.get("count"))
        if cached[0].shape != event:
            raise TransformError(
                f"VecNorm: shared statistics of {show_key(key)} have shape {list(cached[0].shape)}, "
                f"expected {list(event)}"
            )
        self._cache[key] = cached
        return cached

    def freeze(self) -> VecNorm:
        """Stop updating the statistics (normalisation continues); returns ``self``."""
        self.frozen = True
        return self

    def unfreeze(self) -> VecNorm:
        """Resume updating the statistics; returns ``self``."""
        self.frozen = False
        return self

    def _update(self, key: NestedKey, value: torch.Tensor, batch_ndim: int) -> None:
        s, q, c = self._ensure(key, value.shape[batch_ndim:])
        x = value.reshape(-1, *s.shape).to(device=s.device, dtype=_STAT_DTYPE)
        with self.lock if self.lock is not None else contextlib.nullcontext():
            if self.decay != 1.0:
                s.mul_(self.decay)
                q.mul_(self.decay)
                c.mul_(self.decay)
            s.add_(x.sum(0))
            q.add_(x.square().sum(0))
            c.add_(x.shape[0])

    def _normalize(self, key: NestedKey, value: torch.Tensor, batch_ndim: int) -> torch.Tensor:
        s, q, c = self._ensure(key, value.shape[batch_ndim:])
        if bool(c <= 0):
            raise TransformError(f"VecNorm: no statistics for {show_key(key)} yet (nothing was observed)")
        mean = s / c
        std = (q / c - mean.square()).clamp_min(0.0).sqrt().clamp_min(self.eps)
        dtype = value.dtype if value.is_floating_point() else torch.get_default_dtype()
        device = value.device
        return (value - mean.to(device=device, dtype=dtype)) / std.to(device=device, dtype=dtype)

    def loc_scale(self, key: NestedKey | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The current mean and standard deviation of ``key`` (default: the first in_key)."""
        key = self.in_keys[0] if key is None else key
        stats = self._data.get(_path(key), None)
        if stats is None:
            raise TransformError(f"VecNorm: no statistics for {show_key(key)}")
        s, q, c = stats.get("sum"), stats.get("ssq"), stats.get("count")
        mean = s / c
        return mean, (q / c - mean.square()).clamp_min(0.0).sqrt()

    # ------------------------------------------------------------------ data path
    def _process(self, td: TensorDictBase, mask: torch.Tensor | None, tolerant: bool, where: str) -> TensorDictBase:
        nd = td.batch_dims
        update = self.training and not self.frozen
        for in_key, out_key in self._key_pairs():
            value = td.get(in_key, None)
            if value is None:
                if tolerant:
                    continue
                raise missing_key_error(repr(self), in_key, td, where)
            if update:
                if mask is None:
                    self._update(in_key, value, nd)
                elif bool(mask.any()):
                    self._update(in_key, value[mask], 1)
            td.set(out_key, self._normalize(in_key, value, nd))
        return td

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        return self._process(next_tensordict, None, False, "environment's output")

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        mask = reset_mask(tensordict, tensordict_reset.batch_size)
        return self._process(tensordict_reset, mask, True, "reset output")

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Normalise ``in_keys`` (root and ``"next"``) with the current statistics."""
        nd = tensordict.batch_dims
        nxt = tensordict.get(NEXT, None)
        for in_key, out_key in self._key_pairs():
            found = False
            for td in (tensordict, nxt):
                if not isinstance(td, TensorDictBase):
                    continue
                value = td.get(in_key, None)
                if value is not None:
                    td.set(out_key, self._normalize(in_key, value, nd))
                    found = True
            if not found:
                raise missing_key_error(repr(self), in_key, tensordict, "TensorDict given to forward()")
        return tensordict

    # ------------------------------------------------------------------ specs
    def _transform_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        return Unbounded(shape=spec.shape, dtype=self._float(spec.dtype), device=spec.device)

    @staticmethod
    def _float(dtype: torch.dtype) -> torch.dtype:
        return dtype if dtype.is_floating_point else torch.get_default_dtype()

    def transform_observation_spec(self, observation_spec: Any) -> Any:
        nd = len(observation_spec.shape)
        for in_key in self.in_keys:
            if in_key in observation_spec:
                self._ensure(in_key, observation_spec[in_key].shape[nd:])
        return super().transform_observation_spec(observation_spec)

    def get_extra_state(self) -> dict[str, Any]:
        """The statistics as nested dicts of tensors (what ``state_dict`` saves)."""
        return self._data.to_dict()

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Load statistics saved by :meth:`get_extra_state`, in place where they exist (so
        that shared statistics stay shared)."""
        incoming = TensorDict(state, [])
        for key, value in incoming.items(include_nested=True, leaves_only=True):
            current = self._data.get(key, None)
            if current is not None and current.shape == value.shape:
                current.copy_(value)
            else:
                self._data.set(key, value.clone())
        self._cache.clear()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_cache"] = {}
        return state

    def _repr_args(self) -> list[str]:
        return [f"decay={self.decay}", f"eps={self.eps}", *(["shared"] if self._shared else [])]


def _share(data: TensorDictBase, path: str | None) -> TensorDictBase:
    if path is None:
        return data.share_memory_()
    if data.is_shared():
        raise TransformError("VecNorm: the statistics are already in shared memory; they cannot also be memory-mapped")
    return data.memmap_(prefix=path)


def _zeros(event: torch.Size) -> TensorDict:
    return TensorDict(
        {
            "sum": torch.zeros(event, dtype=_STAT_DTYPE),
            "ssq": torch.zeros(event, dtype=_STAT_DTYPE),
            "count": torch.zeros((), dtype=_STAT_DTYPE),
        },
        [],
    )
