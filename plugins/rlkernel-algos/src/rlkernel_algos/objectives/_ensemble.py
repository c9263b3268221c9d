"""Critic ensembles (twin Q-networks), reparameterised sampling and action bounds.

An ensemble is an ``nn.ModuleList`` of ``num`` critics: the given one and copies whose
parameters are re-initialised (``reset_parameters`` of each sub-module), so that the
critics disagree from the start as in SAC and TD3. Its members run one after the other:
on CPU and for the usual sizes (two 256x256 critics) this is as fast as stacking the
parameters and running them with ``torch.func.vmap`` or batched matmuls (measured in
``benchmarks/bench_updates.py``), and it keeps any module type working.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from rlkernel.errors import SpecError
from rlkernel_algos.objectives._runner import NO_BATCH, ModuleRunner

__all__ = ["action_bounds", "action_size", "actor_action_spec", "make_ensemble", "rsample_and_log_prob", "run_ensemble"]


def _reset(module: nn.Module) -> None:
    for sub in module.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()


def make_ensemble(network: nn.Module | Sequence[nn.Module], num: int, owner: str) -> nn.ModuleList:
    """``num`` critics: ``network`` and re-initialised copies, or the given list of ``num`` modules."""
    if isinstance(network, (list, tuple, nn.ModuleList)):
        members = list(network)
        if len(members) != num:
            raise SpecError(f"{owner}: got {len(members)} critics but num_qvalue_nets={num}")
        return nn.ModuleList(members)
    if num < 1:
        raise SpecError(f"{owner}: num_qvalue_nets must be >= 1, got {num}")
    members = [network]
    for _ in range(num - 1):
        clone = copy.deepcopy(network)
        _reset(clone)
        members.append(clone)
    return nn.ModuleList(members)


def run_ensemble(
    runners: Sequence[ModuleRunner],
    key,
    source,
    *,
    nxt: bool = False,
    overrides: Mapping | None = None,
    batch_shape: torch.Size = NO_BATCH,
) -> torch.Tensor:
    """Each member's output at ``key``, stacked: ``[num, *B, ...]``."""
    outs = []
    for runner in runners:
        value = runner.outputs(source, nxt=nxt, overrides=overrides, batch_shape=batch_shape, stop_at=key).get(key)
        if value is None:
            raise SpecError(f"{runner.name} writes {runner.out_keys}, not {key!r}; rename the loss's key with set_keys")
        outs.append(value)
    return torch.stack(outs)


def rsample_and_log_prob(dist: torch.distributions.Distribution) -> tuple[torch.Tensor, torch.Tensor]:
    """A reparameterised sample and its log-probability, scored on the draw itself.

    Uses the distribution's ``rsample_and_log_prob`` when it has one (a TanhNormal then
    scores the pre-tanh draw instead of inverting a saturated tanh).
    """
    joint = getattr(dist, "rsample_and_log_prob", None)
    if callable(joint):
        return joint(torch.Size())
    sample = dist.rsample()
    return sample, dist.log_prob(sample)


def action_bounds(action_spec: object, owner: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(low, high)`` from a bounded spec (``low``/``high`` attributes) or a pair; ``None`` if unbounded."""
    if action_spec is None:
        return None
    if isinstance(action_spec, (tuple, list)) and len(action_spec) == 2:
        low, high = action_spec
    else:
        low, high = getattr(action_spec, "low", None), getattr(action_spec, "high", None)
        if low is None or high is None:
            if type(action_spec).__name__ in ("Unbounded", "UnboundedContinuous"):
                return None
            raise SpecError(
                f"{owner}: action_spec must be bounded (low/high) or a (low, high) pair, got {action_spec!r}"
            )
    low, high = torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32)
    if low.ndim > 1:  # a spec with batch dims (one row per environment): the rows must agree
        low, high = low.reshape(-1, low.shape[-1]), high.reshape(-1, high.shape[-1])
        if not (bool((low == low[0]).all()) and bool((high == high[0]).all())):
            raise SpecError(f"{owner}: the action bounds differ across the spec's batch dims; give one (low, high)")
        low, high = low[0], high[0]
    if bool((low > high).any()):
        raise SpecError(f"{owner}: action bounds have low > high ({low.tolist()} > {high.tolist()})")
    return low, high


def actor_action_spec(actor: object, key: object = "action") -> object:
    """The action spec an actor carries (``actor.spec``, or its ``key`` entry), or ``None``."""
    spec = getattr(actor, "spec", None)
    if spec is None or hasattr(spec, "low") or type(spec).__name__ in ("Unbounded", "UnboundedContinuous"):
        return spec
    try:
        return spec[key]
    except (KeyError, TypeError, IndexError, LookupError):
        return None


def action_size(action_spec: object) -> int | None:
    """The number of action components of a spec (its last dim), or ``None``."""
    shape = getattr(action_spec, "shape", None)
    if shape is None:
        return None
    return int(shape[-1]) if len(shape) else 1
