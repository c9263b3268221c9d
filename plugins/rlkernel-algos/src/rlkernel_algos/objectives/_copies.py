"""Copies of a network that are not trained: target networks and detached views.

* :func:`target_copy` deep-copies a network and turns each of its parameters into a
  *buffer* holding its own copy of the values. A target network is thereby part of the
  loss (``.to(device)`` moves it, ``state_dict`` saves it) but never part of
  ``loss.parameters()``, so an optimizer built from ``loss.parameters()`` cannot touch it,
  and no gradient can reach it.
* :func:`detached_view` does the same but with buffers that *share storage* with the
  online parameters (``p.detach()``): the network computes with the current weights,
  letting gradients flow to its inputs but never to its weights. An actor loss uses it to
  differentiate through a critic without moving the critic.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["detached_view", "target_copy", "views_current"]


def _all_params(module: nn.Module) -> list[torch.Tensor]:
    """Every parameter, once per place it appears (tied parameters repeat)."""
    return [p for _, p in module.named_parameters(remove_duplicate=False)]


def _params_to_buffers(module: nn.Module, make: dict[int, torch.Tensor], persistent: bool) -> None:
    """Replace every parameter of ``module`` (a copy) by the buffer ``make[id(original)]``."""
    for sub in module.modules():
        for name in list(sub._parameters):
            param = sub._parameters.pop(name)
            if param is None:
                sub.register_parameter(name, None)
                continue
            sub.register_buffer(name, make[id(param)], persistent=persistent)


def target_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose parameters are buffers with their own storage.

    Tied parameters stay tied. The copy has ``requires_grad=False`` everywhere.
    """
    memo: dict[int, object] = {}
    clone = copy.deepcopy(module, memo)
    # deepcopy maps each original parameter to its copy: reuse it as the buffer's value
    make = {id(p): memo[id(p)].detach() for p in _all_params(module)}
    copied = {id(memo[id(p)]): make[id(p)] for p in _all_params(module)}
    _params_to_buffers(clone, copied, persistent=True)
    return clone


def detached_view(module: nn.Module) -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    """A structural copy of ``module`` computing with ``p.detach()`` of its live parameters.

    The view shares storage with ``module``: an optimizer step on ``module`` is seen at
    once. Buffers (normalisation statistics, ...) are the module's own tensors, shared too.
    It must be rebuilt if ``module``'s parameters are replaced (``.to(device)``);
    :func:`views_current` tells, given the returned ``(parameter, view)`` pairs.
    """
    originals = _all_params(module)
    memo: dict[int, object] = {id(p): p for p in originals}  # do not copy parameter storage
    memo.update({id(b): b for b in module.buffers()})  # nor buffers
    clone = copy.deepcopy(module, memo)
    views = {id(p): p.detach() for p in originals}
    _params_to_buffers(clone, views, persistent=False)
    return clone, [(p, views[id(p)]) for p in module.parameters()]


def views_current(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """Whether each detached view still shares storage with its parameter."""
    for param, view in pairs:
        if param.data_ptr() != view.data_ptr():
            return False
    return True
