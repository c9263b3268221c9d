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
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, ClassVar

import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel._compat import tensordict as td_compat
from rlkernel.envs.resets import PartialResets
from rlkernel.envs.rollouts import Policy, Rollouts
from rlkernel.envs.spec_views import EnvSpecs
from rlkernel.envs.step import (
    DONE,
    NEXT,
    RESET,
    TERMINATED,
    TRUNCATED,
    NestedKey,
    step_mdp,
)
from rlkernel.errors import ActionError, EnvError
from rlkernel.specs import Composite, TensorSpec, Unbounded

__all__ = ["EnvBase", "Policy"]


def _prefix(key: NestedKey) -> tuple[str, ...]:
    return key[:-1] if isinstance(key, tuple) else ()


def _join(prefix: tuple[str, ...], name: str) -> NestedKey:
    return (*prefix, name) if prefix else name


def _leaf(key: NestedKey) -> str:
    return key[-1] if isinstance(key, tuple) else key


def _numpy_view(tensor: torch.Tensor) -> Any:
    """A NumPy view of a CPU tensor, or ``None`` for a dtype NumPy lacks (e.g. bfloat16)."""
    try:
        return tensor.numpy()
    except TypeError:
        return None


from_numpy = torch.from_numpy


def _key_str(key: NestedKey) -> str:
    return repr(key) if isinstance(key, str) else repr(tuple(key))


