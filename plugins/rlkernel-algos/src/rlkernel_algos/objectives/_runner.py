"""Run a ``tensordict.nn`` module on tensors fetched by key: the losses' hot path.

A loss calls its networks several times per update (the actor on the observation and on
the next observation, each critic on two batches, ...). Going through ``TensorDict``
each time costs a few tens of microseconds per call in key lookups, copies and checks;
over a small update (a PPO minibatch of 64 samples takes about a millisecond) that is
the whole difference between a hand-written loop and a library loss.

The module is taken apart by the core's :mod:`rlkernel.tensor_call` (the same steps the
collectors run); :class:`ModuleRunner` adds what a loss needs on top: inputs read from a
batch, under ``"next"`` or replaced by freshly computed values, stopping once a key is
computed, and the distribution of a probabilistic module.

The parameters are the module's own: gradients, optimizers and in-place updates behave
exactly as if the module were called on a TensorDict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey

from rlkernel.tensor_call import NO_BATCH, Step, TensorCall
from rlkernel_algos.objectives._keys import LossKeyError, next_key

__all__ = ["NO_BATCH", "ModuleRunner"]

# A getter of input tensors: ``get(key, default)``, as TensorDict.get and dict.get are.
Source = Any


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
        call = TensorCall(module)
        self.steps: list[Step] = call.steps
        # the distribution is built by the last step able to: a DistStep, or a module with get_dist
        self._dist_index = max((i for i, step in enumerate(self.steps) if step.makes_dist), default=-1)
        self.probabilistic = self._dist_index >= 0
        written: set = set()
        self._internal: list[list[bool]] = []  # per step: is each in-key written by an earlier step
        for step in self.steps:
            self._internal.append([k in written for k in step.in_keys])
            written.update(step.out_keys)
        self._last_writer = {key: i for i, step in enumerate(self.steps) for key in step.out_keys}
        self.in_keys: list[NestedKey] = call.in_keys
        self.out_keys: list[NestedKey] = call.out_keys
        external = self.in_keys
        self._next_keys = {k: next_key(k) for k in external}

    def _inputs(
        self, index: int, values: dict, source: Source, nxt: bool, overrides: Mapping | None
    ) -> list[torch.Tensor]:
        inputs = []
        for key, inside in zip(self.steps[index].in_keys, self._internal[index]):
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
            stop_at: stop once this key has its final value (skips e.g. a greedy head; a key
                rewritten by a later step, such as an action cast to the spec, waits for it).
        """
        values: dict = {}
        for index, step in enumerate(self.steps):
            out = step.run(self._inputs(index, values, source, nxt, overrides), batch_shape)
            for key, value in zip(step.out_keys, out):
                values[key] = value
            if stop_at is not None and index == self._last_writer.get(stop_at, -1):
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
        for index in range(self._dist_index):
            step = steps[index]
            out = step.run(self._inputs(index, values, source, nxt, overrides), batch_shape)
            for key, value in zip(step.out_keys, out):
                values[key] = value
        inputs = self._inputs(self._dist_index, values, source, nxt, overrides)
        return steps[self._dist_index].dist(inputs, batch_shape)

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
        return last.dist([p.detach() for p in params], batch_shape)

    def dist_param_keys(self) -> list[NestedKey]:
        """The keys of the distribution's parameters (``loc``, ``scale``, ``logits``, ...)."""
        return list(self.steps[self._dist_index].in_keys) if self.probabilistic else []
