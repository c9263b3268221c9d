"""Actors and critics as ``tensordict.nn`` modules: :class:`Actor`, :class:`ProbabilisticActor`,
:class:`ValueOperator`.

They are thin subclasses of ``tensordict.nn`` classes that add TorchRL's default keys and an
optional action ``spec``: with a spec, actions are cast to the spec's dtype (a one-hot
``torch.long`` sample becomes the spec's ``bool``), and with ``safe=True`` projected into it.

Exploration: a :class:`ProbabilisticActor` samples when :func:`rlkernel.exploration_type`
is ``RANDOM`` (also when none is set: rlkernel's default, where TorchRL's
``ProbabilisticActor`` would take the deterministic action) and otherwise returns the
distribution's ``deterministic_sample`` (``DETERMINISTIC``), ``mode``, ``mean`` or
``median``. Pass ``default_interaction_type`` to change what it does when none is set.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import (
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    TensorDictModuleBase,
)
from torch import nn

from rlkernel.errors import SpecError
from rlkernel.exploration import DEFAULT_EXPLORATION_TYPE, ExplorationType
from rlkernel.tensor_call import MapStep, Step, steps_as

__all__ = ["Actor", "ProbabilisticActor", "ValueOperator"]

NestedKey = str | tuple[str, ...]


def _as_keys(keys: NestedKey | Sequence[NestedKey] | None, default: list[NestedKey]) -> list[NestedKey]:
    if keys is None:
        return list(default)
    if isinstance(keys, (str, tuple)):
        return [keys]
    return list(keys)


def action_leaf_spec(spec: Any, key: NestedKey) -> Any:
    """The leaf spec of ``key`` when ``spec`` is a Composite, else ``spec`` itself."""
    if spec is None:
        return None
    from rlkernel.specs import Composite, TensorSpec

    if isinstance(spec, Composite):
        leaf = spec.get(key)
        if leaf is None:
            raise SpecError(f"the Composite spec has no entry {key!r}; its keys: {spec.keys(True, True)}")
        return leaf
    if not isinstance(spec, TensorSpec):
        raise SpecError(f"spec must be an rlkernel TensorSpec, got {type(spec).__name__}")
    return spec


def _fit_value(value: torch.Tensor, spec: Any, safe: bool) -> torch.Tensor:
    """``value`` cast to the spec's dtype and, with ``safe``, projected into the spec."""
    if value.dtype != spec.dtype:
        value = value.to(spec.dtype)
    return spec.project(value) if safe else value


def _fit_to_spec(td: TensorDictBase, key: NestedKey, spec: Any, safe: bool) -> None:
    value = td.get(key, None)
    if value is not None and spec is not None:
        td.set(key, _fit_value(value, spec, safe))


def _with_spec_fit(steps: list[Step] | None, key: NestedKey, spec: Any, safe: bool) -> list[Step] | None:
    """``steps`` followed by the cast of ``key`` to ``spec`` (nothing to add without a spec)."""
    if steps is None or spec is None:
        return steps
    return [*steps, MapStep(functools.partial(_fit_value, spec=spec, safe=safe), [key], [key])]


class Actor(TensorDictModule):
    """A deterministic actor: ``module`` reads ``in_keys`` and writes the action.

    Args:
        module: a callable (``nn.Module``) mapping the inputs to the action.
        in_keys: the keys read, ``["observation"]`` by default.
        out_keys: the keys written, ``["action"]`` by default.
        spec: the action spec (a leaf spec, or a Composite holding the first out-key);
            actions are cast to its dtype.
        safe: project actions into the spec.

    Example::

        >>> actor = Actor(torch.nn.Linear(3, 1))
        >>> actor(TensorDict(observation=torch.zeros(5, 3), batch_size=[5]))["action"].shape
        torch.Size([5, 1])
    """

    def __init__(
        self,
        module: Callable[..., Any],
        in_keys: NestedKey | Sequence[NestedKey] | None = None,
        out_keys: NestedKey | Sequence[NestedKey] | None = None,
        *,
        spec: Any = None,
        safe: bool = False,
        **kwargs: Any,
    ) -> None:
        out = _as_keys(out_keys, ["action"])
        super().__init__(module, in_keys=_as_keys(in_keys, ["observation"]), out_keys=out, **kwargs)
        self.spec = action_leaf_spec(spec, out[0])
        self.safe = bool(safe)
        if self.safe and self.spec is None:
            raise SpecError("Actor: safe=True needs a spec to project the actions into")

    def tensor_call_steps(self) -> list[Step] | None:
        """How :class:`rlkernel.tensor_call.TensorCall` computes this actor from tensors: the
        ``TensorDictModule`` call, then the cast to the spec."""
        return _with_spec_fit(steps_as(self, TensorDictModule), self.out_keys[0], self.spec, self.safe)

    def forward(self, tensordict: TensorDictBase, *args: Any, **kwargs: Any) -> Any:
        """Run the module; cast (and with ``safe`` project) the action into the spec."""
        out = super().forward(tensordict, *args, **kwargs)
        if self.spec is not None and isinstance(out, TensorDictBase):
            _fit_to_spec(out, self.out_keys[0], self.spec, self.safe)
        return out


