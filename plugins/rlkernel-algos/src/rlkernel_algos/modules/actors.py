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

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import (
    CompositeDistribution,
    InteractionType,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    TensorDictModuleBase,
    interaction_type,
    skip_existing,
)
from torch import distributions as D
from torch import nn

from rlkernel._compat import tensordict as td_compat
from rlkernel.errors import SpecError
from rlkernel.exploration import DEFAULT_EXPLORATION_TYPE, ExplorationType

__all__ = ["Actor", "ProbabilisticActor", "ValueOperator"]

NestedKey = str | tuple[str, ...]


def _path(key: NestedKey) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


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


def _fit_to_spec(td: TensorDictBase, key: NestedKey, spec: Any, safe: bool) -> None:
    value = td.get(key, None)
    if value is None or spec is None:
        return
    if value.dtype != spec.dtype:
        value = value.to(spec.dtype)
    if safe:
        value = spec.project(value)
    td.set(key, value)


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

    def collector_tensor_call(self) -> tuple[Callable[..., Any], list[NestedKey], list[NestedKey]] | None:
        """The collectors' fast path: ``(fn, in_keys, out_keys)``, where ``fn(*inputs)``
        returns what :meth:`forward` writes -- the distribution parameters, the action and
        its log-probability (with ``return_log_prob``) -- computed from the input tensors
        with the same calls (parameter network, distribution, draw or deterministic value
        as the exploration type says, cast to the spec), without building TensorDicts.

        ``None`` unless the actor is a plain parameter ``TensorDictModule`` followed by its
        sampler, with one sampled key, a ``torch.distributions`` class, no hooks, no
        ``num_samples`` and no generator. ``fn`` returns ``NotImplemented`` (use
        :meth:`forward`) while ``tensordict.nn.skip_existing()`` is set.
        """
        from rlkernel.collectors.policy import tensor_call_parts

        modules = list(self.module)
        if len(modules) != 2 or self._forward_hooks or self._forward_pre_hooks:
            return None
        # forward() would write other keys than the fast path: a selection of out-keys, not
        # in place, partial or composite outputs, or an action the parameter net writes itself
        if (
            td_compat.selects_out_keys(self) is not False or self.inplace not in (None, True)
            or getattr(self, "partial_tolerant", False) or getattr(self, "return_composite", False)
            or td_compat.requires_sample(self) is not True
        ):
            return None
        params, sampler = modules
        parts = tensor_call_parts(params)
        if parts is None or type(sampler) is not ProbabilisticTensorDictModule:
            return None
        if sampler._forward_hooks or sampler._forward_pre_hooks or sampler.num_samples is not None:
            return None
        if td_compat.has_generator(sampler) is not False:
            return None
        cls = sampler.distribution_class
        if not (isinstance(cls, type) and issubclass(cls, D.Distribution)) or issubclass(cls, CompositeDistribution):
            return None
        sample_keys = list(sampler.dist_sample_keys)
        net, in_paths, param_keys, _ = parts
        param_paths = [_path(key) for key in param_keys]
        try:
            positions = [param_paths.index(_path(key)) for key in sampler.in_keys]
        except ValueError:
            return None
        if len(sample_keys) != 1 or "_" in param_keys or _path(sample_keys[0]) in param_paths:
            return None
        names = [key[-1] if isinstance(key, tuple) else key for key in sampler.dist_keys]
        kwargs = dict(sampler.distribution_kwargs or {})
        with_log_prob, default_type = sampler.return_log_prob, sampler.default_interaction_type
        sample_key, spec, safe = sample_keys[0], self.spec, self.safe
        n_params = len(param_keys)

        def fn(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...] | Any:
            if skip_existing():
                return NotImplemented
            out = net(*inputs)
            outs = (out,) if isinstance(out, torch.Tensor) else out if type(out) is tuple else None
            if outs is None or len(outs) != n_params:
                return NotImplemented  # a mapping, or a wrong count: forward() handles or explains it
            dist = cls(**{name: outs[i] for name, i in zip(names, positions)}, **kwargs)
            kind = interaction_type() or default_type
            random_lp = with_log_prob and kind is InteractionType.RANDOM
            joint = td_compat.joint_sample_and_log_prob(dist) if random_lp else None
            if joint is not None:
                sample, log_prob = joint(torch.Size(()))
            else:
                sample = td_compat.dist_sample(sampler, dist, kind)
                log_prob = dist.log_prob(sample) if with_log_prob else None
            if spec is not None:
                if sample.dtype != spec.dtype:
                    sample = sample.to(spec.dtype)
                if safe:
                    sample = spec.project(sample)
            return (*outs, sample, log_prob) if with_log_prob else (*outs, sample)

        out_keys = [*param_keys, sample_key, *([sampler.log_prob_key] if with_log_prob else [])]
        return fn, in_paths, out_keys

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
