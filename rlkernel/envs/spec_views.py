"""The spec side of :class:`~rlkernel.envs.EnvBase`: the ``full_*`` specs, their views and the key lists.

:class:`EnvSpecs` is a mixin of ``EnvBase`` (it relies on the attributes ``EnvBase.__init__``
sets): setting a spec checks it and clears the key lists derived from the specs.
"""

from __future__ import annotations

import torch

from rlkernel.envs.step import (
    ACTION,
    DONE,
    REWARD,
    TERMINATED,
    TRUNCATED,
    NestedKey,
)
from rlkernel.errors import EnvError, SpecError
from rlkernel.specs import Categorical, Composite, TensorSpec


class EnvSpecs:
    """``full_observation_spec``, ``full_state_spec``, ``full_action_spec``,
    ``full_reward_spec``, ``full_done_spec``; the views ``observation_spec``,
    ``action_spec``, ``reward_spec``, ``done_spec``, ``state_spec``; and the key lists
    (``action_keys``, ``reward_keys``, ``done_keys``, ``observation_keys``, ``state_keys``)."""

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