class ProbabilisticActor(ProbabilisticTensorDictSequential):
    """A stochastic actor: ``module`` writes distribution parameters, then an action is drawn.

    It is a ``ProbabilisticTensorDictSequential(module, ProbabilisticTensorDictModule(...))``:
    ``get_dist(td)`` returns the distribution, ``log_prob(td)`` scores the action in ``td``.

    Args:
        module: a ``tensordict.nn`` module writing the distribution parameters.
        in_keys: the parameter keys, read by the distribution (e.g. ``["loc", "scale"]``;
            a dict maps distribution argument names to keys).
        out_keys: the sampled keys, ``["action"]`` by default.
        spec: the action spec; samples are cast to its dtype.
        safe: project samples into the spec.
        distribution_class: a ``torch.distributions`` class (e.g. :class:`TanhNormal`).
        distribution_kwargs: extra constructor arguments (e.g. ``{"low": -2.0, "high": 2.0}``).
        return_log_prob: also write the log-probability of the sample. It goes to
            ``"<action>_log_prob"`` (``"action_log_prob"`` for the default out-key: the key
            tensordict >= 0.15 uses when ``tensordict.nn.composite_lp_aggregate()`` is False,
            its default); set ``log_prob_key`` to choose another. The attribute
            ``log_prob_key`` holds the key in use.
        default_interaction_type: what to do when no exploration type is set (``RANDOM``).
        **kwargs: passed to ``ProbabilisticTensorDictModule`` (``cache_dist``,
            ``n_empirical_estimate``, ``log_prob_key``, ``num_samples``, ...).

    Example::

        >>> from tensordict.nn import NormalParamExtractor
        >>> net = TensorDictModule(torch.nn.Sequential(torch.nn.Linear(3, 4), NormalParamExtractor()),
        ...                        in_keys=["observation"], out_keys=["loc", "scale"])
        >>> actor = ProbabilisticActor(net, in_keys=["loc", "scale"], distribution_class=TanhNormal,
        ...                            return_log_prob=True)
        >>> td = actor(TensorDict(observation=torch.zeros(5, 3), batch_size=[5]))
        >>> td["action"].shape, td["action_log_prob"].shape
        (torch.Size([5, 2]), torch.Size([5]))
    """

    def __init__(
        self,
        module: TensorDictModuleBase,
        in_keys: NestedKey | Sequence[NestedKey] | dict[str, NestedKey],
        out_keys: NestedKey | Sequence[NestedKey] | None = None,
        *,
        spec: Any = None,
        safe: bool = False,
        distribution_class: type | Callable[..., Any] | None = None,
        distribution_kwargs: dict | None = None,
        return_log_prob: bool = False,
        default_interaction_type: ExplorationType = DEFAULT_EXPLORATION_TYPE,
        **kwargs: Any,
    ) -> None:
        if not isinstance(module, TensorDictModuleBase):
            raise SpecError(
                f"ProbabilisticActor: module must be a tensordict.nn module writing the distribution "
                f"parameters {in_keys!r}, got {type(module).__name__}; wrap it in TensorDictModule"
            )
        if distribution_class is None:
            raise SpecError("ProbabilisticActor: distribution_class is required (e.g. TanhNormal)")
        out = _as_keys(out_keys, ["action"])
        keys_in = in_keys if isinstance(in_keys, dict) else _as_keys(in_keys, [])
        sampler = ProbabilisticTensorDictModule(
            in_keys=keys_in,
            out_keys=out,
            distribution_class=distribution_class,
            distribution_kwargs=distribution_kwargs,
            return_log_prob=return_log_prob,
            default_interaction_type=default_interaction_type,
            **kwargs,
        )
        super().__init__(module, sampler)
        self.spec = action_leaf_spec(spec, out[0])
        self.safe = bool(safe)
        if self.safe and self.spec is None:
            raise SpecError("ProbabilisticActor: safe=True needs a spec to project the actions into")

    @classmethod
    def _from_modules(cls, modules: Sequence[TensorDictModuleBase], spec: Any, safe: bool) -> ProbabilisticActor:
        """An actor running ``modules`` (the sampler last), with ``spec`` and ``safe`` as given.

        Used to put a shared trunk in front of an actor's own modules: the sequence stays flat,
        so that ``get_dist`` runs every module before the sampler.
        """
        actor = cls.__new__(cls)
        ProbabilisticTensorDictSequential.__init__(actor, *modules)
        actor.spec, actor.safe = spec, safe
        return actor

    def tensor_call_steps(self) -> list[Step] | None:
        """How :class:`rlkernel.tensor_call.TensorCall` computes this actor from tensors: the
        steps of its ``ProbabilisticTensorDictSequential``, then the cast to the spec."""
        steps = steps_as(self, ProbabilisticTensorDictSequential)
        return _with_spec_fit(steps, self.module[-1].out_keys[0], self.spec, self.safe)

    def forward(self, tensordict: TensorDictBase, *args: Any, **kwargs: Any) -> Any:
        """Compute the parameters, draw (or take the deterministic) action, fit it to the spec."""
        out = super().forward(tensordict, *args, **kwargs)
        if self.spec is not None and isinstance(out, TensorDictBase):
            _fit_to_spec(out, self.module[-1].out_keys[0], self.spec, self.safe)
        return out


class ValueOperator(TensorDictModule):
    """A critic: ``module`` reads ``in_keys`` and writes a value.

    ``out_keys`` default to ``["state_value"]``, or ``["state_action_value"]`` when
    ``"action"`` is among the ``in_keys`` (a Q-function).

    Example::

        >>> critic = ValueOperator(torch.nn.Linear(4, 1), in_keys=["observation", "action"])
        >>> critic.out_keys
        ['state_action_value']
    """

    def __init__(
        self,
        module: nn.Module | Callable[..., torch.Tensor],
        in_keys: NestedKey | Sequence[NestedKey] | None = None,
        out_keys: NestedKey | Sequence[NestedKey] | None = None,
        **kwargs: Any,
    ) -> None:
        keys_in = _as_keys(in_keys, ["observation"])
        default_out = "state_action_value" if "action" in keys_in else "state_value"
        super().__init__(module, in_keys=keys_in, out_keys=_as_keys(out_keys, [default_out]), **kwargs)
