"""Call a ``tensordict.nn`` module as a function of tensors: the one path of collectors and losses.

A ``tensordict.nn`` module reads its ``in_keys`` from a TensorDict and writes its
``out_keys``. On a hot loop (a collector's step, a loss's update) building and reading
TensorDicts costs more than the network: :class:`TensorCall` takes the module apart
once into :class:`Step` objects and then computes, from the input tensors, the same
values the module writes::

    >>> from tensordict.nn import TensorDictModule
    >>> call = TensorCall(TensorDictModule(torch.nn.Linear(3, 1), ["obs"], ["value"]))
    >>> call.in_keys, call.out_keys
    (['obs'], ['value'])
    >>> call(torch.zeros(5, 3))[0].shape
    torch.Size([5, 1])

How a module is taken apart is declared, never guessed:

* tensordict's own classes are taken apart by their structure:
  ``TensorDictModule`` becomes a call of its inner module (:class:`ModuleStep`),
  ``TensorDictSequential`` and ``ProbabilisticTensorDictSequential`` the steps of their
  modules in order, ``ProbabilisticTensorDictModule`` a :class:`DistStep` (build the
  distribution, then draw or take its deterministic value as the exploration type in
  force says, see :mod:`rlkernel.exploration`, with the log-probability when the module
  returns it);
* any class may declare its own steps with a method ``tensor_call_steps(self) ->
  list[Step] | None`` (rlkernel-algos' actors do: their parent's steps, then a cast to
  the action spec), usually built with :func:`steps_as`;
* a declaration holds for the class that makes it and for its subclasses that keep its
  ``forward``: a subclass that defines its own ``forward`` (or an instance with forward
  hooks) is never silently taken apart, it becomes a :class:`TensorDictStep`, which
  calls the module on a TensorDict holding its inputs (the plain TensorDict call: correct
  for anything, only slower). Configurations that change what the module writes
  (``select_out_keys``, ``partial_tolerant``, ``num_samples``, a generator, a composite
  distribution, ...) are handled the same way.

The module's parameters are used as they are: gradients, optimisers and in-place weight
updates behave exactly as with the TensorDict call. A caller that honours tensordict's
``skip_existing`` (which depends on what a TensorDict already holds) calls the module
instead while it is set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import (
    CompositeDistribution,
    InteractionType,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    TensorDictModuleBase,
    TensorDictSequential,
)
from tensordict.utils import NestedKey, unravel_key
from torch import distributions as D
from torch import nn

from rlkernel._compat import tensordict as td_compat
from rlkernel.errors import RLKernelError

__all__ = [
    "NO_BATCH",
    "DistStep",
    "MapStep",
    "ModuleStep",
    "Step",
    "TensorCall",
    "TensorCallError",
    "TensorDictStep",
    "module_steps",
    "steps_as",
]

#: The batch size given to a :class:`TensorDictStep` when the caller gives none.
NO_BATCH = torch.Size(())


class TensorCallError(RLKernelError, RuntimeError):
    """A module's output does not match its declared ``out_keys``."""


def _name(module: Any) -> str:
    return type(module).__name__


class Step:
    """One unit of work: reads ``in_keys``, returns the values of ``out_keys`` (a tuple, in order).

    ``out_keys`` may hold tensordict's ``"_"`` placeholder: a value computed and not written.
    """

    __slots__ = ("in_keys", "out_keys")

    #: Whether :meth:`dist` can be called: the step ends in a distribution.
    makes_dist = False

    def __init__(self, in_keys: Sequence[NestedKey], out_keys: Sequence[NestedKey]) -> None:
        self.in_keys: list[NestedKey] = [unravel_key(k) for k in in_keys]
        self.out_keys: list[NestedKey] = [unravel_key(k) for k in out_keys]

    def run(self, inputs: Sequence[Any], batch_size: torch.Size = NO_BATCH) -> tuple[Any, ...]:
        """The values of :attr:`out_keys` computed from the values of :attr:`in_keys`."""
        raise NotImplementedError

    def dist(self, inputs: Sequence[Any], batch_size: torch.Size = NO_BATCH) -> D.Distribution:
        """The distribution this step draws from (only when :attr:`makes_dist`)."""
        raise TensorCallError(f"{type(self).__name__} does not build a distribution")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(in_keys={self.in_keys}, out_keys={self.out_keys})"


