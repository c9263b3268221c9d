"""The :class:`Transform` contract.

A transform changes what an environment produces (observations, rewards, done flags) and,
optionally, what it is given (actions, states). It is a :class:`torch.nn.Module`, so its
statistics and parameters are buffers that travel with ``state_dict`` and ``.to(device)``.

Keys
    ``in_keys`` are read from the environment's outputs and the results written to
    ``out_keys`` (the same keys by default). ``in_keys_inv`` are the keys the *wrapped*
    environment reads (its action or state keys) and ``out_keys_inv`` the keys the outside
    world writes (the same keys by default): before a step, the value at ``out_keys_inv``
    goes through the inverse transform into ``in_keys_inv``. These are the names and the
    meaning TorchRL uses.

The methods a transform implements (each has a working default)
    ``_apply_transform(value)``
        one tensor in, one tensor out; the defaults of ``_call`` and ``forward`` apply it
        to every ``in_key``.
    ``_call(next_td)``
        applied to what ``step`` (and, with missing keys tolerated, ``reset``) produced.
    ``_reset(td, td_reset)``
        applied to the output of ``reset``; ``td`` is the TensorDict given to ``reset``
        (it holds the ``"_reset"`` mask of a partial reset of a batched env, and the
        entries of the previous step). Stateful transforms restart their state here, for
        the masked sub-environments only.
    ``_step(td, next_td)``
        applied to the output of ``step`` when the transform needs the step's input
        ``td`` too (a running sum, a step counter). Defaults to ``_call(next_td)``.
    ``_inv_apply_transform(value)`` / ``_inv_call(td)``
        the inverse, applied to the input of ``step`` (a shallow copy of it, so the
        caller's action is kept as the policy wrote it).
    ``forward(td)``
        the transform applied to a TensorDict outside an environment, such as a replay
        buffer sample: it transforms ``in_key`` at the root and ``("next", in_key)``
        alike. Transforms that depend on time (``CatFrames``, ``RewardSum``,
        ``StepCounter``, ...) read the *last batch dim as time*, ``[*B, T]``, and respect
        episode boundaries given by ``("next", "done")``.
    ``transform_observation_spec`` / ``transform_reward_spec`` / ``transform_done_spec``
        map the specs of the wrapped environment to those of the transformed one (the
        argument is the full ``Composite``; transform it in place or return a new one).
        ``transform_output_spec`` calls the three (override it to move a key from one
        group to another).
    ``transform_action_spec`` / ``transform_state_spec`` (called by
        ``transform_input_spec``) map the *wrapped* environment's action and state specs to
        the ones the outside world sees.

Validation
    When a transform joins a :class:`~rlkernel.transforms.TransformedEnv`, its
    ``in_keys`` are checked against the specs it will see (a
    :class:`~rlkernel.transforms.TransformKeyError` names the key and the keys there)
    and each new ``out_key`` must appear in the transformed specs. Outside an environment,
    a missing ``in_key`` is reported the first time ``forward`` meets it.
    ``TransformedEnv(..., check_specs=True)`` checks every transform's output against its
    declared specs at every step, naming the transform at fault.

Example::

    >>> class Double(Transform):
    ...     def _apply_transform(self, obs):
    ...         return obs * 2
    >>> from tensordict import TensorDict
    >>> Double(in_keys=["observation"])(TensorDict({"observation": torch.ones(2)}, []))["observation"]
    tensor([2., 2.])
"""

from __future__ import annotations

import copy
import weakref
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from tensordict import TensorDictBase
from torch import nn

from rlkernel.envs.step import NEXT, NestedKey
from rlkernel.specs import Composite, TensorSpec
from rlkernel.transforms._utils import (
    KeyList,
    TransformError,
    TransformKeyError,
    group_keys,
    missing_key_error,
    show_key,
)

if TYPE_CHECKING:
    from rlkernel.transforms.env import TransformedEnv

OUTPUT_GROUPS = ("full_observation_spec", "full_reward_spec", "full_done_spec")
INPUT_GROUPS = ("full_action_spec", "full_state_spec")