class EnvBase(EnvSpecs, PartialResets, Rollouts):
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

    #: Whether the constructor takes ``num_envs=N`` and builds ``N`` envs stepped together
    #: (batch size ``(N, ...)``); :func:`rlkernel.make_env` batches the others itself.
    batches_natively: ClassVar[bool] = False

    #: Whether the class's step is a *direct step*: :meth:`_step_into_fn` writes a step into
    #: preallocated output tensors, and that is the class's implementation of a step:
    #: ``_step`` is derived from it here (see :meth:`_step`), and the batched envs' workers and
    #: the collectors bind it to their own buffers. Declared by the class (``direct_step =
    #: True``); see :data:`capability_methods` for how a subclass loses it.
    direct_step: ClassVar[bool] = False
    #: Whether the public :meth:`step` is the contract's (check the input with
    #: :meth:`check_step_input`, ``_step``, :meth:`_complete`): the collectors' stepper then
    #: does the same in its own way (checking, then calling ``_step`` or the direct step).
    standard_step: ClassVar[bool] = True
    #: Whether ``maybe_reset`` of an env of batch size ``()`` may read the done flags itself
    #: instead of calling :meth:`_any_done`.
    standard_done_check: ClassVar[bool] = True
    #: Capabilities a class declares (class attributes set to True), each with the methods
    #: it rests on. A subclass that defines one of those methods itself no longer claims the
    #: capability unless it declares it again in its own body (bookkept by
    #: ``__init_subclass__``, once, when the class is made): a subclass that writes its own
    #: ``_step`` is never silently switched to the direct step. Subclasses may add entries.
    capability_methods: ClassVar[dict[str, tuple[str, ...]]] = {
        "direct_step": ("_step",),
        "standard_step": ("step",),
        "standard_done_check": ("_any_done",),
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        mro = cls.__mro__

        def nearest(name: str) -> int:  # where in the MRO ``name`` is defined (len(mro): nowhere)
            return next((i for i, klass in enumerate(mro) if name in vars(klass)), len(mro))

        for capability, methods in cls.capability_methods.items():
            declared = nearest(capability)
            if declared == 0 or not getattr(cls, capability, False):
                continue  # declared (or denied) by this very class, or not claimed at all
            if any(nearest(method) < declared for method in methods):  # a method defined below the declaration
                setattr(cls, capability, False)

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
        self._direct_output: TensorDictBase | None = None  # the derived _step's last output
        #: Draws the random actions of ``rand_action``/``rollout``; seeded by ``set_seed``.
        self.generator: torch.Generator | None = None

    # ------------------------------------------------------------------ the contract
    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        raise NotImplementedError(f"{type(self).__name__} must implement _reset")

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The TensorDict step: a subclass implements it, or declares a direct step
        (:data:`direct_step`, :meth:`_step_into_fn`) from which this one is derived.

        The derived step binds the direct step once to staging tensors (one per output key,
        on the CPU, of the specs' shapes and dtypes), and at each step hands it the actions,
        runs it and returns a TensorDict of copies of the staging tensors (fresh memory
        every step: returned TensorDicts may be kept and stacked), on the env's device.
        The copies are made through NumPy views of the staging tensors (about a third
        cheaper than ``Tensor.clone`` for small tensors); a dtype NumPy lacks is cloned.
        """
        staging = self._keys_cache.get("_direct_staging")  # (dropped when a spec changes)
        if staging is None:
            staging = self._bind_staging()
        step, inputs, action_keys, plan, nested = staging
        for key in action_keys:
            inputs[key] = tensordict.get(key, None)
        step()
        source: dict[str, Any]
        if not nested:
            source = {
                name: from_numpy(array.copy()) if array is not None else tensor.clone()
                for _, name, tensor, array in plan
            }
        else:
            source = {}
            for parents, name, tensor, array in plan:
                node = source
                for part in parents:
                    node = node.setdefault(part, {})
                node[name] = from_numpy(array.copy()) if array is not None else tensor.clone()
        if self.device.type != "cpu":
            return TensorDict(source, batch_size=self.batch_size, device=self.device)
        out = td_compat.new_unsafe(source, batch_size=self.batch_size, device=self.device, nested=nested)
        self._direct_output = out  # complete by construction: step() skips _complete for it
        return out

    def _step_into_fn(
        self, inputs: MutableMapping[NestedKey, Any], outputs: Mapping[NestedKey, torch.Tensor]
    ) -> Callable[[], None] | None:
        """The direct step of a class that declares one (:data:`direct_step`); ``None`` here.

        ``inputs`` maps each action key to the action tensor (read at each call: the caller
        puts the next action there between calls); ``outputs`` maps every key of a step's
        output (the observation, reward and done keys of the specs) to a preallocated tensor
        of its spec's shape and dtype. The returned function of no argument steps once,
        writing the whole outcome into ``outputs`` without building a TensorDict, or raises
        as ``_step`` would (an :class:`~rlkernel.errors.ActionError` for a missing action).
        It may return ``None`` when it cannot write into these outputs (e.g. tensors it
        cannot write in place from its backend); the caller then uses ``_step``. It does not
        check actions: the caller does (:meth:`check_step_input`).
        """
        return None

    def step_output_specs(self) -> list[tuple[NestedKey, TensorSpec]]:
        """``(key, leaf spec)`` for every key of a step's output: the observation, reward and
        done keys of the specs (what ``_step`` returns and a direct step writes)."""
        out = []
        for composite in (self._full_observation_spec, self._full_reward_spec, self._full_done_spec):
            out += [(key, composite[key]) for key in composite.keys(include_nested=True, leaves_only=True)]
        return out

    def _bind_staging(self) -> tuple[Callable[[], None], dict[NestedKey, Any], list[NestedKey], list, bool]:
        """Bind the direct step to staging tensors for the derived :meth:`_step` (once)."""
        outputs = {key: torch.zeros(spec.shape, dtype=spec.dtype) for key, spec in self.step_output_specs()}
        inputs: dict[NestedKey, Any] = {key: None for key in self.action_keys}
        step = self._step_into_fn(inputs, outputs)
        if step is None:
            raise EnvError(
                f"{type(self).__name__} implements neither _step nor a direct step for its outputs "
                f"({sorted(map(str, outputs))}): _step_into_fn returned None"
            )
        plan = [(_prefix(key), _leaf(key), value, _numpy_view(value)) for key, value in outputs.items()]
        staging = (step, inputs, list(self.action_keys), plan, any(parents for parents, *_ in plan))
        self._keys_cache["_direct_staging"] = staging
        return staging

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

    def step(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Apply the action(s) in ``tensordict``; write the outcome under ``"next"``.

        Returns ``tensordict`` itself, with ``"next"`` holding the next observation, the
        reward and the ``done``/``terminated``/``truncated`` flags.
        """
        if self.is_closed:
            self._assert_open()
        self.check_step_input(tensordict)
        out = self._step(tensordict)
        if self.direct_step and out is self._direct_output:  # the derived _step's: complete
            self._direct_output = None
        else:
            out = self._complete(out, "_step")
        tensordict.set(NEXT, out)
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
        ``td_compat.new_unsafe`` (its entries come from a TensorDict: nothing to check).
        """
        drop, rewards = self._mdp_names()
        if rewards is not None and type(tensordict) is TensorDict:
            entries = td_compat.entries(tensordict)  # the plain dict of a TensorDict's entries
            nxt = entries.get(NEXT)
            if type(nxt) is TensorDict:
                source = dict(td_compat.entries(nxt))
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
                    out = td_compat.new_unsafe(
                        source,
                        batch_size=nxt.batch_size,
                        device=nxt.device,
                        names=nxt.names if td_compat.has_names(nxt) else None,
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

    # ------------------------------------------------------------------ validation
    def check_step_input(self, tensordict: TensorDictBase) -> None:
        """The one place that decides whether a step's input is checked: with
        ``check_actions`` on, :meth:`check_action`; otherwise nothing.

        Every path that steps an environment calls it before each step whose action it did
        not draw from the env's own action spec: :meth:`step`, the batched envs'
        ``step_and_maybe_reset``, the rollouts and the collectors' stepper (a random action
        drawn with :meth:`rand_action` is in the spec by construction).
        """
        if self.check_actions:
            self.check_action(tensordict)

    def check_action(self, tensordict: TensorDictBase) -> None:
        """Raise :class:`~rlkernel.errors.ActionError` unless every action fits its spec.

        The message names the action key, the spec and what is wrong with the value.
        """
        specs = self._full_action_spec
        for key in self.action_keys:
            value = tensordict.get(key, None)
            spec = specs[key]
            if type(value) is torch.Tensor and value.shape == spec.shape and spec.is_in(value):
                continue  # the usual case: one shape compare and the spec's own (fast) test
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
