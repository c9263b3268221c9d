"""The trainer's hook points and the table that holds the functions registered at each.

A training iteration, and where each hook point runs (as in TorchRL's ``Trainer``)::

    batch = next(collector)
    batch = batch_process(batch)            # each fn(batch) -> batch (None: keep it)
    pre_steps_log(batch)                    # each fn(batch) -> dict of scalars to log, or None
    pre_optim_steps()                       # each fn()
    repeat optim_steps_per_batch times:
        sub = process_optim_batch(batch)    # each fn(batch) -> minibatch (e.g. a replay sample)
        losses = loss_module(sub)
        losses = post_loss(losses, sub)     # each fn(losses, minibatch) -> losses (None: keep them)
        backward, clip, optimizer.step()
        post_optim()                        # each fn() (target-network updates, ...)
    post_steps()                            # each fn() (collector weight sync, schedulers, ...)
    post_steps_log(batch)                   # each fn(batch) -> dict of scalars to log, or None

Every hook point calls its functions with the same arguments (:data:`HOOK_SIGNATURES`);
registering a function that cannot take them is a :class:`TrainerError` at once. A
prioritized replay buffer updates its priorities in ``post_loss``, from the minibatch.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from rlkernel.errors import RLKernelError

__all__ = ["HOOK_POINTS", "HOOK_SIGNATURES", "HookTable", "TrainerError"]

#: The arguments each hook point passes to its functions, in the order an iteration reaches them.
HOOK_SIGNATURES: dict[str, tuple[str, ...]] = {
    "batch_process": ("batch",),
    "pre_steps_log": ("batch",),
    "pre_optim_steps": (),
    "process_optim_batch": ("batch",),
    "post_loss": ("losses", "minibatch"),
    "post_optim": (),
    "post_steps": (),
    "post_steps_log": ("batch",),
}
#: Every hook point, in the order an iteration reaches them.
HOOK_POINTS: tuple[str, ...] = tuple(HOOK_SIGNATURES)


class TrainerError(RLKernelError, ValueError):
    """A trainer was given a bad argument, hook or checkpoint."""


def _check_signature(point: str, fn: Callable[..., Any]) -> None:
    """Refuse ``fn`` at ``point`` unless it can be called with that point's arguments."""
    arguments = HOOK_SIGNATURES[point]
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return
    try:
        signature.bind(*arguments)
    except TypeError as err:
        name = getattr(fn, "__name__", type(fn).__name__)
        raise TrainerError(
            f"the {point} hook {name!r} must take ({', '.join(arguments)}), but its signature is {signature}: {err}"
        ) from None


class HookTable:
    """The functions registered at each hook point, in registration order.

    >>> table = HookTable()
    >>> table.register("post_optim", lambda: None)
    >>> len(table["post_optim"])
    1
    """

    def __init__(self) -> None:
        self._ops: dict[str, list[Callable[..., Any]]] = {point: [] for point in HOOK_POINTS}

    def register(self, point: str, fn: Callable[..., Any]) -> None:
        """Append ``fn`` to the functions run at ``point`` (one of :data:`HOOK_POINTS`)."""
        if point not in self._ops:
            close = difflib.get_close_matches(str(point), HOOK_POINTS, n=3, cutoff=0.4)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise TrainerError(f"unknown hook point {point!r} (hook points: {', '.join(HOOK_POINTS)}){hint}")
        if not callable(fn):
            raise TrainerError(f"the hook registered at {point!r} must be callable, got {type(fn).__name__}")
        _check_signature(point, fn)
        self._ops[point].append(fn)

    def __getitem__(self, point: str) -> list[Callable[..., Any]]:
        return self._ops[point]

    def transform(self, point: str, value: Any) -> Any:
        """Pass ``value`` through every function at ``point``; a function returning None keeps it."""
        for fn in self._ops[point]:
            out = fn(value)
            if out is not None:
                value = out
        return value

    def post_loss(self, losses: Any, minibatch: Any) -> Any:
        """Run the ``post_loss`` functions: ``fn(losses, minibatch)``."""
        for fn in self._ops["post_loss"]:
            out = fn(losses, minibatch)
            if out is not None:
                losses = out
        return losses

    def call(self, point: str) -> None:
        """Call every function at ``point`` without arguments."""
        for fn in self._ops[point]:
            fn()

    def collect_logs(self, point: str, batch: Any) -> dict[str, float]:
        """Call the log hooks at ``point`` with ``batch``; merge the dicts they return."""
        found: dict[str, float] = {}
        for fn in self._ops[point]:
            out = fn(batch)
            if out is None:
                continue
            if not isinstance(out, dict):
                raise TrainerError(
                    f"the {point} hook {getattr(fn, '__name__', fn)!r} must return a dict of scalars or None, "
                    f"got {type(out).__name__}"
                )
            found.update(out)
        return found
