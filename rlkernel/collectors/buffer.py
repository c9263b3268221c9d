"""The preallocated batch a collector writes its steps into.

:class:`RolloutBuffer` holds one TensorDict of batch size ``(*env_batch, T)``, allocated
once from the first step. Each later step copies its leaves into the slot of time ``t``
with no TensorDict built per step: on the CPU through NumPy views of the leaves made once
(an indexed NumPy assignment per leaf, no tensor view made per step), elsewhere by one fused
``torch._foreach_copy_`` over views computed once. The root leaves and the ``"next"``
leaves are written separately (the root before the environment steps, so that an
environment reusing its output tensors cannot change what was recorded)::

    >>> import torch
    >>> from tensordict import TensorDict
    >>> step = TensorDict({"observation": torch.zeros(3), "next": {"reward": torch.zeros(1)}}, [])
    >>> buf = RolloutBuffer(step, steps=5, env_ndim=0)
    >>> buf.write(2, [torch.ones(3)], ROOT)
    >>> buf.write(2, [torch.ones(1)], NEXT_PART)
    >>> buf.data["observation"][2]
    tensor([1., 1., 1.])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.envs.step import NEXT, NestedKey

__all__ = ["NEXT_PART", "PARTIAL_AND_NEXT", "ROOT", "ROOT_PARTIAL", "RolloutBuffer"]

# The parts write() takes: all root leaves, the root leaves not filled by fill_shifted, the
# "next" leaves, and the last two in one call.
ROOT, ROOT_PARTIAL, NEXT_PART, PARTIAL_AND_NEXT = "root", "root_partial", "next", "root_partial+next"

# Above this many (step, leaf) pairs the per-step views are made on the fly instead of cached.
_MAX_CACHED_VIEWS = 262_144


def _is_next(key: NestedKey) -> bool:
    return isinstance(key, tuple) and key[0] == NEXT


class RolloutBuffer:
    """A TensorDict of ``steps`` time steps shaped like ``template``, written step by step.

    Args:
        template: one step (batch size = the environment's), root entries and ``"next"``.
        steps: the number of time steps ``T``.
        env_ndim: the number of environment batch dims; time is the dim after them.
        device: where the buffer lives (default: each leaf's own device).
        shared: allocate in shared memory (for worker processes).

    ``root_keys`` and ``next_keys`` list the leaves in the order :meth:`write` expects them
    (``next_keys`` are relative to ``"next"``).
    """

    def __init__(
        self,
        template: TensorDictBase,
        steps: int,
        env_ndim: int,
        *,
        device: torch.device | None = None,
        shared: bool = False,
    ) -> None:
        self.steps = steps
        self.time_dim = env_ndim
        batch = tuple(template.batch_size)
        self.data = TensorDict({}, batch_size=(*batch, steps), device=device)
        keys = list(template.keys(include_nested=True, leaves_only=True))
        self.root_keys: list[NestedKey] = [k for k in keys if not _is_next(k)]
        next_full = [k for k in keys if _is_next(k)]
        self.next_keys: list[NestedKey] = [(k[1] if len(k) == 2 else k[1:]) for k in next_full]  # type: ignore[index]
        ordered = [*self.root_keys, *next_full]  # the order write() expects
        self._leaves: list[torch.Tensor] = []
        for key in ordered:
            value = template.get(key)
            shape = (*value.shape[:env_ndim], steps, *value.shape[env_ndim:])
            leaf = torch.zeros(shape, dtype=value.dtype, device=device if device is not None else value.device)
            if shared:
                leaf.share_memory_()
            self.data.set(key, leaf)
            self._leaves.append(self.data.get(key))
        self._same_device = all(leaf.device == template.get(k).device for leaf, k in zip(self._leaves, ordered))
        #: NumPy views of the leaves (all on the CPU, of dtypes NumPy has), else ``None``.
        self._arrays: list[np.ndarray] | None = None
        if all(leaf.device.type == "cpu" for leaf in self._leaves):
            try:
                self._arrays = [leaf.numpy() for leaf in self._leaves]
            except TypeError:  # a dtype NumPy lacks (bfloat16, ...): the torch path for all
                self._arrays = None
        self._lead = (slice(None),) * env_ndim  # indexes the env dims before time
        self._cached = steps * len(keys) <= _MAX_CACHED_VIEWS
        self._per_step: list[tuple[torch.Tensor, ...] | None] = [None] * len(self._leaves)
        n_root = len(self.root_keys)
        self._parts: dict[str, list[int]] = {
            ROOT: list(range(n_root)),
            ROOT_PARTIAL: list(range(n_root)),
            NEXT_PART: list(range(n_root, len(self._leaves))),
            PARTIAL_AND_NEXT: list(range(len(self._leaves))),
        }
        self._shifted: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._cache: dict[str, list[list[torch.Tensor] | None]] = {part: [None] * steps for part in self._parts}

    def set_shifted(self, pairs: Sequence[tuple[int, int]]) -> None:
        """Declare root leaves that equal a ``"next"`` leaf one step earlier.

        ``pairs`` holds ``(root_index, next_index)`` (positions in :attr:`root_keys` and
        :attr:`next_keys`). Writes of the ``ROOT_PARTIAL`` part then skip those root
        leaves, and :meth:`fill_shifted` copies them from ``"next"`` at the end of the batch.
        """
        n_root = len(self.root_keys)
        skipped = {root for root, _ in pairs}
        self._parts[ROOT_PARTIAL] = [i for i in range(n_root) if i not in skipped]
        self._parts[PARTIAL_AND_NEXT] = [*self._parts[ROOT_PARTIAL], *self._parts[NEXT_PART]]
        self._shifted = [(self._leaves[root], self._leaves[n_root + nxt]) for root, nxt in pairs]
        self._cache[ROOT_PARTIAL] = [None] * self.steps
        self._cache[PARTIAL_AND_NEXT] = [None] * self.steps

    @property
    def partial_root_indices(self) -> list[int]:
        """Positions (in :attr:`root_keys`) of the root leaves the ``ROOT_PARTIAL`` part holds."""
        return list(self._parts[ROOT_PARTIAL])

    def views(self, t: int, part: str = ROOT) -> list[torch.Tensor]:
        """The slots of ``part`` (``ROOT``, ``ROOT_PARTIAL``, ``NEXT_PART``, ``PARTIAL_AND_NEXT``) at ``t``."""
        if not self._cached:
            return [self._leaves[i].select(self.time_dim, t) for i in self._parts[part]]
        cache = self._cache[part]
        found = cache[t]
        if found is None:  # each leaf is split into its steps once, in one call (not a select per step)
            found = cache[t] = [self._step_views(i)[t] for i in self._parts[part]]
        return found

    def _step_views(self, index: int) -> tuple[torch.Tensor, ...]:
        """Every time step's view of leaf ``index`` (made on first use)."""
        views = self._per_step[index]
        if views is None:
            views = self._per_step[index] = self._leaves[index].unbind(self.time_dim)
        return views

    def write(self, t: int, values: Sequence[torch.Tensor | np.ndarray], part: str = ROOT) -> None:
        """Copy ``values`` (in the order of ``part``'s keys) into time ``t``.

        A value may be a tensor or, for a CPU buffer, a NumPy array (e.g. a NumPy view of a
        tensor that is written again at every step: made once, it saves a conversion).
        """
        arrays = self._arrays
        if arrays is not None:
            index = (*self._lead, t) if self._lead else t
            try:
                for i, value in zip(self._parts[part], values):
                    arrays[i][index] = value if type(value) is np.ndarray else value.numpy()
                return
            except (AttributeError, TypeError, RuntimeError, ValueError):
                # a value NumPy cannot take as it is (None, on another device, requiring
                # grad, of another shape): the torch path below copies it or says what is wrong
                pass
        views = self.views(t, part)
        values = [torch.from_numpy(value) if type(value) is np.ndarray else value for value in values]
        if self._same_device:
            torch._foreach_copy_(views, values)
        else:
            for view, value in zip(views, values):
                view.copy_(value, non_blocking=True)

    def fill_shifted(self, written: Sequence[bool]) -> None:
        """Fill the shifted root leaves at every ``t`` whose root write was partial (``written[t]`` false)."""
        if not self._shifted:
            return
        times = [t for t in range(1, self.steps) if not written[t]]
        if not times:
            return
        dim = self.time_dim
        if len(times) == self.steps - 1:  # no reset in the batch: one slice copy per leaf
            for root, nxt in self._shifted:
                root.narrow(dim, 1, self.steps - 1).copy_(nxt.narrow(dim, 0, self.steps - 1))
            return
        index = torch.tensor(times, device=self._leaves[0].device)
        for root, nxt in self._shifted:
            root.index_copy_(dim, index, nxt.index_select(dim, index - 1))
