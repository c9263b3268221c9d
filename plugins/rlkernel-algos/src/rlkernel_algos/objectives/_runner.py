"""Run a ``tensordict.nn`` module on plain tensors: the losses' hot path.

A loss calls its networks several times per update (the actor on the observation and on
the next observation, each critic on two batches, ...). Going through ``TensorDict``
each time costs a few tens of microseconds per call in key lookups, copies and checks;
over a small update (a PPO minibatch of 64 samples takes about a millisecond) that is
the whole difference between a hand-written loop and a library loss.

:class:`ModuleRunner` takes a module apart once, at construction, into the steps that
compute it:

* a :class:`~tensordict.nn.TensorDictModule` (not overriding ``forward``) becomes a call
  of its inner ``nn.Module`` on the tensors at its ``in_keys``;
* a :class:`~tensordict.nn.TensorDictSequential` (and its probabilistic subclass) becomes
  its modules' steps, in order;
* a :class:`~tensordict.nn.ProbabilisticTensorDictModule` becomes "build the distribution
  from the parameters at its ``in_keys``" (and, in the middle of a chain, "sample from it
  as the exploration type says");
* any other :class:`~tensordict.nn.TensorDictModuleBase` is called on a small TensorDict
  holding just its inputs (correct for anything, only slower).

The parameters are the module's own: gradients, optimizers and in-place updates behave
exactly as if the module were called on a TensorDict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from tensordict import TensorDict
from tensordict.nn import (
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    TensorDictModuleBase,
    TensorDictSequential,
)
from tensordict.nn import interaction_type as _interaction_type
from tensordict.utils import NestedKey, unravel_key

from rlkernel._compat import tensordict as td_compat
from rlkernel_algos.objectives._keys import LossKeyError, next_key

__all__ = ["NO_BATCH", "ModuleRunner"]

NO_BATCH = torch.Size(())

# A getter of input tensors: ``get(key, default)``, as TensorDict.get and dict.get are.
Source = Any


def _is_plain(module: torch.nn.Module, cls: type) -> bool:
    """Whether ``module`` is a ``cls`` whose ``forward`` is ``cls.forward`` (not overridden)."""
    return isinstance(module, cls) and type(module).forward is cls.forward


class _Step:
    """One unit of work: reads ``in_keys``, writes ``out_keys`` into the run's values."""

    __slots__ = ("in_keys", "internal", "out_keys")

    def __init__(self, in_keys: list[NestedKey], out_keys: list[NestedKey]) -> None:
        self.in_keys = in_keys
        self.out_keys = out_keys
        self.internal: list[bool] = []  # filled by the runner: is the key written by an earlier step


class _CallStep(_Step):
    """A TensorDictModule: its inner module called on tensors."""

    __slots__ = ("call", "kwarg_names", "method_kwargs")

    def __init__(self, module: TensorDictModule) -> None:
        super().__init__([unravel_key(k) for k in module.in_keys], list(module.out_keys_source))
        inner = module.module
        self.call: Callable[..., Any] = inner if module.method is None else getattr(inner, module.method)
        signature = td_compat.call_signature(module)
        self.kwarg_names = signature[0] if signature is not None else None
        self.method_kwargs = dict(module.method_kwargs)

    def run(self, inputs: list[torch.Tensor], values: dict, batch_shape: torch.Size) -> None:
        if self.kwarg_names is None:
            out = self.call(*inputs, **self.method_kwargs) if self.method_kwargs else self.call(*inputs)
        else:
            out = self.call(**dict(zip(self.kwarg_names, inputs)), **self.method_kwargs)
        if type(out) is torch.Tensor:
            values[self.out_keys[0]] = out
            return
        if isinstance(out, Mapping):
            out = tuple(out[k] for k in self.out_keys)
        for key, value in zip(self.out_keys, out):
            values[key] = value


class _DistStep(_Step):
    """A ProbabilisticTensorDictModule: builds its distribution; samples when mid-chain."""

    __slots__ = ("dist_class", "dist_kwargs", "dist_names", "module")

    def __init__(self, module: ProbabilisticTensorDictModule) -> None:
        super().__init__([unravel_key(k) for k in module.in_keys], list(module.dist_sample_keys))
        self.module = module
        self.dist_class = module.distribution_class
        self.dist_kwargs = dict(module.distribution_kwargs)
        self.dist_names = [k[-1] if isinstance(k, tuple) else k for k in module.dist_keys]

    def dist(self, inputs: list[torch.Tensor]) -> torch.distributions.Distribution:
        return self.dist_class(**dict(zip(self.dist_names, inputs)), **self.dist_kwargs)

    def run(self, inputs: list[torch.Tensor], values: dict, batch_shape: torch.Size) -> None:
        sample = td_compat.dist_sample(self.module, self.dist(inputs), _interaction_type())
        if isinstance(sample, torch.Tensor):
            sample = (sample,)
        for key, value in zip(self.out_keys, sample):
            values[key] = value


