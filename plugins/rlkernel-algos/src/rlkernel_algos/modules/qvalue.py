"""Greedy actions from action values: :class:`QValueModule` and :class:`QValueActor`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase, TensorDictSequential

from rlkernel.errors import SpecError
from rlkernel_algos.modules.actors import NestedKey, _as_keys, action_leaf_spec

__all__ = ["QValueActor", "QValueModule"]

_SPACES = {"one_hot": "one_hot", "one-hot": "one_hot", "onehot": "one_hot", "categorical": "categorical"}


def _action_space(action_space: Any, spec: Any) -> str:
    from rlkernel.specs import Categorical, OneHot

    if action_space is not None and not isinstance(action_space, str):
        spec, action_space = action_space, None  # TorchRL also accepts a spec here
    if isinstance(action_space, str):
        space = _SPACES.get(action_space.lower())
        if space is None:
            raise SpecError(f"QValueModule: unknown action_space {action_space!r}; use 'one_hot' or 'categorical'")
        return space
    if isinstance(spec, OneHot):
        return "one_hot"
    if isinstance(spec, Categorical):
        return "categorical"
    if spec is None:
        raise SpecError("QValueModule: give action_space ('one_hot' or 'categorical') or a OneHot/Categorical spec")
    raise SpecError(f"QValueModule: the action spec must be OneHot or Categorical, got {type(spec).__name__}")


class QValueModule(TensorDictModuleBase):
    """Pick the action of highest value: reads ``action_value`` and writes the action.

    Writes, by default, ``"action"`` (one-hot or category index, following the spec),
    ``"action_value"`` (masked, see below) and ``"chosen_action_value"`` (shape
    ``[*batch, 1]``). Ties go to the lowest index.

    Masks: with ``action_mask_key``, the bool entry (True = allowed, shaped like the action
    values) is read and the values of masked actions are replaced by the dtype's lowest
    value before the argmax, so a masked action is never picked while one is allowed.

    Categorical actions have the shape of the values without their last dim, plus a
    trailing dim of 1 when the spec's shape ends with 1 (``Categorical(n, shape=(1,))``).

    Args:
        action_space: ``"one_hot"`` or ``"categorical"`` (or a spec), inferred from ``spec``
            when not given.
        action_value_key: where the action values are read (``"action_value"``).
        action_mask_key: where the action mask is read (none by default).
        out_keys: ``[action, action_value, chosen_action_value]`` keys.
        spec: the action spec (gives the space and the action's dtype).
        safe: check that the actions fit the spec (not needed for a correct spec).

    Example::

        >>> qv = QValueModule(action_space="one_hot")
        >>> td = qv(TensorDict(action_value=torch.tensor([[1.0, 3.0, 2.0]]), batch_size=[1]))
        >>> td["action"], td["chosen_action_value"]
        (tensor([[0, 1, 0]]), tensor([[3.]]))
    """

    def __init__(
        self,
        action_space: str | Any | None = None,
        action_value_key: NestedKey | None = None,
        action_mask_key: NestedKey | None = None,
        out_keys: Sequence[NestedKey] | None = None,
        spec: Any = None,
        safe: bool = False,
    ) -> None:
        super().__init__()
        self.action_value_key = "action_value" if action_value_key is None else action_value_key
        keys_out = _as_keys(out_keys, ["action", self.action_value_key, "chosen_action_value"])
        if len(keys_out) != 3:
            raise SpecError(f"QValueModule: out_keys must hold 3 keys (action, values, chosen value), got {keys_out}")
        self.spec = action_leaf_spec(spec, keys_out[0])
        self.action_space = _action_space(action_space, self.spec)
        self.action_mask_key = action_mask_key
        self.in_keys = [self.action_value_key] + ([action_mask_key] if action_mask_key is not None else [])
        self.out_keys = keys_out
        self.safe = bool(safe)
        shape = tuple(self.spec.shape) if self.spec is not None else ()
        self._keep_last = self.action_space == "categorical" and len(shape) > 0 and shape[-1] == 1
        default_dtype = torch.long
        self._dtype = self.spec.dtype if self.spec is not None else default_dtype

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write the greedy action, the (masked) values and the value of the chosen action."""
        values = tensordict.get(self.action_value_key, None)
        if values is None:
            raise SpecError(
                f"QValueModule: the input has no action values at {self.action_value_key!r}; keys: "
                f"{list(tensordict.keys(True, True))}"
            )
        if self.action_mask_key is not None:
            mask = tensordict.get(self.action_mask_key, None)
            if mask is None:
                raise SpecError(f"QValueModule: the input has no action mask at {self.action_mask_key!r}")
            if mask.dtype is not torch.bool or mask.shape != values.shape:
                raise SpecError(
                    f"QValueModule: the action mask {self.action_mask_key!r} must be a bool tensor of the "
                    f"action values' shape {list(values.shape)}, got {mask.dtype} of shape {list(mask.shape)}"
                )
            values = values.masked_fill(~mask, torch.finfo(values.dtype).min)
        index = values.argmax(-1, keepdim=True)
        chosen = values.gather(-1, index)
        if self.action_space == "one_hot":
            action = torch.zeros_like(values, dtype=self._dtype).scatter_(-1, index, 1)
        else:
            action = (index if self._keep_last else index.squeeze(-1)).to(self._dtype)
        if self.safe and self.spec is not None:
            self.spec.assert_is_in(action, key=self.out_keys[0], role="action")
        key_action, key_values, key_chosen = self.out_keys
        tensordict.set(key_action, action)
        tensordict.set(key_values, values)
        tensordict.set(key_chosen, chosen)
        return tensordict


class QValueActor(TensorDictSequential):
    """A Q-network followed by a :class:`QValueModule`: observation in, greedy action out.

    Args:
        module: the Q-network (``nn.Module`` mapping ``in_keys`` to the action values), or a
            ``tensordict.nn`` module already writing ``action_value_key``.
        in_keys: keys the network reads (``["observation"]``; ignored for a tensordict module).
        spec: the action spec (``OneHot`` or ``Categorical``).
        safe: see :class:`QValueModule`.
        action_space, action_value_key, action_mask_key: see :class:`QValueModule`.

    Example::

        >>> from rlkernel.specs import OneHot
        >>> actor = QValueActor(torch.nn.Linear(4, 3), spec=OneHot(3))
        >>> actor(TensorDict(observation=torch.randn(2, 4), batch_size=[2]))["action"].dtype
        torch.bool
    """

    def __init__(
        self,
        module: Callable[..., Any],
        in_keys: NestedKey | Sequence[NestedKey] | None = None,
        spec: Any = None,
        safe: bool = False,
        action_space: str | None = None,
        action_value_key: NestedKey | None = None,
        action_mask_key: NestedKey | None = None,
    ) -> None:
        value_key = "action_value" if action_value_key is None else action_value_key
        if isinstance(module, TensorDictModuleBase):
            if value_key not in module.out_keys:
                raise SpecError(
                    f"QValueActor: the tensordict module writes {module.out_keys}, not the action values "
                    f"{value_key!r} (set action_value_key)"
                )
            net = module
        else:
            net = TensorDictModule(module, in_keys=_as_keys(in_keys, ["observation"]), out_keys=[value_key])
        qvalue = QValueModule(
            action_space=action_space, action_value_key=value_key, action_mask_key=action_mask_key,
            spec=spec, safe=safe,
        )
        super().__init__(net, qvalue)
        self.spec = qvalue.spec
        self.action_value_key = value_key