class ModuleStep(Step):
    """A ``TensorDictModule``: its inner module (or ``method``) called on the input tensors."""

    __slots__ = ("call", "kwarg_names", "method_kwargs", "owner")

    def __init__(self, module: TensorDictModule, kwarg_names: list[str] | None) -> None:
        super().__init__(module.in_keys, module.out_keys_source)
        inner = module.module
        self.call: Callable[..., Any] = inner if module.method is None else getattr(inner, module.method)
        self.kwarg_names = kwarg_names
        self.method_kwargs = dict(module.method_kwargs or {})
        self.owner = _name(module)

    def run(self, inputs: Sequence[Any], batch_size: torch.Size = NO_BATCH) -> tuple[Any, ...]:
        """Call the inner module; its output as a tuple in ``out_keys`` order (as the module reads it)."""
        if self.kwarg_names is not None:
            out = self.call(**dict(zip(self.kwarg_names, inputs)), **self.method_kwargs)
        elif self.method_kwargs:
            out = self.call(*inputs, **self.method_kwargs)
        else:
            out = self.call(*inputs)
        if type(out) is torch.Tensor:
            out = (out,)
        elif type(out) is not tuple:
            if out is None:
                out = ()
            elif isinstance(out, (Mapping, TensorDictBase)) and all(k in out for k in self.out_keys):
                out = tuple(out[k] for k in self.out_keys)
            else:
                out = tuple(out) if isinstance(out, list) else (out,)
        if len(out) != len(self.out_keys):
            raise TensorCallError(
                f"{self.owner}: the module returned {len(out)} value(s) for the {len(self.out_keys)} "
                f"out_keys {self.out_keys}"
            )
        return out


class DistStep(Step):
    """A ``ProbabilisticTensorDictModule``: builds its distribution from the parameters and
    returns the value it writes (a draw or a deterministic value, as the interaction type
    in force says) and, with ``return_log_prob``, the log-probability of that value."""

    __slots__ = ("dist_class", "dist_kwargs", "dist_names", "module", "with_log_prob")

    makes_dist = True

    def __init__(self, module: ProbabilisticTensorDictModule) -> None:
        with_log_prob = bool(module.return_log_prob)
        out = list(module.dist_sample_keys) + ([module.log_prob_key] if with_log_prob else [])
        super().__init__(module.in_keys, out)
        self.module = module
        self.with_log_prob = with_log_prob
        self.dist_class = module.distribution_class
        self.dist_kwargs = dict(module.distribution_kwargs or {})
        self.dist_names = [k[-1] if isinstance(k, tuple) else k for k in module.dist_keys]

    def dist(self, inputs: Sequence[Any], batch_size: torch.Size = NO_BATCH) -> D.Distribution:
        """``distribution_class(**parameters, **distribution_kwargs)``, as ``get_dist`` builds it."""
        return self.dist_class(**dict(zip(self.dist_names, inputs)), **self.dist_kwargs)

    def run(self, inputs: Sequence[Any], batch_size: torch.Size = NO_BATCH) -> tuple[Any, ...]:
        """The sampled value (and its log-probability), as the module's forward writes them."""
        dist = self.dist(inputs)
        kind = td_compat.interaction_type()
        module = self.module
        if self.with_log_prob:
            joint = None
            if (kind or module.default_interaction_type) is InteractionType.RANDOM:
                joint = td_compat.joint_sample_and_log_prob(dist)
            if joint is not None:
                return joint(torch.Size(()))
            sample = td_compat.dist_sample(module, dist, kind)
            return sample, dist.log_prob(sample)
        return (td_compat.dist_sample(module, dist, kind),)