class _GenericStep(_Step):
    """Any other TensorDictModuleBase: called on a TensorDict holding just its inputs."""

    __slots__ = ("module",)

    def __init__(self, module: TensorDictModuleBase) -> None:
        super().__init__([unravel_key(k) for k in module.in_keys], [unravel_key(k) for k in module.out_keys])
        self.module = module

    def _td(self, inputs: list[torch.Tensor], batch_shape: torch.Size) -> TensorDict:
        return TensorDict(dict(zip(self.in_keys, inputs)), batch_size=batch_shape)

    def dist(self, inputs: list[torch.Tensor], batch_shape: torch.Size) -> torch.distributions.Distribution:
        return self.module.get_dist(self._td(inputs, batch_shape))

    def run(self, inputs: list[torch.Tensor], values: dict, batch_shape: torch.Size) -> None:
        out = self.module(self._td(inputs, batch_shape))
        for key in self.out_keys:
            values[key] = out.get(key)


class _FitStep(_Step):
    """What rlkernel's ``Actor``/``ProbabilisticActor`` do after computing the action:
    cast it to the spec's dtype and, with ``safe``, project it into the spec."""

    __slots__ = ("safe", "spec")

    def __init__(self, key: NestedKey, spec: Any, safe: bool) -> None:
        super().__init__([key], [key])
        self.spec, self.safe = spec, safe

    def run(self, inputs: list[torch.Tensor], values: dict, batch_shape: torch.Size) -> None:
        value = inputs[0]
        if value.dtype != self.spec.dtype:
            value = value.to(self.spec.dtype)
        values[self.out_keys[0]] = self.spec.project(value) if self.safe else value


def _rlkernel_actors() -> tuple[type, ...]:
    """rlkernel_algos' ``Actor`` and ``ProbabilisticActor`` (whose ``forward`` adds a spec fit)."""
    try:
        from rlkernel_algos.modules.actors import Actor, ProbabilisticActor
    except ImportError:  # pragma: no cover - same distribution
        return ()
    return Actor, ProbabilisticActor


