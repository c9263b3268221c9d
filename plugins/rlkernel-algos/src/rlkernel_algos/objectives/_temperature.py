"""The entropy temperature of SAC and discrete SAC: ``log_alpha`` and its loss.

``alpha = exp(log_alpha)`` weighs the entropy bonus. With automatic tuning (the default)
``log_alpha`` is a parameter trained by

    loss_alpha = -mean(log_alpha * (log pi(a|s) + target_entropy))

(the log-probability detached): when the policy's entropy ``-log pi`` is above the target,
the gradient lowers alpha, and raises it when below. With ``fixed_alpha=True``,
``log_alpha`` is a buffer and ``loss_alpha`` carries no gradient.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rlkernel.errors import SpecError

__all__ = ["TemperatureMixin"]


class TemperatureMixin:
    """Adds ``log_alpha``, ``target_entropy`` and the alpha terms to a :class:`LossModule`."""

    log_alpha: torch.Tensor
    target_entropy: torch.Tensor

    def _init_temperature(self, *, alpha_init: float, min_alpha: float | None, max_alpha: float | None,
                          fixed_alpha: bool, target_entropy: float | None) -> None:
        owner = type(self).__name__
        if not alpha_init > 0:
            raise SpecError(f"{owner}: alpha_init must be > 0, got {alpha_init}")
        for name, value in (("min_alpha", min_alpha), ("max_alpha", max_alpha)):
            if value is not None and not value > 0:
                raise SpecError(f"{owner}: {name} must be > 0, got {value}")
        if min_alpha is not None and max_alpha is not None and min_alpha > max_alpha:
            raise SpecError(f"{owner}: min_alpha {min_alpha} > max_alpha {max_alpha}")
        log_alpha = torch.tensor(math.log(alpha_init))
        self.fixed_alpha = bool(fixed_alpha)
        if self.fixed_alpha:
            self.register_buffer("log_alpha", log_alpha)
        else:
            self.log_alpha = nn.Parameter(log_alpha)
        self._log_alpha_min = None if min_alpha is None else math.log(min_alpha)
        self._log_alpha_max = None if max_alpha is None else math.log(max_alpha)
        # NaN until known: filled from the first sampled action when no spec gave it
        self.register_buffer("target_entropy", torch.tensor(float("nan") if target_entropy is None else target_entropy))
        self._target_entropy_pending = target_entropy is None

    def _alpha(self) -> torch.Tensor:
        """``exp(log_alpha)`` without gradient (``log_alpha`` clamped to the bounds first)."""
        if self._log_alpha_min is not None or self._log_alpha_max is not None:
            with torch.no_grad():
                self.log_alpha.clamp_(self._log_alpha_min, self._log_alpha_max)
        return self.log_alpha.detach().exp()

    def _fill_target_entropy(self, value: float) -> None:
        if self._target_entropy_pending:
            self.target_entropy.fill_(value)
            self._target_entropy_pending = False

    def _alpha_loss(self, log_prob: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        terms = -self.log_alpha * (log_prob.detach() + self.target_entropy)
        return terms.mean() if weights is None else (terms * weights).mean()

    @property
    def alpha(self) -> torch.Tensor:
        """The current temperature (no gradient)."""
        return self._alpha()
