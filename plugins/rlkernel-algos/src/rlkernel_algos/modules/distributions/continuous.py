"""Continuous action distributions: :class:`TanhNormal`, :class:`IndependentNormal`, :class:`TanhDelta`.

All are ``torch.distributions`` subclasses usable as ``distribution_class`` of
:class:`~rlkernel_algos.modules.ProbabilisticActor`; under an exploration type other than
``RANDOM`` the actor takes ``deterministic_sample`` / ``mode`` / ``mean`` (see each class).
"""

from __future__ import annotations

import math
from numbers import Number

import torch
import torch.distributions as D
import torch.nn.functional as F
from tensordict.nn.distributions import Delta
from torch.distributions import constraints

from rlkernel.errors import SpecError

__all__ = ["Delta", "IndependentNormal", "TanhDelta", "TanhNormal"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_LOG2 = math.log(2.0)


def _bounds(low: float | torch.Tensor, high: float | torch.Tensor, like: torch.Tensor, owner: str,
            check: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``low``/``high`` as tensors on ``like``'s device and dtype, checked ``low < high``.

    Python numbers are always checked; tensors only when ``check`` (it syncs the device).
    """
    if isinstance(low, Number) and isinstance(high, Number) and not low < high:
        raise SpecError(f"{owner}: low must be < high, got low={low} and high={high}")
    low_t = torch.as_tensor(low, dtype=like.dtype, device=like.device)
    high_t = torch.as_tensor(high, dtype=like.dtype, device=like.device)
    if check and not isinstance(low, Number) and not bool((low_t < high_t).all()):
        raise SpecError(f"{owner}: low must be < high everywhere, got low={low_t} and high={high_t}")
    return low_t, high_t


def _event_split(shape: torch.Size, event_dims: int | None, owner: str) -> tuple[torch.Size, torch.Size]:
    n = min(1, len(shape)) if event_dims is None else event_dims
    if not 0 <= n <= len(shape):
        raise SpecError(f"{owner}: event_dims={event_dims} does not fit a parameter of shape {list(shape)}")
    return shape[: len(shape) - n], shape[len(shape) - n :]


class TanhNormal(D.Distribution):
    """A normal distribution squashed by ``tanh`` and rescaled to ``[low, high]``.

    ``action = low + (high - low) * (tanh(x) + 1) / 2`` with ``x ~ Normal(loc, scale)``.
    The last ``event_dims`` dims (default 1) form the event: ``log_prob`` sums over them.

    ``log_prob`` uses ``log(1 - tanh(x)^2) = 2 * (log 2 - x - softplus(-2x))``, finite where
    ``1 - tanh(x)^2`` rounds to 0; values at the bounds are pulled inside by one float step.
    A sample drawn by ``rsample_and_log_prob`` (what ``ProbabilisticActor`` uses with
    ``return_log_prob=True``) is scored from the pre-tanh draw, exactly.

    * ``deterministic_sample``: the squashed location ``tanh(loc)`` (rescaled);
    * ``mode``: the true mode, per dim (the maximum of the density after the squash, which
      differs from ``tanh(loc)`` when ``scale`` is large);
    * ``mean`` and ``entropy`` have no closed form and raise ``NotImplementedError``
      (``ProbabilisticActor`` then averages samples under ``MEAN``).

    Args:
        loc, scale: parameters of the normal distribution before the squash.
        low, high: the action bounds (numbers or tensors broadcastable to ``loc``).
        upscale: with ``tanh_loc``, ``loc`` is replaced by ``upscale * tanh(loc / upscale)``.
        tanh_loc: see ``upscale`` (off by default).
        event_dims: number of trailing dims that form one event (default ``min(1, loc.ndim)``).

    Example::

        >>> dist = TanhNormal(torch.zeros(3), torch.ones(3), low=-2.0, high=2.0)
        >>> a = dist.rsample()
        >>> bool(((a > -2) & (a < 2)).all()), dist.log_prob(a).shape
        (True, torch.Size([]))
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
        low_t, high_t = _bounds(low, high, loc, "TanhNormal", check)
        self.low, self.high = low_t, high_t
        self._half = (high_t - low_t) / 2
        self._mid = (high_t + low_t) / 2
        self.upscale, self.tanh_loc = upscale, tanh_loc
        batch_shape, event_shape = _event_split(loc.shape, event_dims, "TanhNormal")
        self._sum_dims = tuple(range(-len(event_shape), 0))
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.interval(self.low, self.high)

    def _squash(self, x: torch.Tensor) -> torch.Tensor:
        return self._mid + self._half * torch.tanh(x)

    def _log_prob_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density of ``_squash(x)`` from the pre-squash value ``x``."""
        z = (x - self.loc) / self.scale
        normal_lp = -0.5 * z * z - self.scale.log() - _LOG_SQRT_2PI
        log_det = 2.0 * (_LOG2 - x - F.softplus(-2.0 * x)) + self._half.log()
        lp = normal_lp - log_det
        return lp.sum(self._sum_dims) if self._sum_dims else lp

    def _draw(self, sample_shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + self.scale * eps

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        """A reparameterized sample."""
        return self._squash(self._draw(sample_shape))

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        """A sample without gradient."""
        with torch.no_grad():
            return self.rsample(sample_shape)

    def rsample_and_log_prob(
        self, sample_shape: torch.Size | tuple[int, ...] = ()
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterized sample and its exact log-probability (from the pre-tanh draw)."""
        x = self._draw(sample_shape)
        return self._squash(x), self._log_prob_pre(x)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log-density of ``value`` (summed over the event dims)."""
        if self._validate_args:
            self._validate_sample(value)
        t = (value - self._mid) / self._half
        edge = 1.0 - torch.finfo(t.dtype).eps
        x = torch.atanh(t.clamp(-edge, edge))
        return self._log_prob_pre(x)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        """``tanh(loc)``, rescaled to ``[low, high]``."""
        return self._squash(self.loc)

    @property
    def mode(self) -> torch.Tensor:
        """The mode of the squashed density, per dim.

        The density of ``y = tanh(x)`` peaks where ``x = loc + 2 scale^2 tanh(x)``. That map
        is increasing, so iterating it from ``loc +- 2 scale^2`` converges monotonically to its
        largest / smallest fixed points, the only local maxima; the higher one is the mode.
        """
        with torch.no_grad():
            reach = 2.0 * self.scale * self.scale
            hi, lo = self.loc + reach, self.loc - reach
            for _ in range(200):
                hi_next = self.loc + reach * torch.tanh(hi)
                lo_next = self.loc + reach * torch.tanh(lo)
                done = bool(((hi_next - hi).abs().max() < 1e-6) & ((lo_next - lo).abs().max() < 1e-6))
                hi, lo = hi_next, lo_next
                if done:
                    break
            # Compare the un-summed per-dim log-densities of the two candidates.
            def per_dim(x: torch.Tensor) -> torch.Tensor:
                z = (x - self.loc) / self.scale
                return -0.5 * z * z - 2.0 * (_LOG2 - x - F.softplus(-2.0 * x))

            best = torch.where(per_dim(hi) >= per_dim(lo), hi, lo)
        return self._squash(best)

    @property
    def mean(self) -> torch.Tensor:
        raise NotImplementedError("TanhNormal has no closed-form mean; average samples instead")

    def entropy(self) -> torch.Tensor:
        raise NotImplementedError("TanhNormal has no closed-form entropy; use -log_prob of samples")


class IndependentNormal(D.Independent):
    """``Independent(Normal(loc, scale), event_dim)``: a diagonal Gaussian over the last dim(s).

    ``mode``, ``mean`` and ``deterministic_sample`` are ``loc``.

    Args:
        loc, scale: the mean and standard deviation.
        upscale: with ``tanh_loc``, ``loc`` is replaced by ``upscale * tanh(loc / upscale)``.
        tanh_loc: see ``upscale`` (off by default).
        event_dim: how many trailing dims form one event (1).

    Example::

        >>> dist = IndependentNormal(torch.zeros(4, 2), torch.ones(4, 2))
        >>> dist.batch_shape, dist.event_shape, dist.log_prob(dist.sample()).shape
        (torch.Size([4]), torch.Size([2]), torch.Size([4]))
    """

    def __init__(
        self,
        loc: torch.Tensor,
        scale: torch.Tensor,
        upscale: float = 5.0,
        tanh_loc: bool = False,
        event_dim: int = 1,
        validate_args: bool | None = None,
    ) -> None:
        if tanh_loc:
            loc = upscale * torch.tanh(loc / upscale)
        loc, scale = torch.broadcast_tensors(torch.as_tensor(loc), torch.as_tensor(scale))
        if not 0 <= event_dim <= loc.ndim:
            raise SpecError(f"IndependentNormal: event_dim={event_dim} does not fit loc of shape {list(loc.shape)}")
        self.upscale, self.tanh_loc = upscale, tanh_loc
        super().__init__(D.Normal(loc, scale, validate_args=validate_args), event_dim, validate_args=validate_args)

    @property
    def loc(self) -> torch.Tensor:
        """The mean."""
        return self.base_dist.loc

    @property
    def scale(self) -> torch.Tensor:
        """The standard deviation."""
        return self.base_dist.scale

    @property
    def mode(self) -> torch.Tensor:
        return self.base_dist.loc

    @property
    def deterministic_sample(self) -> torch.Tensor:
        """``loc``."""
        return self.base_dist.loc


class TanhDelta(Delta):
    """A point mass at ``low + (high - low) * (tanh(param) + 1) / 2`` (deterministic policies).

    Args:
        param: the pre-squash value.
        low, high: the bounds (numbers or tensors broadcastable to ``param``).
        event_dims: number of trailing dims that form one event (1).
        atol, rtol: tolerances of ``log_prob`` (``inf`` at the point, ``-inf`` elsewhere).

    Example::

        >>> TanhDelta(torch.zeros(2), low=0.0, high=4.0).mode
        tensor([2., 2.])
    """

    def __init__(
        self,
        param: torch.Tensor,
        low: float | torch.Tensor = -1.0,
        high: float | torch.Tensor = 1.0,
        event_dims: int = 1,
        atol: float = 1e-6,
        rtol: float = 1e-6,
    ) -> None:
        low_t, high_t = _bounds(low, high, param, "TanhDelta", D.Distribution._validate_args)
        self.low, self.high = low_t, high_t
        value = (high_t + low_t) / 2 + (high_t - low_t) / 2 * torch.tanh(param)
        batch_shape, event_shape = _event_split(value.shape, event_dims, "TanhDelta")
        super().__init__(value, atol=atol, rtol=rtol, batch_shape=batch_shape, event_shape=event_shape)