class Transform(nn.Module):
    """Base class of every transform (see the module docstring for the contract).

    Args:
        in_keys: keys read from the environment's outputs.
        out_keys: where the results go (default: ``in_keys``).
        in_keys_inv: keys the wrapped environment reads (actions, states).
        out_keys_inv: keys the outside world writes (default: ``in_keys_inv``).
    """

    #: Spec groups in which ``in_keys`` are looked up and transformed with
    #: :meth:`_transform_spec` by the default spec methods ("observation", "reward", "state").
    spec_groups: ClassVar[tuple[str, ...]] = ()

    in_keys = KeyList()
    out_keys = KeyList(default="in_keys")
    in_keys_inv = KeyList(cache="_inv_pairs")
    out_keys_inv = KeyList(default="in_keys_inv", cache="_inv_pairs")

    def __init__(
        self,
        in_keys: Any = None,
        out_keys: Any = None,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
    ) -> None:
        super().__init__()
        self.__dict__["_container"] = None
        self.__dict__["_parent"] = None
        self.__dict__["_pairs"] = None
        self.__dict__["_inv_pairs"] = None
        self._missing_ok = False
        self.in_keys = in_keys
        self.out_keys = out_keys
        self.in_keys_inv = in_keys_inv
        self.out_keys_inv = out_keys_inv
        self._key_pairs()
        self._inv_key_pairs()

    # ------------------------------------------------------------------ keys
    def _key_pairs(self) -> list[tuple[NestedKey, NestedKey]]:
        pairs = self.__dict__["_pairs"]
        if pairs is None:
            pairs = self._zip(self.in_keys, self.out_keys, "in_keys", "out_keys")
            self.__dict__["_pairs"] = pairs
        return pairs

    def _inv_key_pairs(self) -> list[tuple[NestedKey, NestedKey]]:
        pairs = self.__dict__["_inv_pairs"]
        if pairs is None:
            pairs = self._zip(self.in_keys_inv, self.out_keys_inv, "in_keys_inv", "out_keys_inv")
            self.__dict__["_inv_pairs"] = pairs
        return pairs

    def _zip(self, a: list[NestedKey], b: list[NestedKey], na: str, nb: str) -> list[tuple[NestedKey, NestedKey]]:
        if len(a) != len(b):
            raise TransformError(f"{type(self).__name__}: {na} {a} and {nb} {b} must have the same length")
        return list(zip(a, b))

    # ------------------------------------------------------------------ the data path
    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        """Transform one tensor. Implement it, or override ``_call`` and ``forward``."""
        raise NotImplementedError(
            f"{type(self).__name__} implements neither _apply_transform nor _call/forward"
        )

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        """Map one tensor from the outside world to the wrapped env (identity by default)."""
        return value

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        """Transform the output of ``step`` (and of ``reset``, missing keys tolerated)."""
        for in_key, out_key in self._key_pairs():
            value = next_tensordict.get(in_key, None)
            if value is None:
                if self._missing_ok:
                    continue
                raise missing_key_error(repr(self), in_key, next_tensordict, "environment's output")
            next_tensordict.set(out_key, self._apply_transform(value))
        return next_tensordict

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        """Transform the output of ``reset`` (default: ``_call``, skipping absent keys)."""
        self._missing_ok = True
        try:
            return self._call(tensordict_reset)
        finally:
            self._missing_ok = False

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        """Transform the output of ``step``; ``tensordict`` is the step's input."""
        return self._call(next_tensordict)

    def _inv_call(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write the wrapped env's inputs (``in_keys_inv``) from the outside ones."""
        for in_key, out_key in self._inv_key_pairs():
            value = tensordict.get(out_key, None)
            if value is None:
                if self._missing_ok:
                    continue
                raise missing_key_error(repr(self), out_key, tensordict, "input of step()")
            tensordict.set(in_key, self._inv_apply_transform(value))
        return tensordict

    def inv(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The inverse transform applied to a shallow copy of ``tensordict`` (returned)."""
        return self._inv_call(tensordict.copy())

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Apply the transform outside an env, to ``in_key`` and ``("next", in_key)``."""
        nxt = tensordict.get(NEXT, None)
        for in_key, out_key in self._key_pairs():
            found = False
            value = tensordict.get(in_key, None)
            if value is not None:
                tensordict.set(out_key, self._apply_transform(value))
                found = True
            if isinstance(nxt, TensorDictBase):
                value = nxt.get(in_key, None)
                if value is not None:
                    nxt.set(out_key, self._apply_transform(value))
                    found = True
            if not found:
                raise missing_key_error(repr(self), in_key, tensordict, "TensorDict given to forward()")
        return tensordict

    # ------------------------------------------------------------------ specs
    def _transform_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        """The spec of ``out_key`` given the spec of ``in_key`` (used with ``spec_groups``)."""
        return spec

    def _transform_inv_spec(self, spec: TensorSpec, key: NestedKey) -> TensorSpec:
        """The outside spec of an inverse key given the wrapped env's spec (default: forward)."""
        return self._transform_spec(spec, key)

    def _map_group(self, spec: Composite, group: str) -> Composite:
        if group in self.spec_groups:
            for in_key, out_key in self._key_pairs():
                if in_key in spec:
                    spec[out_key] = self._transform_spec(spec[in_key], in_key)
        return spec

    def _map_inv(self, spec: Composite) -> Composite:
        for in_key, out_key in self._inv_key_pairs():
            if in_key in spec:
                spec[out_key] = self._transform_inv_spec(spec[in_key], in_key)
        return spec

    def transform_output_spec(self, output_spec: Composite) -> Composite:
        """Map the wrapped env's ``full_observation/reward/done_spec`` (in ``output_spec``)."""
        output_spec["full_observation_spec"] = self.transform_observation_spec(output_spec["full_observation_spec"])
        output_spec["full_reward_spec"] = self.transform_reward_spec(output_spec["full_reward_spec"])
        output_spec["full_done_spec"] = self.transform_done_spec(output_spec["full_done_spec"])
        return output_spec

    def transform_input_spec(self, input_spec: Composite) -> Composite:
        """Map the wrapped env's ``full_action_spec`` and ``full_state_spec`` outwards."""
        input_spec["full_state_spec"] = self.transform_state_spec(input_spec["full_state_spec"])
        input_spec["full_action_spec"] = self.transform_action_spec(input_spec["full_action_spec"])
        return input_spec

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        return self._map_group(observation_spec, "observation")

    def transform_reward_spec(self, reward_spec: Composite) -> Composite:
        return self._map_group(reward_spec, "reward")

    def transform_done_spec(self, done_spec: Composite) -> Composite:
        return done_spec

    def transform_action_spec(self, action_spec: Composite) -> Composite:
        return self._map_inv(action_spec)

    def transform_state_spec(self, state_spec: Composite) -> Composite:
        return self._map_inv(self._map_group(state_spec, "state"))

    def _validate_keys(self, output_spec: Composite, input_spec: Composite, where: str) -> None:
        """Check, before the spec transform, that the keys this transform reads exist.

        ``where`` describes the transform's place (for messages). Subclasses whose keys
        mean something else (keys to drop, keys resolved from the specs) override it.
        """
        readable = group_keys(output_spec, OUTPUT_GROUPS) + group_keys(input_spec, INPUT_GROUPS)
        for key in self.in_keys:
            if key not in readable:
                raise TransformKeyError(
                    f"{where}: in_key {show_key(key)} is not produced by the environment it wraps; "
                    f"keys there: {sorted(map(str, readable))}"
                )
        writable = group_keys(input_spec, INPUT_GROUPS)
        for key in self.in_keys_inv:
            if key not in writable:
                raise TransformKeyError(
                    f"{where}: in_key_inv {show_key(key)} is not an action or state key of the "
                    f"environment it wraps; keys there: {sorted(map(str, writable))}"
                )

    def _declared_keys(self) -> list[NestedKey]:
        """Keys this transform writes, which the transformed specs must declare."""
        return [*self.out_keys, *self.out_keys_inv]

    def _check_declared(self, output_spec: Composite, input_spec: Composite, where: str) -> None:
        """After the spec transform: every new out_key must be declared by some spec."""
        declared = group_keys(output_spec, OUTPUT_GROUPS) + group_keys(input_spec, INPUT_GROUPS)
        for key in self._declared_keys():
            if key not in declared:
                raise TransformKeyError(
                    f"{where}: out_key {show_key(key)} is not declared by the transformed specs; "
                    "a transform that writes a new key must add it in transform_observation_spec "
                    f"(or another transform_*_spec). Declared keys: {sorted(map(str, declared))}"
                )

    # ------------------------------------------------------------------ container, parent
    def _set_container(self, container: Transform | TransformedEnv) -> None:
        current = self.__dict__["_container"]
        owner = current() if current is not None else None
        if owner is not None and owner is not container:
            raise TransformError(
                f"{self!r} already belongs to {type(owner).__name__}; a transform lives in one "
                "place: use transform.clone() to reuse it"
            )
        self.__dict__["_container"] = weakref.ref(container)
        self.__dict__["_parent"] = None

    def _release(self) -> None:
        self.__dict__["_container"] = None
        self.__dict__["_parent"] = None

    @property
    def container(self) -> TransformedEnv | None:
        """The :class:`~rlkernel.transforms.TransformedEnv` holding this transform, if any."""
        from rlkernel.transforms.env import TransformedEnv  # env imports this module

        ref = self.__dict__["_container"]
        node = ref() if ref is not None else None
        while node is not None and not isinstance(node, TransformedEnv):
            ref = node.__dict__["_container"]
            node = ref() if ref is not None else None
        return node

    @property
    def parent(self) -> TransformedEnv | None:
        """The environment as this transform sees it: the base env with the transforms
        that come before this one. ``None`` outside an environment."""
        parent = self.__dict__["_parent"]
        if parent is None:
            env = self.container
            if env is None:
                return None
            parent = env._parent_of(self)
            self.__dict__["_parent"] = parent
        return parent

    def _specs_changed(self) -> None:
        """Tell the environment holding this transform that its specs must be recomputed."""
        env = self.container
        if env is not None:
            env._chain_changed()

    def clone(self) -> Transform:
        """An independent deep copy, not attached to any environment."""
        saved = self.__dict__["_container"], self.__dict__["_parent"]
        self._release()
        try:
            return copy.deepcopy(self)
        finally:
            self.__dict__["_container"], self.__dict__["_parent"] = saved

    def close(self) -> None:
        """Release resources held by the transform (none by default)."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_container"] = None
        state["_parent"] = None
        return state

    # ------------------------------------------------------------------ repr
    def _repr_args(self) -> list[str]:
        return []

    def __repr__(self) -> str:
        parts = [f"in_keys={self.in_keys}"] if self.in_keys else []
        if self.out_keys != self.in_keys:
            parts.append(f"out_keys={self.out_keys}")
        if self.in_keys_inv:
            parts.append(f"in_keys_inv={self.in_keys_inv}")
            if self.out_keys_inv != self.in_keys_inv:
                parts.append(f"out_keys_inv={self.out_keys_inv}")
        parts += self._repr_args()
        return f"{type(self).__name__}({', '.join(parts)})"
