"""Partial resets of :class:`~rlkernel.envs.EnvBase`: the ``"_reset"`` mask, merging a
partial reset into the current entries, and ``maybe_reset``.

:class:`PartialResets` is a mixin of ``EnvBase`` (it calls ``reset`` and reads the specs).
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel._compat import tensordict as td_compat
from rlkernel.envs.step import (
    DONE,
    NEXT,
    RESET,
    NestedKey,
)
from rlkernel.errors import EnvError


class PartialResets:
    """``maybe_reset`` and the checks and merges behind ``reset(td_with_a_reset_mask)``."""

    def _check_reset_mask(self, mask: object) -> None:
        allowed = (tuple(self.batch_size), (*self.batch_size, 1))
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) not in allowed:
            got = (
                f"a tensor of shape {tuple(mask.shape)} and dtype {mask.dtype}"
                if isinstance(mask, torch.Tensor)
                else f"a {type(mask).__name__}"
            )
            raise EnvError(
                f"{type(self).__name__}.reset: the '_reset' mask must be a bool tensor of shape "
                f"{allowed[1]} (or {allowed[0]}), got {got}"
            )

    def _merge_partial_reset(
        self, before: TensorDictBase, after: TensorDictBase, mask: torch.Tensor
    ) -> TensorDictBase:
        """The one partial-reset merge: ``after``'s entries where ``mask`` (a bool tensor of
        shape ``batch_size``, or with trailing dims) is set, ``before``'s elsewhere; entries of
        ``before`` that ``after`` lacks are kept (a policy's recurrent state), entries that
        only ``after`` has are copied. ``reset`` with a ``"_reset"`` mask and the batched envs'
        ``step_and_maybe_reset`` both use it. Returns a new TensorDict without ``"next"`` and
        ``"_reset"``; it shares no memory with ``after``.
        """
        mask = mask.reshape(*self.batch_size, -1).any(-1) if mask.ndim > len(self.batch_size) else mask
        if type(before) is TensorDict and type(after) is TensorDict:
            merged_flat = self._merge_flat(before, after, mask)
            if merged_flat is not None:
                return merged_flat
        merged = before.exclude(RESET, NEXT).copy()  # nested sub-TensorDicts must not be shared
        for key in after.keys(include_nested=True, leaves_only=True):
            new = after.get(key)
            old = before.get(key, None)
            if old is None:
                merged.set(key, new.clone())  # never shares memory with ``after``
                continue
            m = mask.reshape(*mask.shape, *([1] * (new.ndim - mask.ndim)))
            merged.set(key, torch.where(m, new, old))
        return merged

    @staticmethod
    def _merge_flat(before: TensorDict, after: TensorDict, mask: torch.Tensor) -> TensorDict | None:
        """:meth:`_merge_partial_reset` when every entry of ``after`` is a tensor at the root
        (the usual case): one pass over plain dicts, ``None`` otherwise."""
        new_entries = td_compat.entries(after)
        if not all(isinstance(value, torch.Tensor) for value in new_entries.values()):
            return None
        entries = {}
        for key, value in td_compat.entries(before).items():
            if key == RESET or key == NEXT:
                continue
            # a nested sub-TensorDict is copied (shallow): the result must not share it
            entries[key] = value if isinstance(value, torch.Tensor) else value.copy()
        ndim = mask.ndim
        for key, new in new_entries.items():
            old = entries.get(key)
            if not isinstance(old, torch.Tensor):
                entries[key] = new.clone()  # never shares memory with ``after``
                continue
            extra = new.ndim - ndim
            entries[key] = torch.where(mask.view(*mask.shape, *((1,) * extra)) if extra else mask, new, old)
        return td_compat.new_unsafe(entries, batch_size=before.batch_size, device=before.device)

    def maybe_reset(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Reset the sub-environments whose ``done`` flag is set in ``tensordict``.

        ``tensordict`` is the root of the next step (as :func:`step_mdp` makes it); the
        returned TensorDict holds the reset observations where an episode ended and the
        given entries elsewhere. Entries no spec declares (a policy's recurrent state) are
        kept.
        """
        if not self.batch_size and self.standard_done_check:  # one env: no mask to build
            entries = td_compat.entries(tensordict) if type(tensordict) is TensorDict else {}  # its plain dict
            for key in self._done_flag_keys():
                value = entries.get(key) if type(key) is str else None
                if value is None:
                    value = tensordict.get(key)
                if bool(value) if value.numel() == 1 else bool(value.any()):
                    break
            else:
                return tensordict
        else:
            done = self._any_done(tensordict)
            if not bool(done.any()):
                return tensordict
            if self.batch_size:
                tensordict.set(RESET, done.unsqueeze(-1))
                root = self.reset(tensordict)
                root.pop(RESET, None)
                tensordict.pop(RESET, None)
                return root
        spec_names = self._spec_root_names()
        if all(key in spec_names for key in tensordict.keys()):  # nothing to carry over (the usual case)
            return self.reset()
        kept = tensordict.exclude(*self.observation_keys, *self.done_keys, *self.state_keys, *self.action_keys)
        root = self.reset()
        for key, value in kept.items(include_nested=True, leaves_only=True):
            if key not in root.keys(include_nested=True):
                root.set(key, value)
        return root

    def _spec_root_names(self) -> frozenset[str]:
        """Names of the observation, done, state and action keys that sit at the root (not
        nested): what a reset does not carry over (the last action belongs to the ended episode)."""
        cached = self._keys_cache.get("_spec_root_names")
        if cached is None:
            keys = (*self.observation_keys, *self.done_keys, *self.state_keys, *self.action_keys)
            cached = frozenset(k if isinstance(k, str) else k[0] for k in keys if isinstance(k, str) or len(k) == 1)
            self._keys_cache["_spec_root_names"] = cached
        return cached

    def _any_done(self, td: TensorDictBase) -> torch.Tensor:
        """A bool tensor of shape ``batch_size``: which sub-environments are done."""
        done: torch.Tensor | None = None
        for key in self._done_flag_keys():
            value = td.get(key).reshape(*self.batch_size, -1).any(-1)
            done = value if done is None else done | value
        if done is None:
            return torch.zeros(self.batch_size, dtype=torch.bool, device=self.device)
        return done

    def _done_flag_keys(self) -> list[NestedKey]:
        """The done keys named ``done`` (one per group): those that say an episode ended."""
        cached = self._keys_cache.get("_done_flags")
        if cached is None:
            cached = [key for key in self.done_keys if (key[-1] if isinstance(key, tuple) else key) == DONE]
            self._keys_cache["_done_flags"] = cached
        return cached