class ModuleRunner:
    """Runs a ``tensordict.nn`` module on tensors fetched by key, without building TensorDicts.

    Args:
        module: the network (a ``TensorDictModuleBase``).
        name: how error messages call it (e.g. ``"ClipPPOLoss.actor_network"``).

    Attributes:
        in_keys: the keys the module reads from its input (not the ones it computes).
        out_keys: every key the module writes.
        probabilistic: whether :meth:`dist` can be called (the module ends in a distribution).

    Example::

        >>> from tensordict.nn import TensorDictModule
        >>> runner = ModuleRunner(TensorDictModule(torch.nn.Linear(3, 1), ["obs"], ["v"]), "critic")
        >>> runner.outputs({"obs": torch.zeros(2, 3)})["v"].shape
        torch.Size([2, 1])
    """

    def __init__(self, module: TensorDictModuleBase, name: str) -> None:
        if not isinstance(module, TensorDictModuleBase):
            raise LossKeyError(
                f"{name}: expected a tensordict.nn module (TensorDictModule, ProbabilisticActor, ...) "
                f"that declares in_keys and out_keys, got {type(module).__name__}"
            )
        self.module = module
        self.name = name
        self.steps: list[_Step] = []
        self._flatten(module)
        # the distribution is built by the last step able to: a _DistStep, or a module with get_dist
        self._dist_index = -1
        for i, step in enumerate(self.steps):
            if isinstance(step, _DistStep) or (isinstance(step, _GenericStep) and hasattr(step.module, "get_dist")):
                self._dist_index = i
        self.probabilistic = self._dist_index >= 0
        written: set = set()
        external: list[NestedKey] = []
        for step in self.steps:
            step.internal = [k in written for k in step.in_keys]
            external += [k for k, inside in zip(step.in_keys, step.internal) if not inside and k not in external]
            written.update(step.out_keys)
        self.in_keys: list[NestedKey] = external
        self.out_keys: list[NestedKey] = [k for step in self.steps for k in step.out_keys]
        self._next_keys = {k: next_key(k) for k in external}

    def _flatten(self, module: TensorDictModuleBase) -> None:
        actors = _rlkernel_actors()
        if actors and (_is_plain(module, actors[0]) or _is_plain(module, actors[1])) and not getattr(
            module, "return_composite", False
        ):
            # the parent class's work, then the spec fit the subclass's forward adds
            if isinstance(module, actors[0]):
                self.steps.append(_CallStep(module))
                key = module.out_keys[0]
            else:
                for sub in module.module:
                    self._flatten(sub)
                key = module.module[-1].out_keys[0]
            if module.spec is not None:
                self.steps.append(_FitStep(unravel_key(key), module.spec, module.safe))
            return
        if isinstance(module, TensorDictSequential) and (
            _is_plain(module, TensorDictSequential) or _is_plain(module, ProbabilisticTensorDictSequential)
        ):
            if isinstance(module, ProbabilisticTensorDictSequential) and module.return_composite:
                self.steps.append(_GenericStep(module))
                return
            for sub in module.module:
                self._flatten(sub)
        elif _is_plain(module, TensorDictModule):
            self.steps.append(_CallStep(module))
        elif _is_plain(module, ProbabilisticTensorDictModule) and isinstance(module.distribution_class, type) and (
            "distribution_map" not in module.distribution_kwargs
        ):
            self.steps.append(_DistStep(module))
        else:
            self.steps.append(_GenericStep(module))

    def _inputs(
        self, step: _Step, values: dict, source: Source, nxt: bool, overrides: Mapping | None
    ) -> list[torch.Tensor]:
        inputs = []
        for key, inside in zip(step.in_keys, step.internal):
            if inside:
                inputs.append(values[key])
                continue
            value = overrides.get(key) if overrides is not None else None
            if value is None:
                value = source.get(self._next_keys[key] if nxt else key, None)
                if value is None:
                    where = self._next_keys[key] if nxt else key
                    raise LossKeyError(
                        f"{self.name} reads {where!r}, which the input does not hold; "
                        f"the network's in_keys are {self.in_keys} (read under 'next' for the next step)"
                    )
            inputs.append(value)
        return inputs

    def outputs(
        self,
        source: Source,
        *,
        nxt: bool = False,
        overrides: Mapping | None = None,
        batch_shape: torch.Size = NO_BATCH,
        stop_at: NestedKey | None = None,
    ) -> dict:
        """Run every step; return the dict of all computed values.

        Args:
            source: where inputs come from: anything with ``get(key, default)``.
            nxt: read the inputs under ``"next"`` (the next step's observation, ...).
            overrides: inputs to use instead of the source's (e.g. a freshly sampled action).
            batch_shape: the batch shape given to modules that need a TensorDict.
            stop_at: stop as soon as this key is computed (skips e.g. a greedy head).
        """
        values: dict = {}
        for step in self.steps:
            step.run(self._inputs(step, values, source, nxt, overrides), values, batch_shape)
            if stop_at is not None and stop_at in values:
                break
        return values

    def dist(
        self,
        source: Source,
        *,
        nxt: bool = False,
        overrides: Mapping | None = None,
        batch_shape: torch.Size = NO_BATCH,
    ) -> torch.distributions.Distribution:
        """Run the steps that compute the distribution's parameters and return the distribution."""
        if not self.probabilistic:
            raise LossKeyError(f"{self.name} does not end in a distribution (it has no get_dist)")
        values: dict = {}
        steps = self.steps
        for step in steps[: self._dist_index]:
            step.run(self._inputs(step, values, source, nxt, overrides), values, batch_shape)
        last = steps[self._dist_index]
        inputs = self._inputs(last, values, source, nxt, overrides)
        if isinstance(last, _DistStep):
            return last.dist(inputs)
        return last.dist(inputs, batch_shape)

    def dist_from_params(self, source: Source, *, batch_shape: torch.Size = NO_BATCH):
        """The distribution built from parameters stored in ``source`` (``None`` if absent).

        PPO-KL reads the old policy's ``loc``/``scale`` or ``logits``, written at collection.
        """
        if not self.probabilistic:
            return None
        last = self.steps[self._dist_index]
        params = [source.get(k, None) for k in last.in_keys]
        if any(p is None for p in params):
            return None
        params = [p.detach() for p in params]
        return last.dist(params) if isinstance(last, _DistStep) else last.dist(params, batch_shape)

    def dist_param_keys(self) -> list[NestedKey]:
        """The keys of the distribution's parameters (``loc``, ``scale``, ``logits``, ...)."""
        return list(self.steps[self._dist_index].in_keys) if self.probabilistic else []
