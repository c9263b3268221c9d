"""Target-network updates: :class:`SoftUpdate` (Polyak averaging) and :class:`HardUpdate`.

Both work on every target network of a loss at once (``loss.target_pairs()``), with one
fused ``torch._foreach_*`` call over the whole parameter list instead of a Python loop
over tensors, and in place: the target buffers keep their identity, so the loss sees the
new values immediately.

Example::

    >>> loss = SACLoss(actor, qvalue, action_spec=spec)         # doctest: +SKIP
    >>> updater = SoftUpdate(loss, tau=0.005)                    # doctest: +SKIP
    >>> ...; optim.step(); updater.step()                        # doctest: +SKIP
"""

from __future__ import annotations

import torch

from rlkernel.errors import SpecError
from rlkernel_algos.objectives.common import LossModule

__all__ = ["HardUpdate", "SoftUpdate", "TargetNetUpdater"]


class TargetNetUpdater:
    """Base of the updaters: holds the aligned (online, target) tensor lists of a loss.

    Args:
        loss: a :class:`LossModule` with at least one target network (``delay_*=True``).
    """

    def __init__(self, loss: LossModule) -> None:
        if not isinstance(loss, LossModule):
            raise SpecError(f"{type(self).__name__}: expected a LossModule, got {type(loss).__name__}")
        if not loss._target_names:
            raise SpecError(
                f"{type(self).__name__}: {type(loss).__name__} has no target network "
                "(it was built with delay_value/delay_qvalue/delay_actor=False)"
            )
        self.loss = loss
        self._version = -1
        self._sources: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []

    def _lists(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        # the loss bumps _moved when it is moved (.to, .float, ...): buffers were replaced
        if self._version != self.loss._moved:
            self._sources, self._targets = self.loss.target_pairs()
            self._version = self.loss._moved
        return self._sources, self._targets

    @torch.no_grad()
    def init_(self) -> None:
        """Copy the online parameters into the targets (e.g. after loading new weights)."""
        sources, targets = self._lists()
        torch._foreach_copy_(targets, sources)

    def step(self) -> None:
        """Update the targets; call once per optimisation step."""
        raise NotImplementedError


class SoftUpdate(TargetNetUpdater):
    """Polyak averaging: ``target <- (1 - tau) * target + tau * online`` at every ``step()``.

    Args:
        loss: the loss whose targets move.
        tau: the weight of the online parameters (e.g. 0.005).
        eps: TorchRL's spelling, the weight of the *old* target: ``eps = 1 - tau``.
            Give exactly one of ``tau`` and ``eps``.
    """

    def __init__(self, loss: LossModule, *, eps: float | None = None, tau: float | None = None) -> None:
        super().__init__(loss)
        if (eps is None) == (tau is None):
            raise SpecError(f"SoftUpdate: give exactly one of tau and eps, got tau={tau}, eps={eps}")
        tau = 1.0 - float(eps) if tau is None else float(tau)
        if not 0.0 < tau <= 1.0:
            raise SpecError(f"SoftUpdate: tau must be in (0, 1] (eps in [0, 1)), got tau={tau}")
        self.tau = tau

    @property
    def eps(self) -> float:
        """``1 - tau``."""
        return 1.0 - self.tau

    @torch.no_grad()
    def step(self) -> None:
        """Move every target ``tau`` of the way towards its online parameter."""
        sources, targets = self._lists()
        torch._foreach_lerp_(targets, sources, self.tau)


class HardUpdate(TargetNetUpdater):
    """Copy the online parameters into the targets every ``value_network_update_interval`` steps.

    Args:
        loss: the loss whose targets move.
        value_network_update_interval: the number of ``step()`` calls between copies
            (the first copy happens at the ``interval``-th call).
    """

    def __init__(self, loss: LossModule, *, value_network_update_interval: int = 1000) -> None:
        super().__init__(loss)
        if int(value_network_update_interval) < 1:
            raise SpecError(
                f"HardUpdate: value_network_update_interval must be >= 1, got {value_network_update_interval}"
            )
        self.value_network_update_interval = int(value_network_update_interval)
        self.counter = 0

    def step(self) -> None:
        """Count a step; copy the parameters when the interval is reached."""
        self.counter += 1
        if self.counter >= self.value_network_update_interval:
            self.init_()
            self.counter = 0
