"""Key transforms: :class:`ExcludeTransform`, :class:`SelectTransform`, :class:`RenameTransform`."""

from __future__ import annotations

from typing import Any

from tensordict import TensorDictBase

from rlkernel.envs.step import DONE_NAMES, NEXT, REWARD, NestedKey
from rlkernel.specs import Composite
from rlkernel.transforms._utils import (
    TransformError,
    TransformKeyError,
    as_keys,
    group_keys,
    missing_key_error,
    next_key,
    show_key,
    spec_keys,
)
from rlkernel.transforms.base import OUTPUT_GROUPS, Transform


def _name(key: NestedKey) -> str:
    return key[-1] if isinstance(key, tuple) else key


class ExcludeTransform(Transform):
    """Drop observation (or state) keys from what the env returns, and from its specs.

    Done flags and rewards cannot be dropped (the env contract needs them).
    """

    def __init__(self, *excluded_keys: Any) -> None:
        super().__init__()
        if len(excluded_keys) == 1 and isinstance(excluded_keys[0], list):
            excluded_keys = tuple(excluded_keys[0])
        self.excluded_keys = as_keys(list(excluded_keys), "ExcludeTransform", "excluded_keys")
        if not self.excluded_keys:
            raise TransformError("ExcludeTransform: give at least one key to exclude")

    def _validate_keys(self, output_spec: Composite, input_spec: Composite, where: str) -> None:
        obs = spec_keys(output_spec["full_observation_spec"]) + spec_keys(input_spec["full_state_spec"])
        for key in self.excluded_keys:
            if key not in obs:
                protected = group_keys(output_spec, OUTPUT_GROUPS[1:])
                why = "done flags and rewards cannot be excluded" if key in protected else "it is not there"
                raise TransformKeyError(
                    f"{where}: cannot exclude {show_key(key)}: {why}; observation and state keys: "
                    f"{sorted(map(str, obs))}"
                )

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        return observation_spec.exclude(*self.excluded_keys)

    def transform_state_spec(self, state_spec: Composite) -> Composite:
        return state_spec.exclude(*self.excluded_keys)

    def _drop(self, td: TensorDictBase) -> TensorDictBase:
        for key in self.excluded_keys:
            if td.get(key, None) is not None:
                td.del_(key)
        return td

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        return self._drop(next_tensordict)

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return self._drop(tensordict_reset)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """A TensorDict without the keys (root and ``"next"``)."""
        return tensordict.exclude(*self.excluded_keys, *(next_key(k) for k in self.excluded_keys))

    def _repr_args(self) -> list[str]:
        return [f"excluded_keys={self.excluded_keys}"]


class SelectTransform(ExcludeTransform):
    """Keep only the listed observation keys (plus, by default, rewards and done flags).

    Args:
        selected_keys: the observation keys to keep.
        keep_rewards, keep_dones: also keep those outside an env (``forward``); inside
            an env they are always kept.
    """

    def __init__(self, *selected_keys: Any, keep_rewards: bool = True, keep_dones: bool = True) -> None:
        Transform.__init__(self)
        if len(selected_keys) == 1 and isinstance(selected_keys[0], list):
            selected_keys = tuple(selected_keys[0])
        self.selected_keys = as_keys(list(selected_keys), "SelectTransform", "selected_keys")
        self.keep_rewards = bool(keep_rewards)
        self.keep_dones = bool(keep_dones)
        self.excluded_keys = []

    def _validate_keys(self, output_spec: Composite, input_spec: Composite, where: str) -> None:
        obs = spec_keys(output_spec["full_observation_spec"])
        readable = group_keys(output_spec, OUTPUT_GROUPS) + spec_keys(input_spec["full_state_spec"])
        for key in self.selected_keys:
            if key not in readable:
                raise TransformKeyError(
                    f"{where}: cannot select {show_key(key)}: the env does not produce it; keys there: "
                    f"{sorted(map(str, readable))}"
                )
        self.excluded_keys = [k for k in obs if k not in self.selected_keys]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """A TensorDict with the selected keys (root and ``"next"``), rewards and dones."""
        keep = list(self.selected_keys)
        for key in tensordict.keys(include_nested=True, leaves_only=True):
            if isinstance(key, tuple) and key[0] == NEXT:
                key = key[1] if len(key) == 2 else key[1:]
            name = _name(key)
            if (self.keep_rewards and name == REWARD) or (self.keep_dones and name in DONE_NAMES):
                keep.append(key)
        keys = [*keep, *(next_key(k) for k in keep)]
        return tensordict.select(*keys, strict=False)

    def _repr_args(self) -> list[str]:
        return [f"selected_keys={self.selected_keys}"]


class RenameTransform(Transform):
    """Rename ``in_keys`` to ``out_keys`` (observations, rewards or states); the inverse
    renames the outside ``out_keys_inv`` to the env's ``in_keys_inv`` (actions, states).

    With ``create_copy`` the old keys are kept as well.
    """

    def __init__(self, in_keys: Any, out_keys: Any, in_keys_inv: Any = None, out_keys_inv: Any = None,
                 create_copy: bool = False) -> None:
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        if len(self.in_keys) != len(as_keys(out_keys, "RenameTransform", "out_keys")):
            raise TransformError("RenameTransform: in_keys and out_keys must have the same length")
        self.create_copy = bool(create_copy)

    def _validate_keys(self, output_spec: Composite, input_spec: Composite, where: str) -> None:
        super()._validate_keys(output_spec, input_spec, where)
        done = spec_keys(output_spec["full_done_spec"])
        for key in self.in_keys:
            if key in done:
                raise TransformError(f"{where}: {show_key(key)} is a done flag; done flags cannot be renamed")

    def _rename(self, spec: Composite, pairs: list[tuple[NestedKey, NestedKey]]) -> Composite:
        for old, new in pairs:
            if old in spec:
                spec[new] = spec[old]
                if not self.create_copy:
                    del spec[old]
        return spec

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        return self._rename(observation_spec, self._key_pairs())

    def transform_reward_spec(self, reward_spec: Composite) -> Composite:
        return self._rename(reward_spec, self._key_pairs())

    def transform_state_spec(self, state_spec: Composite) -> Composite:
        return self._rename(self._rename(state_spec, self._key_pairs()), self._inv_key_pairs())

    def transform_action_spec(self, action_spec: Composite) -> Composite:
        return self._rename(action_spec, self._inv_key_pairs())

    def _move(self, td: TensorDictBase, strict: bool, where: str) -> TensorDictBase:
        for old, new in self._key_pairs():
            value = td.get(old, None)
            if value is None:
                if strict:
                    raise missing_key_error(repr(self), old, td, where)
                continue
            td.set(new, value)
            if not self.create_copy:
                td.del_(old)
        return td

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        return self._move(next_tensordict, True, "environment's output")

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return self._move(tensordict_reset, False, "reset output")

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Rename at the root and under ``"next"``."""
        nxt = tensordict.get(NEXT, None)
        found = {k: False for k in self.in_keys}
        for td in (tensordict, nxt):
            if isinstance(td, TensorDictBase):
                for old, _ in self._key_pairs():
                    found[old] |= td.get(old, None) is not None
                self._move(td, False, "")
        for key, ok in found.items():
            if not ok:
                raise missing_key_error(repr(self), key, tensordict, "TensorDict given to forward()")
        return tensordict

    def _repr_args(self) -> list[str]:
        return [f"create_copy={self.create_copy}"] if self.create_copy else []