class MapStep(Step):
    """A tensor function declared by a module class (e.g. a cast to the action spec):
    ``fn(*inputs)`` returns one value per out-key (a tensor when there is one)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any], in_keys: Sequence[NestedKey], out_keys: Sequence[NestedKey]) -> None:
        super().__init__(in_keys, out_keys)
        self.fn = fn

    def run(self, inputs: Sequence[Any], batch_size: torch.Size = NO_BATCH) -> tuple[Any, ...]:
        """``fn(*inputs)`` as a tuple."""
        out = self.fn(*inputs)
        return (out,) if len(self.out_keys) == 1 else tuple(out)


class TensorDictStep(Step):
    """A module that is not taken apart: called on a TensorDict holding just its inputs."""

    __slots__ = ("module",)

    def __init__(self, module: TensorDictModuleBase) -> None:
        super().__init__(module.in_keys, module.out_keys)
        self.module = module

    @property
    def makes_dist(self) -> bool:  # type: ignore[override]
        """Whether the module has ``get_dist``."""
        return hasattr(self.module, "get_dist")

    def _td(self, inputs: Sequence[Any], batch_size: torch.Size) -> TensorDict:
        return TensorDict(
            {k: v for k, v in zip(self.in_keys, inputs) if v is not None}, batch_size=batch_size
        )

    def run(self, inputs: Sequence[Any], batch_size: torch.Size = NO_BATCH) -> tuple[Any, ...]:
        """Call the module on a TensorDict of ``batch_size``; read its out-keys (``None`` where absent)."""
        out = self.module(self._td(inputs, batch_size))
        return tuple(out.get(k, None) for k in self.out_keys)

    def dist(self, inputs: Sequence[Any], batch_size: torch.Size = NO_BATCH) -> D.Distribution:
        """``module.get_dist`` on a TensorDict of the inputs."""
        return self.module.get_dist(self._td(inputs, batch_size))


# ---------------------------------------------------------------------- decomposition
def _submodules(module: TensorDictSequential) -> list[TensorDictModuleBase]:
    inner = module.module
    return list(inner.values()) if isinstance(inner, nn.ModuleDict) else list(inner)


def _module_steps(module: TensorDictModule) -> list[Step] | None:
    signature = td_compat.call_signature(module)
    if signature is None or signature[1] or isinstance(module.module, TensorDictModuleBase):
        return None  # reads inputs with get-kwargs, or wraps a tensordict module: the TensorDict call
    return [ModuleStep(module, signature[0])]


def _sequence_steps(module: TensorDictSequential) -> list[Step] | None:
    if td_compat.selects_out_keys(module) is not False or module.partial_tolerant:
        return None
    if isinstance(module, ProbabilisticTensorDictSequential) and (
        module.return_composite or td_compat.requires_sample(module) is not True
    ):
        return None
    return [step for sub in _submodules(module) for step in module_steps(sub)]


def _dist_steps(module: ProbabilisticTensorDictModule) -> list[Step] | None:
    cls = module.distribution_class
    if not (isinstance(cls, type) and issubclass(cls, D.Distribution)) or issubclass(cls, CompositeDistribution):
        return None
    if module.num_samples is not None or td_compat.has_generator(module) is not False:
        return None
    keys = list(module.dist_sample_keys)
    if len(keys) != 1 or keys[0] == "_" or "distribution_map" in (module.distribution_kwargs or {}):
        return None
    return [DistStep(module)]


#: How tensordict's own classes are taken apart (see the module docstring).
_STRUCTURE: dict[type, Callable[[Any], list[Step] | None]] = {
    TensorDictModule: _module_steps,
    TensorDictSequential: _sequence_steps,
    ProbabilisticTensorDictSequential: _sequence_steps,
    ProbabilisticTensorDictModule: _dist_steps,
}

#: The method a class defines to declare its own steps.
DECLARATION = "tensor_call_steps"


def _declaring_class(cls: type) -> type | None:
    """The nearest class of ``cls``'s MRO that declares steps, if no class before it in the
    MRO defines ``forward`` (a subclass changing ``forward`` drops the declaration)."""
    for klass in cls.__mro__:
        if klass in _STRUCTURE or DECLARATION in vars(klass):
            return klass
        if "forward" in vars(klass):
            return None
    return None


def _has_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def steps_as(module: TensorDictModuleBase, cls: type) -> list[Step] | None:
    """The steps of ``module`` as an instance of ``cls`` (one of its base classes) takes it
    apart: what a subclass's ``tensor_call_steps`` builds on. ``None`` when ``cls`` cannot
    take this instance apart (the subclass then returns ``None`` too)."""
    if not isinstance(module, cls):
        raise TypeError(f"steps_as: {_name(module)} is not a {cls.__name__}")
    structural = _STRUCTURE.get(cls)
    if structural is not None:
        return structural(module)
    declared = vars(cls).get(DECLARATION)
    if declared is None:
        raise TypeError(f"steps_as: {cls.__name__} declares no steps")
    return declared(module)


def module_steps(module: TensorDictModuleBase) -> list[Step]:
    """The steps that compute what ``module`` writes: declared ones, or one :class:`TensorDictStep`."""
    if not isinstance(module, TensorDictModuleBase):
        raise TensorCallError(
            f"expected a tensordict.nn module (TensorDictModule, ProbabilisticActor, ...) that declares "
            f"in_keys and out_keys, got {_name(module)}"
        )
    owner = _declaring_class(type(module))
    steps = None if owner is None or _has_hooks(module) else steps_as(module, owner)
    return [TensorDictStep(module)] if steps is None else steps


class TensorCall:
    """``module`` as a function of tensors: ``call(*tensors at in_keys) -> values of out_keys``.

    Args:
        module: a ``tensordict.nn`` module (see the module docstring for how it is taken apart).

    Attributes:
        steps: the :class:`Step` objects, in order.
        in_keys: the keys read from the input, in the order of the call's arguments (keys
            computed by an earlier step are not inputs).
        out_keys: every key the module writes, each once, in the order of the returned tuple.
        exact: whether no step is a :class:`TensorDictStep` (the whole module was taken apart).
    """

    def __init__(self, module: TensorDictModuleBase) -> None:
        self.module = module
        self.steps: list[Step] = module_steps(module)
        self.exact = not any(isinstance(step, TensorDictStep) for step in self.steps)
        external: list[NestedKey] = []
        written: set[NestedKey] = set()
        for step in self.steps:
            external += [k for k in step.in_keys if k not in written and k not in external]
            written.update(step.out_keys)
        slot = {key: i for i, key in enumerate(external)}  # where the current value of each key is
        size = len(external)
        plan = []
        for step in self.steps:
            reads = [slot[k] for k in step.in_keys]
            writes = []
            for key in step.out_keys:
                slot[key] = size
                writes.append(size)
                size += 1
            plan.append((step, reads, writes))
        self.in_keys: list[NestedKey] = external
        self.out_keys: list[NestedKey] = list(dict.fromkeys(k for s in self.steps for k in s.out_keys if k != "_"))
        self._plan = plan
        self._blank = [None] * (size - len(external))
        self._out_slots = [slot[k] for k in self.out_keys]
        only = self.steps[0] if len(self.steps) == 1 else None
        # one step writing each key once (the usual TensorDictModule): its output is the answer
        single = only is not None and only.out_keys == self.out_keys
        #: ``run(inputs, batch_size=NO_BATCH)``: :meth:`__call__` with the inputs as one sequence
        #: (the hot loops' entry: one call less for a single step).
        self.run: Callable[..., tuple[Any, ...]] = only.run if single else self._run_plan

    def _run_plan(self, inputs: Sequence[Any], batch_size: torch.Size = NO_BATCH) -> tuple[Any, ...]:
        values = [*inputs, *self._blank]
        for step, reads, writes in self._plan:
            out = step.run([values[i] for i in reads], batch_size)
            for i, value in zip(writes, out):
                values[i] = value
        return tuple([values[i] for i in self._out_slots])

    def __call__(self, *inputs: Any, batch_size: torch.Size = NO_BATCH) -> tuple[Any, ...]:
        """The values of :attr:`out_keys` from the tensors at :attr:`in_keys`.

        ``batch_size`` is the batch size of the TensorDict a :class:`TensorDictStep` gets.
        """
        return self.run(inputs, batch_size)

    def __repr__(self) -> str:
        return f"TensorCall({_name(self.module)}, in_keys={self.in_keys}, out_keys={self.out_keys}, exact={self.exact})"
