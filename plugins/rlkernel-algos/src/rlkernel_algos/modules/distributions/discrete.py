"""Discrete action distributions: one-hot and masked categoricals.

Action masks follow the rlkernel convention: a bool ``action_mask`` next to the action,
True where the action is allowed. A masked-out category has probability exactly 0: it is
never sampled, never the mode, and its ``log_prob`` is ``-inf``.
"""

from __future__ import annotations

import torch
import torch.distributions as D
from tensordict.nn.distributions import OneHotCategorical as _TDOneHotCategorical

from rlkernel.errors import SpecError

__all__ = ["MaskedCategorical", "MaskedOneHotCategorical", "OneHotCategorical"]


class OneHotCategorical(_TDOneHotCategorical):
    """A categorical distribution over one-hot vectors (tensordict's, extended).

    ``sample``, ``mode`` and ``deterministic_sample`` return ``torch.long`` one-hot tensors
    (``ProbabilisticActor`` casts them to the action spec's dtype); ``log_prob`` accepts
    one-hot values of any dtype, bool included. ``rsample`` is a straight-through sample
    (one-hot values, the gradient of a relaxed sample); ``has_rsample`` is False so that
    actors sample without it unless asked.

    Example::

        >>> dist = OneHotCategorical(logits=torch.tensor([0.0, 10.0]))
        >>> dist.mode
        tensor([0, 1])
        >>> dist.log_prob(torch.tensor([False, True])) > -1e-3
        tensor(True)
    """

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log-probability of the category marked in ``value`` (one-hot, last dim)."""
        if value.shape[-1:] != self.logits.shape[-1:]:
            raise SpecError(
                f"{type(self).__name__}.log_prob: expected one-hot values with a last dim of "
                f"{self.logits.shape[-1]}, got shape {list(value.shape)}"
            )
        if value.dtype is torch.bool:  # argmax does not take bool
            value = value.to(torch.uint8)
        return D.Categorical.log_prob(self, value.argmax(-1))


def _masked_logits(logits: torch.Tensor | None, probs: torch.Tensor | None, mask: torch.Tensor,
                   owner: str, validate: bool) -> torch.Tensor:
    if (logits is None) == (probs is None):
        raise SpecError(f"{owner}: give exactly one of logits and probs")
    if probs is not None:
        logits = probs.log()
    assert logits is not None
    if not isinstance(mask, torch.Tensor) or mask.dtype is not torch.bool:
        what = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise SpecError(f"{owner}: mask must be a bool tensor (True = allowed), got {what}")
    try:
        fits = torch.broadcast_shapes(mask.shape, logits.shape) == logits.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise SpecError(
            f"{owner}: mask of shape {list(mask.shape)} does not broadcast to the logits' shape "
            f"{list(logits.shape)} (one flag per category, last dim {logits.shape[-1]})"
        )
    if validate:
        empty = ~mask.expand(logits.shape).any(-1)
        if bool(empty.any()):
            where = [int(i) for i in torch.nonzero(empty)[0]]
            raise SpecError(f"{owner}: the mask allows no category at batch index {where}")
    return logits.masked_fill(~mask, float("-inf"))


class MaskedCategorical(D.Categorical):
    """A categorical distribution restricted to the categories where ``mask`` is True.

    Args:
        logits, probs: unnormalized log-probabilities or probabilities (one of them),
            categories along the last dim.
        mask: bool, broadcastable to the logits' shape; True where a category is allowed.
        validate_args: as in ``torch.distributions`` (on by default); also checks that every
            row of the mask allows a category (a device sync).

    Example::

        >>> dist = MaskedCategorical(logits=torch.zeros(3), mask=torch.tensor([True, False, True]))
        >>> dist.log_prob(torch.tensor(1))
        tensor(-inf)
        >>> dist.probs
        tensor([0.5000, 0.0000, 0.5000])
    """

    def __init__(
        self,
        logits: torch.Tensor | None = None,
        probs: torch.Tensor | None = None,
        *,
        mask: torch.Tensor,
        validate_args: bool | None = None,
    ) -> None:
        validate = validate_args if validate_args is not None else D.Distribution._validate_args
        masked = _masked_logits(logits, probs, mask, "MaskedCategorical", validate)
        self.mask = mask.expand(masked.shape)
        super().__init__(logits=masked, validate_args=validate_args)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        """The most likely allowed category."""
        return self.mode


class MaskedOneHotCategorical(OneHotCategorical):
    """:class:`OneHotCategorical` restricted to the categories where ``mask`` is True.

    Args:
        logits, probs: as in :class:`MaskedCategorical`.
        mask: bool, broadcastable to the logits' shape (one-hot layout).
        validate_args: see :class:`MaskedCategorical`.

    Example::

        >>> dist = MaskedOneHotCategorical(logits=torch.zeros(3), mask=torch.tensor([False, True, False]))
        >>> dist.sample()
        tensor([0, 1, 0])
    """

    def __init__(
        self,
        logits: torch.Tensor | None = None,
        probs: torch.Tensor | None = None,
        *,
        mask: torch.Tensor,
        validate_args: bool | None = None,
    ) -> None:
        validate = validate_args if validate_args is not None else D.Distribution._validate_args
        masked = _masked_logits(logits, probs, mask, "MaskedOneHotCategorical", validate)
        self.mask = mask.expand(masked.shape)
        super().__init__(logits=masked, validate_args=validate_args)
