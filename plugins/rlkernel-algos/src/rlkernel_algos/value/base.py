"""What every value estimator shares: keys, running the value network, reading a step.

An estimator is TensorDict-in / TensorDict-out. It reads a batch of steps shaped
``[*batch, time]`` (time is the last batch dim unless told otherwise), with the layout an
environment rollout or a collector writes::

    {observation, action, ..., next: {observation, reward, done, terminated, ...}}

runs the value network on the root and on ``"next"`` (one call on both, concatenated),
writes the values it used (``"state_value"`` and ``("next", "state_value")``), then the
``"advantage"`` and the ``"value_target"``. Every key can be renamed with
:meth:`ValueEstimatorBase.set_keys`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn

from rlkernel.errors import SpecError
from rlkernel_algos.value._checks import check_coefficient

NestedKey = str | tuple[str, ...]


@dataclasses.dataclass
class ValueKeys:
    """The keys an estimator reads and writes (reward, done and terminated under ``"next"``).

    Attributes:
        advantage: where the advantage is written.
        value_target: where the value target (the return estimate) is written.
        value: the value network's output, read at the root and under ``"next"``.
        reward: the reward, under ``"next"``.
        done: the end-of-trajectory flag (terminated or truncated), under ``"next"``.
        terminated: the terminal-state flag (no bootstrap), under ``"next"``.
        sample_log_prob: the log-probability of the action under the collecting policy
            (V-trace); tensordict's default name for the action ``"action"``.
        action: the action (V-trace scores it under the current policy).
    """

    advantage: NestedKey = "advantage"
    value_target: NestedKey = "value_target"
    value: NestedKey = "state_value"
    reward: NestedKey = "reward"
    done: NestedKey = "done"
    terminated: NestedKey = "terminated"
    sample_log_prob: NestedKey = "action_log_prob"
    action: NestedKey = "action"


def _fmt_keys(td: TensorDictBase) -> str:
    keys = sorted(str(k) for k in td.keys(include_nested=True, leaves_only=True))
    return "[" + ", ".join(keys[:20]) + (", ..." if len(keys) > 20 else "") + "]"


def get_entry(td: TensorDictBase, key: NestedKey, owner: str, rename: str, under_next: bool = False) -> torch.Tensor:
    """``td[key]``, or a :class:`SpecError` that names the key and how to rename it."""
    value = td.get(key, None)
    if value is None:
        full = ("next", *((key,) if isinstance(key, str) else key)) if under_next else key
        where = "under 'next'" if under_next else "at the root"
        raise SpecError(
            f"{owner}: the input has no entry {full!r} (the {rename} key; rename it with "
            f"set_keys({rename}=...)); its keys {where} are {_fmt_keys(td)}"
        )
    return value


class ValueEstimatorBase(nn.Module):
    """Base class of TD(0), TD(1), TD(lambda), GAE and V-trace estimators.

    Subclasses implement :meth:`_estimate`. Args common to all:

    Args:
        value_network: a ``tensordict.nn`` module writing the value at ``value_key``
            (by default its last out-key), or ``None`` to read values already in the input.
        differentiable: if False (default) everything runs under ``torch.no_grad()``.
        skip_existing: reuse values already present at the root and under ``"next"``
            instead of running the network.
        time_dim: the batch dim of the input that is time (default: the last one, or the
            one named ``"time"`` when the input has dim names).
        advantage_key, value_target_key, value_key: shortcuts for :meth:`set_keys`.
    """

    default_keys = ValueKeys

    def __init__(
        self,
        *,
        value_network: nn.Module | None,
        differentiable: bool = False,
        skip_existing: bool = False,
        time_dim: int | None = None,
        advantage_key: NestedKey | None = None,
        value_target_key: NestedKey | None = None,
        value_key: NestedKey | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if value_network is not None and not (
            callable(value_network) and hasattr(value_network, "in_keys") and hasattr(value_network, "out_keys")
        ):
            raise SpecError(
                f"{owner}: value_network must be a tensordict.nn module (with in_keys and out_keys), "
                f"got {type(value_network).__name__}; wrap a torch module in ValueOperator"
            )
        self.value_network = value_network
        self.differentiable = bool(differentiable)
        self.skip_existing = bool(skip_existing)
        self.time_dim = time_dim
        self._keys = self.default_keys()
        if value_network is not None and value_key is None:
            value_key = value_network.out_keys[-1]
        self.set_keys(advantage=advantage_key, value_target=value_target_key, value=value_key)

    # ---------------------------------------------------------------- keys
    @property
    def tensor_keys(self) -> ValueKeys:
        """The keys in use (a :class:`ValueKeys`); change them with :meth:`set_keys`."""
        return self._keys

    def set_keys(self, **keys: NestedKey | None) -> ValueEstimatorBase:
        """Rename keys: ``advantage``, ``value_target``, ``value``, ``reward``, ``done``,
        ``terminated``, ``sample_log_prob``, ``action`` (``None`` leaves one as it is).

        >>> est = GAE(gamma=0.99, lmbda=0.95, value_network=None)   # doctest: +SKIP
        >>> est.set_keys(reward=("agents", "reward"), advantage="adv")   # doctest: +SKIP
        """
        names = {f.name for f in dataclasses.fields(self._keys)}
        for name, key in keys.items():
            if name not in names:
                raise SpecError(f"{type(self).__name__}.set_keys: unknown key name {name!r}; known: {sorted(names)}")
            if key is None:
                continue
            if not (isinstance(key, str) or (isinstance(key, tuple) and key and all(isinstance(k, str) for k in key))):
                raise SpecError(f"{type(self).__name__}.set_keys: {name} must be a str or a tuple of str, got {key!r}")
            setattr(self._keys, name, key)
        return self

    # ---------------------------------------------------------------- helpers
    def _check_coefs(self, **coefs: float) -> None:
        for name, value in coefs.items():
            check_coefficient(value, name, type(self).__name__)

    def _grad_context(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext() if self.differentiable else torch.no_grad()

    def _time_dim(self, td: TensorDictBase, time_dim: int | None) -> int:
        owner = type(self).__name__
        if td.batch_dims == 0:
            raise SpecError(f"{owner}: the input needs a time dim, got batch_size {list(td.batch_size)}")
        if time_dim is None:
            time_dim = self.time_dim
        if time_dim is None:
            names = list(td.names)
            time_dim = names.index("time") if "time" in names else td.batch_dims - 1
        if not -td.batch_dims <= time_dim < td.batch_dims:
            raise SpecError(f"{owner}: time_dim={time_dim} is not a batch dim of batch_size {list(td.batch_size)}")
        return time_dim % td.batch_dims

    def _next(self, td: TensorDictBase) -> TensorDictBase:
        nxt = td.get("next", None)
        if not isinstance(nxt, TensorDictBase):
            raise SpecError(
                f"{type(self).__name__}: the input has no 'next' sub-TensorDict (keys: {_fmt_keys(td)}); "
                "give a batch of steps as written by env.rollout or a collector"
            )
        return nxt

    def _run_network(self, td: TensorDictBase, params: TensorDictBase | None) -> TensorDictBase:
        assert self.value_network is not None
        if params is None:
            return self.value_network(td)
        with params.to_module(self.value_network):
            return self.value_network(td)

    def _values(
        self, td: TensorDictBase, params: TensorDictBase | None, target_params: TensorDictBase | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """State values at the root and under ``"next"``, written to both."""
        owner, key = type(self).__name__, self.tensor_keys.value
        nxt = self._next(td)
        have = td.get(key, None) is not None and nxt.get(key, None) is not None
        if self.value_network is None or (self.skip_existing and have):
            return (
                get_entry(td, key, owner, "value"),
                get_entry(nxt, key, owner, "value", under_next=True),
            )
        in_keys = list(self.value_network.in_keys)
        for where, source in (("", td), ("'next' ", nxt)):
            missing = [k for k in in_keys if source.get(k, None) is None]
            if missing:
                raise SpecError(
                    f"{owner}: the value network reads {in_keys} but the input's {where}entries lack "
                    f"{missing}; keys: {_fmt_keys(source)}"
                )
        root_in, next_in = td.select(*in_keys), nxt.select(*in_keys)
        if target_params is None:
            # One call on root and next together: half the kernel launches of two calls.
            out = self._run_network(torch.cat([root_in, next_in], 0), params)
            both = get_entry(out, key, owner, "value")
            value, next_value = both.split([td.batch_size[0], td.batch_size[0]], 0)
        else:
            value = get_entry(self._run_network(root_in, params), key, owner, "value")
            next_value = get_entry(self._run_network(next_in, target_params), key, owner, "value")
        td.set(key, value)
        nxt.set(key, next_value)
        return value, next_value

    def _step_entries(self, td: TensorDictBase) -> tuple[torch.Tensor, ...]:
        """``(reward, done, terminated)`` from ``"next"``, flags shaped like the reward."""
        owner, keys = type(self).__name__, self.tensor_keys
        nxt = self._next(td)
        reward = get_entry(nxt, keys.reward, owner, "reward", under_next=True)
        done = get_entry(nxt, keys.done, owner, "done", under_next=True)
        terminated = nxt.get(keys.terminated, None)
        if terminated is None:
            terminated = done
        flags = []
        for flag in (done, terminated):
            if flag.shape != reward.shape and flag.ndim == reward.ndim:
                try:
                    flag = flag.expand(reward.shape)
                except RuntimeError:
                    pass  # the functional reports the mismatch with both shapes
            flags.append(flag)
        return (reward, *flags)

    # ---------------------------------------------------------------- public API
    def _estimate(
        self, td: TensorDictBase, value: torch.Tensor, next_value: torch.Tensor, reward: torch.Tensor,
        done: torch.Tensor, terminated: torch.Tensor, time_dim: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(advantage, value_target)``; implemented by each estimator."""
        raise NotImplementedError

    def forward(
        self,
        tensordict: TensorDictBase,
        *,
        params: TensorDictBase | None = None,
        target_params: TensorDictBase | None = None,
        time_dim: int | None = None,
    ) -> TensorDictBase:
        """Write the advantage and the value target into ``tensordict`` and return it.

        ``params`` / ``target_params`` (optional TensorDicts of the value network's
        parameters, e.g. from ``TensorDict.from_module``) evaluate the root / ``"next"``
        values with other weights, such as a target network's.
        """
        if not isinstance(tensordict, TensorDictBase):
            raise SpecError(f"{type(self).__name__}: expected a TensorDict, got {type(tensordict).__name__}")
        dim = self._time_dim(tensordict, time_dim)
        with self._grad_context():
            reward, done, terminated = self._step_entries(tensordict)
            value, next_value = self._values(tensordict, params, target_params)
            advantage, target = self._estimate(tensordict, value, next_value, reward, done, terminated, dim)
        tensordict.set(self.tensor_keys.advantage, advantage)
        tensordict.set(self.tensor_keys.value_target, target)
        return tensordict

    def value_estimate(
        self,
        tensordict: TensorDictBase,
        *,
        params: TensorDictBase | None = None,
        target_params: TensorDictBase | None = None,
        time_dim: int | None = None,
    ) -> torch.Tensor:
        """Return the value target (the return estimate) only, without writing it."""
        td = tensordict.copy()
        td.set("next", self._next(tensordict).copy())
        self.forward(td, params=params, target_params=target_params, time_dim=time_dim)
        return td.get(self.tensor_keys.value_target)
