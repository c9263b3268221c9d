""":class:`TransformedEnv`: an environment seen through a chain of transforms."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.envs.common import EnvBase
from rlkernel.errors import EnvError
from rlkernel.specs import Composite
from rlkernel.transforms._checking import Stage, check_stage, make_stage
from rlkernel.transforms._utils import TransformError
from rlkernel.transforms.base import Transform
from rlkernel.transforms.compose import Compose


class TransformedEnv(EnvBase):
    """Wrap ``env`` so that its outputs go through ``transform`` and its inputs through the
    transform's inverse.

    The specs are the base env's specs as the transforms map them, recomputed whenever the
    chain changes. ``reset`` and ``step`` call the base environment, then the transforms'
    ``_reset``/``_step`` in order; before a step, the inverse transforms (in reverse order)
    turn the policy's action into the base env's action, on a shallow copy so that the
    returned TensorDict keeps the action the policy wrote.

    Args:
        env: the environment to wrap (any :class:`~rlkernel.envs.EnvBase`, batched or not,
            another ``TransformedEnv`` included).
        transform: a transform or a :class:`Compose`; more can be added with
            :meth:`append_transform` and :meth:`insert_transform`.
        check_specs: debug switch: after the base env and after each transform, check the
            TensorDict against the specs declared at that point and raise an
            :class:`~rlkernel.errors.EnvError` naming the transform at fault. Slow.

    Example::

        >>> from rlkernel.testing import CountingEnv
        >>> from rlkernel.transforms import RewardSum, StepCounter
        >>> env = TransformedEnv(CountingEnv(max_count=3), StepCounter())
        >>> env.append_transform(RewardSum())  # doctest: +ELLIPSIS
        TransformedEnv(...)
        >>> td = env.rollout(5, policy=lambda td: td.set("action", torch.ones(1)))
        >>> td["next", "step_count"].flatten().tolist(), td["next", "episode_reward"].flatten().tolist()
        ([1, 2, 3], [1.0, 2.0, 3.0])
    """

    def __init__(self, env: EnvBase, transform: Transform | None = None, *, check_specs: bool = False) -> None:
        if not isinstance(env, EnvBase):
            raise EnvError(f"TransformedEnv wraps an EnvBase, got {type(env).__name__}")
        super().__init__(device=env.device, batch_size=env.batch_size, check_actions=env.check_actions)
        self.base_env = env
        self.check_specs = bool(check_specs)
        self._owns_transform = True
        self._flat: list[Transform] = []
        self._stages: list[Stage] = []
        self._has_inverse = False
        self._transform: Transform = Compose()
        self._transform._set_container(self)
        if transform is not None:
            self.transform = transform
        else:
            self._chain_changed()

    @classmethod
    def _view(cls, env: EnvBase, transforms: list[Transform]) -> TransformedEnv:
        """An env running ``transforms`` on ``env`` without owning them (a ``parent``)."""
        out = cls.__new__(cls)
        EnvBase.__init__(out, device=env.device, batch_size=env.batch_size, check_actions=env.check_actions)
        out.base_env = env
        out.check_specs = False
        out._owns_transform = False
        out._flat = []
        out._stages = []
        out._has_inverse = False
        out._transform = Compose._borrowing(transforms)
        out._chain_changed()
        return out

    # ------------------------------------------------------------------ the chain
    @property
    def transform(self) -> Transform:
        """The transform (a single one as given, or a :class:`Compose`)."""
        return self._transform

    @transform.setter
    def transform(self, transform: Transform) -> None:
        if not isinstance(transform, Transform):
            raise TransformError(f"TransformedEnv.transform must be a Transform, got {type(transform).__name__}")
        old = self._transform
        transform._set_container(self)
        self._transform = transform
        try:
            self._chain_changed()
        except Exception:
            transform._release()
            self._transform = old
            self._chain_changed()
            raise
        ref = old.__dict__["_container"]
        if old is not transform and ref is not None and ref() is self:
            old._release()

    def append_transform(self, transform: Transform) -> TransformedEnv:
        """Add ``transform`` after the existing ones; returns ``self``."""
        return self.insert_transform(len(self._top_level()), transform)

    def insert_transform(self, index: int, transform: Transform) -> TransformedEnv:
        """Add ``transform`` at position ``index`` of the chain; returns ``self``."""
        if not isinstance(transform, Transform):
            raise TransformError(f"expected a Transform, got {type(transform).__name__}")
        current = self._transform
        if isinstance(current, Compose):
            current.insert(index, transform)
            return self
        n = 1
        if not -n - 1 <= index <= n:
            raise TransformError(f"insert_transform: index {index} out of range for {n} transform")
        current._release()
        chain = Compose(current)
        chain.insert(index, transform)
        try:
            self.transform = chain
        except Exception:
            chain.transforms[index]._release()
            del chain.transforms[index]
            current._release()
            current._set_container(self)
            raise
        return self

    def _top_level(self) -> list[Transform]:
        t = self._transform
        return list(t.transforms) if isinstance(t, Compose) else [t]

    def _chain_changed(self) -> None:
        """Recompute the flattened chain, the specs and the parents' caches."""
        t = self._transform
        self._flat = t.flat() if isinstance(t, Compose) else [t]
        if self._owns_transform:
            t.to(self.device)  # buffers (normalisation statistics, ...) follow the env
            for item in self._flat:
                item.__dict__["_parent"] = None
        self._refresh_specs()  # may resolve keys (DTypeCastTransform), so before _has_inverse
        self._has_inverse = any(
            item.in_keys_inv or type(item)._inv_call is not Transform._inv_call for item in self._flat
        )

    def _refresh_specs(self) -> None:
        base = self.base_env
        shape, device = self.batch_size, self.device
        output = Composite(
            full_observation_spec=base.full_observation_spec.clone(),
            full_reward_spec=base.full_reward_spec.clone(),
            full_done_spec=base.full_done_spec.clone(),
            shape=shape,
            device=device,
        )
        inputs = Composite(
            full_action_spec=base.full_action_spec.clone(),
            full_state_spec=base.full_state_spec.clone(),
            shape=shape,
            device=device,
        )
        stages = [make_stage(f"the base env {type(base).__name__}", output, inputs)] if self.check_specs else []
        for i, t in enumerate(self._flat):
            where = f"transform #{i} {t!r}"
            t._validate_keys(output, inputs, where)
            output = t.transform_output_spec(output)
            inputs = t.transform_input_spec(inputs)
            if not isinstance(output, Composite) or not isinstance(inputs, Composite):
                raise TransformError(f"{where}: transform_output_spec/transform_input_spec must return Composites")
            t._check_declared(output, inputs, where)
            if self.check_specs:
                stages.append(make_stage(where, output.clone(), inputs.clone()))
        self._stages = stages
        self.full_observation_spec = output["full_observation_spec"]
        self.full_reward_spec = output["full_reward_spec"]
        self.full_done_spec = output["full_done_spec"]
        self.full_action_spec = inputs["full_action_spec"]
        self.full_state_spec = inputs["full_state_spec"]

    def _parent_of(self, transform: Transform) -> TransformedEnv:
        for i, t in enumerate(self._flat):
            if t is transform:
                return TransformedEnv._view(self.base_env, self._flat[:i])
        raise TransformError(f"{transform!r} is not part of this TransformedEnv")

    # ------------------------------------------------------------------ the contract
    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self._has_inverse:
            tensordict = self._transform._inv_call(tensordict.copy())
        return self._step_inverted(tensordict)

    def _step_inverted(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Step the base env with an input already in its terms, then run the transforms."""
        base = self.base_env
        next_td = base._complete(base._step(tensordict), "_step")
        if self.check_specs:
            return self._run_checked(tensordict, next_td, "step")
        return self._transform._step(tensordict, next_td)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        base = self.base_env
        out = base._reset(tensordict, **kwargs) if kwargs else base._reset(tensordict)
        out = base._complete(out, "_reset")
        if tensordict is None:
            tensordict = TensorDict({}, self.batch_size, device=self.device)
        if self.check_specs:
            return self._run_checked(tensordict, out, "reset")
        return self._transform._reset(tensordict, out)

    def _run_checked(self, tensordict: TensorDictBase, out: TensorDictBase, where: str) -> TensorDictBase:
        check_stage(self._stages[0], out, where)
        for t, stage in zip(self._flat, self._stages[1:]):
            out = t._step(tensordict, out) if where == "step" else t._reset(tensordict, out)
            check_stage(stage, out, where)
        return out

    def _set_seed(self, seed: int | None) -> None:
        self.base_env.set_seed(seed)

    # ------------------------------------------------------------------ state, lifecycle
    def state_dict(self, *args: Any, **kwargs: Any) -> OrderedDict[str, torch.Tensor]:
        """The transforms' buffers (normalisation statistics, ...)."""
        return self._transform.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> Any:
        """Load what :meth:`state_dict` saved; the specs are recomputed."""
        out = self._transform.load_state_dict(state_dict, strict=strict)
        self._chain_changed()
        return out

    def train(self, mode: bool = True) -> TransformedEnv:
        """Put the transforms in training mode (``VecNorm`` updates its statistics)."""
        self._transform.train(mode)
        return self

    def eval(self) -> TransformedEnv:
        """``train(False)``."""
        return self.train(False)

    def close(self) -> None:
        """Close the transforms and the base environment."""
        if self.is_closed:
            return
        if self._owns_transform:
            self._transform.close()
            self.base_env.close()
        super().close()

    def __getattr__(self, name: str) -> Any:
        # Attributes the wrapper lacks are read from the base env (as in TorchRL).
        if name.startswith("_") or "base_env" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self.__dict__["base_env"], name)

    def __repr__(self) -> str:
        inner = repr(self._transform).replace("\n", "\n    ")
        return f"TransformedEnv(\n    env={self.base_env!r},\n    transform={inner})"
