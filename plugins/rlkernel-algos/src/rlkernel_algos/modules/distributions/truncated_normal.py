"""A normal distribution truncated to ``[low, high]``, computed in log space.

The normalizer ``Z = Phi(beta) - Phi(alpha)`` (``alpha, beta`` the standardized bounds) is
computed as ``log Z`` from ``log_ndtr`` on the side of the tail the interval lies in, so
that a location many standard deviations outside the bounds still gives finite
log-probabilities, means and samples (a plain ``Phi(beta) - Phi(alpha)`` rounds to 0
about 5 to 8 standard deviations out, depending on the dtype).
"""

from __future__ import annotations

import math
from numbers import Number

import torch
import torch.distributions as D
from torch.distributions import constraints
from torch.special import log_ndtr, ndtri

from rlkernel_algos.modules.distributions.continuous import _bounds, _event_split

__all__ = ["TruncatedNormal"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(d))`` for ``d <= 0``, accurate on both sides of ``-log 2``."""
    return torch.where(d > -math.log(2.0), torch.log(-torch.expm1(d)), torch.log1p(-torch.exp(d)))


class TruncatedNormal(D.Distribution):
    """``Normal(loc, scale)`` conditioned on ``low <= x <= high``.

    The last ``event_dims`` dims (default 1) form the event: ``log_prob`` and ``entropy``
    sum over them. ``rsample`` is reparameterized (inverse-CDF). ``mode`` is ``loc`` clamped
    to the bounds; ``mean`` and ``deterministic_sample`` are the truncated mean.

    Args:
        loc, scale: parameters of the normal distribution before truncation.
        low, high: the bounds (numbers or tensors broadcastable to ``loc``; ``low < high``).
        upscale: with ``tanh_loc``, ``loc`` is replaced by ``upscale * tanh(loc / upscale)``.
        tanh_loc: see ``upscale`` (off by default).
        event_dims: number of trailing dims that form one event.

    Example::

        >>> dist = TruncatedNormal(torch.tensor([30.0]), torch.tensor([1.0]), low=-1.0, high=1.0)
        >>> dist.log_prob(torch.tensor([1.0])) > -5       # finite, near the upper bound
        tensor(True)
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = True

    def __init__(
        self,
        loc: torch.Tensor,
        scale: torch.Tensor,
        low: float | torch.Tensor = -1.0,
        high: float | torch.Tensor = 1.0,
        *,
        upscale: float = 5.0,
        tanh_loc: bool = False,
        event_dims: int | None = None,
        validate_args: bool | None = None,
    ) -> None:
        loc, scale = torch.broadcast_tensors(torch.as_tensor(loc), torch.as_tensor(scale))
        if tanh_loc:
            loc = upscale * torch.tanh(loc / upscale)
        self.loc, self.scale = loc, scale
        check = validate_args if validate_args is not None else D.Distribution._validate_args
        low_t, high_t = _bounds(low, high, loc, "TruncatedNormal", check)
        self.low, self.high = low_t.expand(loc.shape), high_t.expand(loc.shape)
        self.upscale, self.tanh_loc = upscale, tanh_loc
        self._alpha = (self.low - loc) / scale
        self._beta = (self.high - loc) / scale
        # Intervals entirely above the mean are reflected, so that log_ndtr works in its
        # accurate (lower) tail on both bounds.
        self._flip = self._alpha > 0
        lo = torch.where(self._flip, -self._beta, self._alpha)
        hi = torch.where(self._flip, -self._alpha, self._beta)
        self._log_cdf_lo, self._log_cdf_hi = log_ndtr(lo), log_ndtr(hi)
        self._log_z = self._log_cdf_hi + _log1mexp(self._log_cdf_lo - self._log_cdf_hi)
        batch_shape, event_shape = _event_split(loc.shape, event_dims, "TruncatedNormal")
        self._sum_dims = tuple(range(-len(event_shape), 0))
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.interval(self.low, self.high)

    def _sum(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(self._sum_dims) if self._sum_dims else x

    def _pdf_ratio(self, z: torch.Tensor) -> torch.Tensor:
        """``phi(z) / Z`` in log space."""
        return torch.exp(-0.5 * z * z - _LOG_SQRT_2PI - self._log_z)

    def log_prob(self, value: torch.Tensor | Number) -> torch.Tensor:
        """Log-density of ``value`` (``-inf`` outside ``[low, high]``), summed over the event."""
        value = torch.as_tensor(value, dtype=self.loc.dtype, device=self.loc.device)
        z = (value - self.loc) / self.scale
        lp = -0.5 * z * z - _LOG_SQRT_2PI - self.scale.log() - self._log_z
        outside = (value < self.low) | (value > self.high)
        return self._sum(lp.masked_fill(outside, float("-inf")))

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        """A reparameterized sample (inverse CDF)."""
        shape = self._extended_shape(torch.Size(sample_shape))
        tiny = torch.finfo(self.loc.dtype).tiny
        u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device).clamp(tiny, 1.0 - tiny)
        # In log space: log(Phi(lo) + u * (Phi(hi) - Phi(lo))) = log_z + log(exp(cdf_lo - log_z) + u).
        log_p = self._log_z + torch.log(torch.exp(self._log_cdf_lo - self._log_z) + u)
        # float64 for the inverse CDF: exp(log_p) stays representable 37 (not 13) sigmas out.
        wide = log_p.to(torch.float64)
        z = ndtri(torch.exp(wide).clamp(torch.finfo(torch.float64).tiny, 1.0)).to(self.loc.dtype)
        z = torch.where(self._flip, -z, z)
        x = self.loc + self.scale * z
        return torch.minimum(torch.maximum(x, self.low), self.high)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        """A sample without gradient."""
        with torch.no_grad():
            return self.rsample(sample_shape)

    @property
    def mean(self) -> torch.Tensor:
        """``loc + scale * (phi(alpha) - phi(beta)) / Z``."""
        return self.loc + self.scale * (self._pdf_ratio(self._alpha) - self._pdf_ratio(self._beta))

    @property
    def variance(self) -> torch.Tensor:
        pa, pb = self._pdf_ratio(self._alpha), self._pdf_ratio(self._beta)
        return self.scale**2 * (1 + self._alpha * pa - self._beta * pb - (pa - pb) ** 2)

    @property
    def mode(self) -> torch.Tensor:
        """``loc`` clamped to ``[low, high]``."""
        return torch.minimum(torch.maximum(self.loc, self.low), self.high)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        """The truncated mean."""
        return self.mean

    def entropy(self) -> torch.Tensor:
        """Differential entropy, summed over the event."""
        pa, pb = self._pdf_ratio(self._alpha), self._pdf_ratio(self._beta)
        ent = 0.5 + _LOG_SQRT_2PI + self.scale.log() + self._log_z + 0.5 * (self._alpha * pa - self._beta * pb)
        return self._sum(ent)
