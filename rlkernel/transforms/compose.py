""":class:`Compose`: a chain of transforms applied in order (inverses in reverse order)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tensordict import TensorDictBase
from torch import nn

from rlkernel.specs import Composite
from rlkernel.transforms._utils import TransformError
from rlkernel.transforms.base import Transform


class Compose(Transform):
    """Chain transforms: outputs go through them first to last, inputs (actions) last to
    first, and the specs first to last (each sees the specs the previous one produced).

    >>> from rlkernel.transforms import Compose, RewardSum, StepCounter
    >>> t = Compose(StepCounter(), RewardSum())
    >>> len(t), type(t[0]).__name__
    (2, 'StepCounter')
    """

    def __init__(self, *transforms: Transform) -> None:
        super().__init__()
        if len(transforms) == 1 and isinstance(transforms[0], (list, tuple)):
            transforms = tuple(transforms[0])
        self.transforms = nn.ModuleList()
        self.__dict__["_borrowed"] = False
        for t in transforms:
            self._add(len(self.transforms), t)

    @classmethod
    def _borrowing(cls, transforms: list[Transform]) -> Compose:
        """A Compose that runs ``transforms`` without owning them (for ``parent`` envs)."""
        out = cls()
        out.__dict__["_borrowed"] = True
        for t in transforms:
            out.transforms.append(t)
        return out

    # ------------------------------------------------------------------ list behaviour
    def _add(self, index: int, transform: Transform) -> None:
        if not isinstance(transform, Transform):
            raise TransformError(f"Compose holds Transform objects, got {type(transform).__name__}")
        if self.__dict__["_borrowed"]:
            raise TransformError("this Compose belongs to a parent env view and cannot be changed")
        transform._set_container(self)
        self.transforms.insert(index, transform)

    def append(self, transform: Transform) -> Compose:
        """Add ``transform`` at the end; returns ``self``."""
        return self.insert(len(self.transforms), transform)

    def insert(self, index: int, transform: Transform) -> Compose:
        """Add ``transform`` at ``index`` (negative indices count from the end)."""
        n = len(self.transforms)
        if not -n - 1 <= index <= n:
            raise TransformError(f"Compose.insert: index {index} out of range for {n} transforms")
        index = index + n + 1 if index < 0 else index
        self._add(index, transform)
        env = self.container
        if env is not None:
            try:
                env._chain_changed()
            except Exception:
                del self.transforms[index]
                transform._release()
                env._chain_changed()
                raise
        return self

    def pop(self, index: int = -1) -> Transform:
        """Remove and return the transform at ``index``."""
        t = self.transforms[index]
        del self.transforms[index]
        t._release()
        self._specs_changed()
        return t

    def __getitem__(self, index: int) -> Transform:
        return self.transforms[index]

    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self) -> Iterator[Transform]:
        return iter(self.transforms)

    def flat(self) -> list[Transform]:
        """The transforms in order, nested Compose objects expanded."""
        out: list[Transform] = []
        for t in self.transforms:
            out += t.flat() if isinstance(t, Compose) else [t]
        return out

    # ------------------------------------------------------------------ data path
    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        for t in self.transforms:
            next_tensordict = t._call(next_tensordict)
        return next_tensordict

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        for t in self.transforms:
            tensordict_reset = t._reset(tensordict, tensordict_reset)
        return tensordict_reset

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        for t in self.transforms:
            next_tensordict = t._step(tensordict, next_tensordict)
        return next_tensordict

    def _inv_call(self, tensordict: TensorDictBase) -> TensorDictBase:
        for t in reversed(self.transforms):
            tensordict = t._inv_call(tensordict)
        return tensordict

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        for t in self.transforms:
            tensordict = t(tensordict)
        return tensordict

    # ------------------------------------------------------------------ specs
    def transform_output_spec(self, output_spec: Composite) -> Composite:
        for t in self.transforms:
            output_spec = t.transform_output_spec(output_spec)
        return output_spec

    def transform_input_spec(self, input_spec: Composite) -> Composite:
        for t in self.transforms:
            input_spec = t.transform_input_spec(input_spec)
        return input_spec

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        for t in self.transforms:
            observation_spec = t.transform_observation_spec(observation_spec)
        return observation_spec

    def transform_reward_spec(self, reward_spec: Composite) -> Composite:
        for t in self.transforms:
            reward_spec = t.transform_reward_spec(reward_spec)
        return reward_spec

    def transform_done_spec(self, done_spec: Composite) -> Composite:
        for t in self.transforms:
            done_spec = t.transform_done_spec(done_spec)
        return done_spec

    def transform_action_spec(self, action_spec: Composite) -> Composite:
        for t in self.transforms:
            action_spec = t.transform_action_spec(action_spec)
        return action_spec

    def transform_state_spec(self, state_spec: Composite) -> Composite:
        for t in self.transforms:
            state_spec = t.transform_state_spec(state_spec)
        return state_spec

    def _validate_keys(self, output_spec: Composite, input_spec: Composite, where: str) -> None:
        """Checked transform by transform by the environment (see ``flat``)."""

    def _check_declared(self, output_spec: Composite, input_spec: Composite, where: str) -> None:
        """Checked transform by transform by the environment (see ``flat``)."""

    def close(self) -> None:
        for t in self.transforms:
            t.close()

    def __repr__(self) -> str:
        inner = ",\n".join("    " + repr(t).replace("\n", "\n    ") for t in self.transforms)
        return f"Compose(\n{inner})" if inner else "Compose()"

    def _repr_args(self) -> list[Any]:
        return []
