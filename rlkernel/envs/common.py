"""``EnvBase``: the environment contract every backend implements.

Public methods validate and orchestrate; a subclass implements only ``_reset``,
``_step`` and ``_set_seed`` and declares its specs in ``__init__``::

    class Coin(EnvBase):
        def __init__(self):
            super().__init__()
            self.observation_spec = Composite(observation=Unbounded((1,)))
            self.action_spec = Categorical(2, shape=(1,))

        def _reset(self, tensordict):
            return TensorDict({"observation": torch.zeros(1)}, [])

        def _step(self, tensordict):
            action = tensordict["action"]
            return TensorDict({"observation": action.float(), "reward": action.float(),
                               "done": torch.ones(1, dtype=torch.bool)}, [])

        def _set_seed(self, seed):
            torch.manual_seed(seed)
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.envs.step import (
    ACTION,
    DONE,
    NEXT,
    RESET,
    REWARD,
    TERMINATED,
    TRUNCATED,
    NestedKey,
    step_mdp,
)
from rlkernel.errors import ActionError, EnvError, SpecError
from rlkernel.specs import Categorical, Composite, TensorSpec, Unbounded

Policy = Callable[[TensorDictBase], TensorDictBase]


def _prefix(key: NestedKey) -> tuple[str, ...]:
    return key[:-1] if isinstance(key, tuple) else ()


def _join(prefix: tuple[str, ...], name: str) -> NestedKey:
    return (*prefix, name) if prefix else name


def _key_str(key: NestedKey) -> str:
    return repr(key) if isinstance(key, str) else repr(tuple(key))


class EnvBase:
    """Base class of every environment.

    Args:
        device: where the environment's tensors live (default ``"cpu"``).
        batch_size: the leading dims of every tensor it produces, e.g. ``(8,)`` for 8
            environments stepped together.
        check_actions: refuse, with an :class:`~rlkernel.errors.ActionError`, any action
            that does not fit the action spec. Turn off for speed once a policy is trusted.

    The specs are :class:`~rlkernel.specs.Composite` objects whose shape is ``batch_size``:
    ``full_observation_spec``, ``full_action_spec``, ``full_reward_spec``,
    ``full_done_spec`` (``done``, ``terminated`` and ``truncated``) and
    ``full_state_spec`` (inputs other than the action). ``observation_spec``,
    ``action_spec``, ``reward_spec`` and ``done_spec`` are the convenient views: the leaf
    spec when there is a single action or reward, the composite otherwise.
    """

    def __init__(
        self,
        *,
        device: torch.device | str | None = None,
        batch_size: torch.Size | tuple[int, ...] | list[int] = (),
        check_actions: bool = True,
    ) -> None:
        self.device = torch.device(device if device is not None else "cpu")
        self.batch_size = torch.Size(batch_size)
        self.check_actions = check_actions
        self.is_closed = False
        shape = self.batch_size
        self._full_observation_spec = Composite(shape=shape, device=self.device)
        self._full_state_spec = Composite(shape=shape, device=self.device)
        self._full_action_spec = Composite(shape=shape, device=self.device)
        self._full_reward_spec = Composite(
            reward=Unbounded(shape=(*shape, 1), device=self.device), shape=shape, device=self.device
        )
        self._full_done_spec = self.default_done_spec(shape, self.device)
        self._keys_cache: dict[str, Any] = {}  # key lists and lookups derived from the specs
        #: Draws the random actions of ``rand_action``/``rollout``; seeded by ``set_seed``.
        self.generator: torch.Generator | None = None

    # ------------------------------------------------------------------ specs
    @staticmethod
    def default_done_spec(shape: torch.Size, device: torch.device | None = None) -> Composite:
        """``done``, ``terminated`` and ``truncated`` as bool flags of shape ``(*shape, 1)``."""
        flag = Categorical(2, shape=(*shape, 1), dtype=torch.bool, device=device)
        return Composite(
            {DONE: flag, TERMINATED: flag.clone(), TRUNCATED: flag.clone()}, shape=shape, device=device
        )

    def _checked_composite(self, spec: TensorSpec, what: str, leaf_key: str | None) -> Composite:
        if not isinstance(spec, Composite):
            if leaf_key is None:
                raise SpecError(f"{type(self).__name__}.{what} must be a Composite, got {spec!r}")
            spec = Composite({leaf_key: spec}, shape=self.batch_size, device=self.device)
        if spec.shape != self.batch_size:
            raise SpecError(
                f"{type(self).__name__}.{what} has batch shape {tuple(spec.shape)} but the "
                f"environment's batch_size is {tuple(self.batch_size)}"
            )
        self._keys_cache.clear()
        return spec

    @property
    def full_observation_spec(self) -> Composite:
        return self._full_observation_spec

    @full_observation_spec.setter
    def full_observation_spec(self, spec: Composite) -> None:
        self._full_observation_spec = self._checked_composite(spec, "observation_spec", None)

    observation_spec = full_observation_spec

    @property
    def full_state_spec(self) -> Composite:
        return self._full_state_spec

    @full_state_spec.setter
    def full_state_spec(self, spec: Composite) -> None:
        self._full_state_spec = self._checked_composite(spec, "state_spec", None)

    state_spec = full_state_spec

    @property
    def full_action_spec(self) -> Composite:
        return self._full_action_spec

    @full_action_spec.setter
    def full_action_spec(self, spec: Composite) -> None:
        self._full_action_spec = self._checked_composite(spec, "full_action_spec", None)

    @property
    def action_spec(self) -> TensorSpec:
        """The action's spec (the leaf when there is one action key)."""
        return self._single_leaf(self._full_action_spec)

    @action_spec.setter
    def action_spec(self, spec: TensorSpec) -> None:
        self._full_action_spec = self._checked_composite(spec, "action_spec", ACTION)

    @property
    def full_reward_spec(self) -> Composite:
        return self._full_reward_spec

    @full_reward_spec.setter
    def full_reward_spec(self, spec: Composite) -> None:
        self._full_reward_spec = self._checked_composite(spec, "full_reward_spec", None)

    @property
    def reward_spec(self) -> TensorSpec:
        """The reward's spec (the leaf when there is one reward key)."""
        return self._single_leaf(self._full_reward_spec)

    @reward_spec.setter
    def reward_spec(self, spec: TensorSpec) -> None:
        self._full_reward_spec = self._checked_composite(spec, "reward_spec", REWARD)

    @property
    def full_done_spec(self) -> Composite:
        return self._full_done_spec

    @full_done_spec.setter
    def full_done_spec(self, spec: Composite) -> None:
        self._full_done_spec = self._checked_composite(spec, "done_spec", None)

    done_spec = full_done_spec

    @staticmethod
    def _single_leaf(spec: Composite) -> TensorSpec:
        leaves = list(spec.keys(include_nested=True, leaves_only=True))
        return spec[leaves[0]] if len(leaves) == 1 else spec

    def _keys(self, which: str) -> list[NestedKey]:
        cached = self._keys_cache.get(which)
        if cached is None:
            spec = getattr(self, f"_full_{which}_spec")
            cached = list(spec.keys(include_nested=True, leaves_only=True))
            self._keys_cache[which] = cached
        return cached

    @property
    def action_keys(self) -> list[NestedKey]:
        return self._keys("action")

    @property
    def action_key(self) -> NestedKey:
        """The single action key; an error if the env has several."""
        keys = self.action_keys
        if len(keys) != 1:
            raise EnvError(f"{type(self).__name__} has {len(keys)} action keys {keys}; use action_keys")
        return keys[0]

    @property
    def reward_keys(self) -> list[NestedKey]:
        return self._keys("reward")

    @property
    def reward_key(self) -> NestedKey:
        keys = self.reward_keys
        if len(keys) != 1:
            raise EnvError(f"{type(self).__name__} has {len(keys)} reward keys {keys}; use reward_keys")
        return keys[0]

    @property
    def done_keys(self) -> list[NestedKey]:
        return self._keys("done")

    @property
    def observation_keys(self) -> list[NestedKey]:
        return self._keys("observation")

    @property
    def state_keys(self) -> list[NestedKey]:
        return self._keys("state")

    # ------------------------------------------------------------------ the contract
    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        raise NotImplementedError(f"{type(self).__name__} must implement _reset")

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        raise NotImplementedError(f"{type(self).__name__} must implement _step")

    def _set_seed(self, seed: int | None) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _set_seed")

    # ------------------------------------------------------------------ public API
    def set_seed(self, seed: int | None) -> int | None:
        """Seed the environment and its random actions; returns the seed so calls chain.

        After ``env.set_seed(s)``, random rollouts (``rollout`` without a policy,
        ``rand_action``) are reproducible: they draw from the env's own generator, never
        from torch's global one.
        """
        if seed is not None and (not isinstance(seed, numbers.Integral) or isinstance(seed, bool)):
            raise EnvError(f"set_seed expects an int or None, got {type(seed).__name__} {seed!r}")
        seed = None if seed is None else int(seed)
        self._set_seed(seed)
        if seed is None:
            self.generator = None
        else:
            self.generator = torch.Generator(device=self.device)
            self.generator.manual_seed(seed)
        return seed

    def reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        """Start new episodes and return the first observations.

        With a ``"_reset"`` boolean entry of shape ``(*batch_size, 1)`` in ``tensordict``,
        only the selected sub-environments restart; the others keep their entries.
        """
        self._assert_open()
        partial = tensordict.get(RESET, None) if tensordict is not None else None
        if partial is not None:
            self._check_reset_mask(partial)
        out = self._reset(tensordict, **kwargs) if kwargs else self._reset(tensordict)
        out = self._complete(out, "_reset")
        if partial is not None and tensordict is not None:
            out = self._merge_partial_reset(tensordict, out, partial)
        return out

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
                merged.set(key, new)
                continue
            m = mask.reshape(*mask.shape, *([1] * (new.ndim - mask.ndim)))
            merged.set(key, torch.where(m, new, old))
        return merged

    @staticmethod
    def _merge_flat(before: TensorDict, after: TensorDict, mask: torch.Tensor) -> TensorDict | None:
        """:meth:`_merge_partial_reset` when every entry of ``after`` is a tensor at the root
        (the usual case): one pass over plain dicts, ``None`` otherwise."""
        new_entries = after._tensordict
        if not all(type(value) is torch.Tensor for value in new_entries.values()):
            return None
        entries = {}
        for key, value in before._tensordict.items():
            if key == RESET or key == NEXT:
                continue
            # a nested sub-TensorDict is copied (shallow): the result must not share it
            entries[key] = value if type(value) is torch.Tensor else value.copy()
        ndim = mask.ndim
        for key, new in new_entries.items():
            old = entries.get(key)
            if type(old) is not torch.Tensor:
                entries[key] = new
                continue
            extra = new.ndim - ndim
            entries[key] = torch.where(mask.view(*mask.shape, *((1,) * extra)) if extra else mask, new, old)
        return TensorDict._new_unsafe(entries, batch_size=before.batch_size, device=before.device)

    def step(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Apply the action(s) in ``tensordict``; write the outcome under ``"next"``.

        Returns ``tensordict`` itself, with ``"next"`` holding the next observation, the
        reward and the ``done``/``terminated``/``truncated`` flags.
        """
        if self.is_closed:
            self._assert_open()
        if self.check_actions:
            self.check_action(tensordict)
        tensordict.set(NEXT, self._complete(self._step(tensordict), "_step"))
        return tensordict

    def step_and_maybe_reset(
        self, tensordict: TensorDictBase
    ) -> tuple[TensorDictBase, TensorDictBase]:
        """Step, then reset the sub-environments that are done.

        Returns ``(tensordict_with_next, root_of_next_step)``: the second is what the policy
        reads next; where an episode ended, it holds the reset observation.
        """
        tensordict = self.step(tensordict)
        return tensordict, self.maybe_reset(self._step_mdp(tensordict))

    def _step_mdp(self, tensordict: TensorDictBase) -> TensorDictBase:
        """``step_mdp`` with this env's reward, done and action keys.

        In the common case (plain ``TensorDict`` objects, rewards at the root, no nested or
        non-tensor entries at the root) the same TensorDict is built in one go from the
        entry dicts: ``"next"``'s entries but the rewards, then the root's other tensors that
        ``"next"`` lacks. As ``TensorDict.exclude`` does, it is built with
        ``TensorDict._new_unsafe`` (its entries come from a TensorDict: nothing to check).
        """
        drop, rewards = self._mdp_names()
        if rewards is not None and type(tensordict) is TensorDict:
            entries = tensordict._tensordict  # the plain dict of a TensorDict's entries
            nxt = entries.get(NEXT)
            if type(nxt) is TensorDict:
                source = dict(nxt._tensordict)
                for name in rewards:
                    source.pop(name, None)
                extras = None
                for key, value in entries.items():
                    if key in drop:
                        continue
                    if type(value) is not torch.Tensor:  # nested or non-tensor entries: the general path
                        break
                    if key not in source:
                        extras = [] if extras is None else extras
                        extras.append((key, value))
                else:
                    out = TensorDict._new_unsafe(
                        source,
                        batch_size=nxt.batch_size,
                        device=nxt.device,
                        names=nxt.names if nxt._has_names() else None,
                        nested=False,
                    )
                    for key, value in extras or ():
                        out.set(key, value)  # checked: they come from another TensorDict level
                    return out
        return step_mdp(
            tensordict, reward_keys=self.reward_keys, done_keys=self.done_keys, action_keys=self.action_keys
        )

    def _mdp_names(self) -> tuple[frozenset[str], frozenset[str] | None]:
        """For ``_step_mdp``: the root names not carried over (``next``, ``_reset``, the
        root-level reward and action keys) and the reward names (``None`` when a reward key
        is nested: then the general ``step_mdp`` runs)."""
        cached = self._keys_cache.get("_mdp_names")
        if cached is None:
            rewards: set[str] | None = set()
            for key in self.reward_keys:
                name = key if isinstance(key, str) else key[0] if len(key) == 1 else None
                if name is None or rewards is None:
                    rewards = None
                else:
                    rewards.add(name)
            drop = {NEXT, RESET}
            for key in (*self.reward_keys, *self.action_keys):
                if isinstance(key, str):
                    drop.add(key)
                elif len(key) == 1:
                    drop.add(key[0])
            cached = (frozenset(drop), None if rewards is None else frozenset(rewards))
            self._keys_cache["_mdp_names"] = cached
        return cached

    def maybe_reset(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Reset the sub-environments whose ``done`` flag is set in ``tensordict``.

        ``tensordict`` is the root of the next step (as :func:`step_mdp` makes it); the
        returned TensorDict holds the reset observations where an episode ended and the
        given entries elsewhere. Entries no spec declares (a policy's recurrent state) are
        kept.
        """
        if not self.batch_size and type(self)._any_done is EnvBase._any_done:  # one env: no mask to build
            entries = tensordict._tensordict if type(tensordict) is TensorDict else {}  # its plain dict
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
        kept = tensordict.exclude(*self.observation_keys, *self.done_keys, *self.state_keys)
        root = self.reset()
        for key, value in kept.items(include_nested=True, leaves_only=True):
            if key not in root.keys(include_nested=True):
                root.set(key, value)
        return root

    def _spec_root_names(self) -> frozenset[str]:
        """Names of the observation, done and state keys that sit at the root (not nested)."""
        cached = self._keys_cache.get("_spec_root_names")
        if cached is None:
            keys = (*self.observation_keys, *self.done_keys, *self.state_keys)
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

    def rollout(
        self,
        max_steps: int,
        policy: Policy | None = None,
        *,
        break_when_any_done: bool = True,
        break_when_all_done: bool = False,
        auto_reset: bool = True,
        tensordict: TensorDictBase | None = None,
        set_truncated: bool = False,
    ) -> TensorDictBase:
        """Run ``max_steps`` steps and return them stacked along a time dim.

        The result has batch size ``(*batch_size, T)``. Without a policy the actions are
        drawn at random from the action spec. ``break_when_any_done`` stops at the first
        step where any sub-environment is done; otherwise done sub-environments are reset
        and the rollout goes on; ``break_when_all_done`` (with ``break_when_any_done=False``)
        resets sub-environments as they finish and stops once every one of them has ended an
        episode. ``set_truncated`` marks the last step as truncated.
        """
        if not isinstance(max_steps, int) or max_steps < 1:
            raise EnvError(f"rollout: max_steps must be a positive int, got {max_steps!r}")
        if auto_reset:
            td = self.reset(tensordict) if tensordict is not None else self.reset()
        elif tensordict is None:
            raise EnvError("rollout: auto_reset=False needs a tensordict to start from")
        else:
            td = tensordict
        steps: list[TensorDictBase] = []
        finished = torch.zeros(self.batch_size, dtype=torch.bool, device=self.device)
        for _ in range(max_steps):
            if policy is None:
                td.update(self._full_action_spec.rand(generator=self.generator))
            else:
                td = policy(td)
            if break_when_any_done:
                td = self.step(td)
                steps.append(td)
                if bool(self._any_done(td.get(NEXT)).any()):
                    break
                td = self._step_mdp(td)
            else:
                td, root = self.step_and_maybe_reset(td)
                steps.append(td)
                if break_when_all_done:
                    finished = finished | self._any_done(td.get(NEXT))
                    if bool(finished.all()):
                        break
                td = root
        out = self._stack_steps(steps)
        if set_truncated:
            self._mark_truncated(out)
        return out

    def _mark_truncated(self, out: TensorDictBase) -> None:
        """Mark the last step of a rollout truncated where it did not terminate."""
        last = (*([slice(None)] * len(self.batch_size)), -1)
        for prefix, names in self._done_groups():
            if TRUNCATED not in names:
                continue
            group = out.get((NEXT, *prefix)) if prefix else out.get(NEXT)
            terminated = group.get(TERMINATED)[last] if TERMINATED in names else False
            group.get(TRUNCATED)[last] |= ~terminated
            if DONE in names:
                group.get(DONE)[last] = True

    def _stack_steps(self, steps: list[TensorDictBase]) -> TensorDictBase:
        try:
            return torch.stack(steps, dim=len(self.batch_size))
        except RuntimeError as err:
            first = set(steps[0].keys(include_nested=True, leaves_only=True))
            for t, step in enumerate(steps[1:], start=1):
                keys = set(step.keys(include_nested=True, leaves_only=True))
                if keys != first:
                    raise EnvError(
                        f"{type(self).__name__}.rollout: step {t} has keys {sorted(map(str, keys - first))} "
                        f"that step 0 lacks and lacks {sorted(map(str, first - keys))}; an environment must "
                        "produce the same keys at every step (declare them in its specs and return them from "
                        "_reset as well as _step)"
                    ) from err
            raise EnvError(f"{type(self).__name__}.rollout: cannot stack the steps: {err}") from err

    # ------------------------------------------------------------------ validation
    def check_action(self, tensordict: TensorDictBase) -> None:
        """Raise :class:`~rlkernel.errors.ActionError` unless every action fits its spec."""
        for key in self.action_keys:
            value = tensordict.get(key, None)
            spec = self._full_action_spec[key]
            if value is None:
                raise ActionError(
                    f"{type(self).__name__}.step: the action key {_key_str(key)} is missing; "
                    f"expected a value of {spec!r} (keys present: "
                    f"{sorted(map(str, tensordict.keys(include_nested=True, leaves_only=True)))})"
                )
            if not isinstance(value, torch.Tensor):
                raise ActionError(
                    f"{type(self).__name__}.step: action {_key_str(key)} must be a tensor of {spec!r}, "
                    f"got {type(value).__name__}"
                )
            if value.shape != spec.shape or not spec.is_in(value):
                reason = spec.why_not_in(value) if value.shape == spec.shape else (
                    f"its shape is {tuple(value.shape)}, expected {tuple(spec.shape)}"
                )
                raise ActionError(
                    f"{type(self).__name__}.step: action {_key_str(key)} does not fit {spec!r}: {reason}"
                )

    def _complete(self, out: TensorDictBase, where: str) -> TensorDictBase:
        """Check the batch size of ``_reset``/``_step`` output and fill missing done flags."""
        if not isinstance(out, TensorDictBase):
            raise EnvError(f"{type(self).__name__}.{where} must return a TensorDict, got {type(out).__name__}")
        if out.batch_size != self.batch_size:
            raise EnvError(
                f"{type(self).__name__}.{where} returned batch size {tuple(out.batch_size)}, "
                f"expected {tuple(self.batch_size)}"
            )
        for group in self._done_group_keys():
            for key in group:
                if out.get(key, None) is None:
                    break
            else:  # every flag of the group is there (the usual case)
                continue
            self._fill_done_flags(out, group, where)
        return out

    def _done_group_keys(self) -> list[tuple[NestedKey, ...]]:
        """The full keys of each group's done flags."""
        cached = self._keys_cache.get("_done_group_keys")
        if cached is None:
            cached = [tuple(_join(prefix, name) for name in names) for prefix, names in self._done_groups()]
            self._keys_cache["_done_group_keys"] = cached
        return cached

    def _fill_done_flags(self, out: TensorDictBase, group: tuple[NestedKey, ...], where: str) -> None:
        """Add the done flags of ``group`` that ``out`` lacks (from those it has)."""
        names = [key[-1] if isinstance(key, tuple) else key for key in group]
        keys = dict(zip(names, group))
        has = {name for name, key in keys.items() if out.get(key, None) is not None}
        if where == "_step" and not has:
            raise EnvError(
                f"{type(self).__name__}._step returned no done flag: expected "
                f"{', '.join(_key_str(k) for k in keys.values())}"
            )
        false = torch.zeros(self._full_done_spec[keys[names[0]]].shape, dtype=torch.bool, device=self.device)
        if TERMINATED in keys and TERMINATED not in has:
            out.set(keys[TERMINATED], out.get(keys[DONE]).clone() if DONE in has else false.clone())
        if TRUNCATED in keys and TRUNCATED not in has:
            out.set(keys[TRUNCATED], false.clone())
        if DONE in keys and DONE not in has:
            done = false.clone()
            for name in (TERMINATED, TRUNCATED):
                if name in keys:
                    done = done | out.get(keys[name])
            out.set(keys[DONE], done)

    def _done_groups(self) -> list[tuple[tuple[str, ...], list[str]]]:
        """The done flags grouped by their parent key (one group per agent group)."""
        cached = self._keys_cache.get("_done_groups")
        if cached is None:
            groups: dict[tuple[str, ...], list[str]] = {}
            for key in self.done_keys:
                groups.setdefault(_prefix(key), []).append(key[-1] if isinstance(key, tuple) else key)
            cached = list(groups.items())
            self._keys_cache["_done_groups"] = cached
        return cached

    # ------------------------------------------------------------------ helpers
    def fake_tensordict(self) -> TensorDictBase:
        """A zero-filled TensorDict with every key a step holds, shaped by the specs."""
        root = self._full_observation_spec.zero()
        root.update(self._full_state_spec.zero())
        root.update(self._full_done_spec.zero())
        root.update(self._full_action_spec.zero())
        nxt = self._full_observation_spec.zero()
        nxt.update(self._full_state_spec.zero())
        nxt.update(self._full_reward_spec.zero())
        nxt.update(self._full_done_spec.zero())
        root.set(NEXT, nxt)
        return root

    def rand_action(self, tensordict: TensorDictBase | None = None) -> TensorDictBase:
        """Write random actions from the action spec into ``tensordict`` (or a new one)."""
        action = self._full_action_spec.rand(generator=self.generator)
        if tensordict is None:
            return action
        return tensordict.update(action)

    def rand_step(self, tensordict: TensorDictBase | None = None) -> TensorDictBase:
        """Take one step with a random action."""
        td = tensordict if tensordict is not None else TensorDict({}, self.batch_size, device=self.device)
        return self.step(self.rand_action(td))

    @property
    def numel(self) -> int:
        return self.batch_size.numel()

    def _assert_open(self) -> None:
        if self.is_closed:
            raise EnvError(f"{type(self).__name__} is closed")

    def close(self) -> None:
        """Release the environment's resources. Calling it twice is harmless."""
        self.is_closed = True

    def __enter__(self) -> EnvBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(batch_size={tuple(self.batch_size)}, device={self.device}, "
            f"action_keys={self.action_keys}, observation_keys={self.observation_keys})"
        )
