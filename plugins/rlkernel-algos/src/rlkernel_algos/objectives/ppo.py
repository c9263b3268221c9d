"""Proximal Policy Optimisation: :class:`PPOLoss`, :class:`ClipPPOLoss`, :class:`KLPENPPOLoss`.

With ``r = pi(a|s) / pi_old(a|s)`` (from the stored ``action_log_prob``) and the advantage
``A``, the policy terms are

* :class:`PPOLoss`: ``loss_objective = -mean(r * A)``;
* :class:`ClipPPOLoss`: ``loss_objective = -mean(min(r * A, clip(r, 1 - eps, 1 + eps) * A))``;
* :class:`KLPENPPOLoss`: ``loss_objective = -mean(r * A - beta * KL(pi_old || pi))``, with
  ``beta`` adapted after each call towards ``dtarg``.

All three add ``loss_entropy`` and ``loss_critic`` (see
:class:`~rlkernel_algos.objectives._on_policy.OnPolicyLoss`) and report ``entropy``,
``kl_approx`` (``mean(log pi_old - log pi)``), ``ESS`` (the effective sample size of the
ratios over the batch size), for the clipped loss ``clip_fraction``, and on request
(``log_explained_variance=True``) ``explained_variance``.

Example::

    >>> loss = ClipPPOLoss(actor, critic, clip_epsilon=0.2, entropy_coef=0.01)  # doctest: +SKIP
    >>> loss.value_estimator(batch)          # advantage + value_target   # doctest: +SKIP
    >>> for mb in batch.split(64):                                        # doctest: +SKIP
    ...     td = loss(mb)
    ...     (td["loss_objective"] + td["loss_critic"] + td["loss_entropy"]).backward()
"""

from __future__ import annotations

import torch

from rlkernel.errors import SpecError
from rlkernel_algos.objectives._on_policy import OnPolicyLoss
from rlkernel_algos.objectives._returns import match_shape

__all__ = ["ClipPPOLoss", "KLPENPPOLoss", "PPOLoss"]


class PPOLoss(OnPolicyLoss):
    """The unclipped importance-weighted policy gradient (``-mean(r * A)``) + critic + entropy.

    Args: see :class:`~rlkernel_algos.objectives._on_policy.OnPolicyLoss`.

    Returns (from ``forward``): ``loss_objective``, ``loss_critic`` (with a critic),
    ``loss_entropy`` (with ``entropy_bonus``), ``entropy``, ``kl_approx``, ``ESS``,
    ``explained_variance`` (with ``log_explained_variance``), and ``value_clip_fraction``
    with ``clip_value``.
    """

    def _objective(self, ratio: torch.Tensor, log_ratio: torch.Tensor, advantage: torch.Tensor, dist, source,
                   batch_shape: torch.Size, out: dict) -> torch.Tensor:
        return -(ratio * advantage).mean()

    def _loss(self, source, batch_shape: torch.Size) -> dict[str, torch.Tensor]:
        owner = type(self).__name__
        source, advantage = self._advantage(source, batch_shape)
        dist, log_prob = self._log_prob(source, batch_shape)
        old = match_shape(self._get(source, "sample_log_prob"), log_prob, "sample_log_prob", owner).detach()
        advantage = match_shape(advantage, log_prob, "advantage", owner).detach()
        log_ratio = log_prob - old
        ratio = log_ratio.exp()
        out: dict[str, torch.Tensor] = {}
        out["loss_objective"] = self._objective(ratio, log_ratio, advantage, dist, source, batch_shape, out)
        with torch.no_grad():
            out["kl_approx"] = -log_ratio.mean()
            # effective sample size of the importance weights, over the batch size
            out["ESS"] = ratio.sum().square() / ratio.square().sum() / ratio.numel()
        self._add_entropy(dist, out)
        if self._critic is not None:
            self._critic_loss(source, batch_shape, out)
        return out


class ClipPPOLoss(PPOLoss):
    """PPO with the clipped surrogate objective (Schulman et al. 2017).

    Args:
        actor_network, critic_network: as :class:`PPOLoss`.
        clip_epsilon: the ratio is clipped to ``[1 - clip_epsilon, 1 + clip_epsilon]``.
        **kwargs: see :class:`~rlkernel_algos.objectives._on_policy.OnPolicyLoss`
            (``entropy_coef``, ``critic_coef``, ``loss_critic_type``, ``normalize_advantage``,
            ``clip_value``, ...).

    Also reports ``clip_fraction``: the fraction of samples whose ratio was clipped.
    """

    def __init__(self, actor_network, critic_network=None, *, clip_epsilon: float = 0.2, **kwargs) -> None:
        super().__init__(actor_network, critic_network, **kwargs)
        if not 0.0 < float(clip_epsilon) < 1.0:
            raise SpecError(f"ClipPPOLoss: clip_epsilon must be in (0, 1), got {clip_epsilon}")
        self.clip_epsilon = float(clip_epsilon)

    def _objective(self, ratio: torch.Tensor, log_ratio: torch.Tensor, advantage: torch.Tensor, dist, source,
                   batch_shape: torch.Size, out: dict) -> torch.Tensor:
        clipped = ratio.clamp(1.0 - self.clip_epsilon, 1.0 + self.clip_epsilon)
        with torch.no_grad():
            out["clip_fraction"] = (ratio != clipped).to(ratio.dtype).mean()
        return -torch.minimum(ratio * advantage, clipped * advantage).mean()


class KLPENPPOLoss(PPOLoss):
    """PPO with an adaptive KL penalty (Schulman et al. 2017, section 4).

    Args:
        actor_network, critic_network: as :class:`PPOLoss`.
        dtarg: the target KL divergence.
        beta: the initial penalty coefficient (a buffer, saved in ``state_dict``).
        increment, decrement: ``beta`` is multiplied by ``increment`` when the batch KL
            exceeds ``1.5 * dtarg`` and by ``decrement`` when it is below ``dtarg / 1.5``.
        samples_mc_kl: samples of the Monte-Carlo KL estimate, used when the old
            distribution's parameters are not in the batch or have no closed-form KL.
        **kwargs: see :class:`~rlkernel_algos.objectives._on_policy.OnPolicyLoss`.

    ``KL(pi_old || pi)`` is exact when the batch holds the old distribution's parameters
    (e.g. ``loc``/``scale`` or ``logits``, which a collector stores) and
    :func:`torch.distributions.kl_divergence` knows the pair; otherwise it is estimated
    from the stored actions as ``log pi_old(a) - log pi(a)``. Also reports ``kl`` and ``beta``.
    """

    def __init__(
        self,
        actor_network,
        critic_network=None,
        *,
        dtarg: float = 0.01,
        beta: float = 1.0,
        increment: float = 2.0,
        decrement: float = 0.5,
        samples_mc_kl: int = 1,
        **kwargs,
    ) -> None:
        super().__init__(actor_network, critic_network, **kwargs)
        if dtarg <= 0 or beta < 0 or increment < 1 or not 0 < decrement <= 1:
            raise SpecError(
                "KLPENPPOLoss: needs dtarg > 0, beta >= 0, increment >= 1 and 0 < decrement <= 1; got "
                f"dtarg={dtarg}, beta={beta}, increment={increment}, decrement={decrement}"
            )
        self.dtarg = float(dtarg)
        self.increment = float(increment)
        self.decrement = float(decrement)
        self.samples_mc_kl = int(samples_mc_kl)
        self.register_buffer("beta", torch.tensor(float(beta)))

    def _build_in_keys(self):
        return [*super()._build_in_keys(), *self._actor.dist_param_keys()]

    def _kl(self, log_ratio: torch.Tensor, dist, source, batch_shape: torch.Size) -> torch.Tensor:
        old = self._actor.dist_from_params(source, batch_shape=batch_shape)
        if old is None:
            return -log_ratio
        try:
            return torch.distributions.kl_divergence(old, dist)
        except NotImplementedError:
            sample = old.sample(torch.Size((self.samples_mc_kl,)))
            return (old.log_prob(sample) - dist.log_prob(sample)).mean(0)

    def _objective(self, ratio: torch.Tensor, log_ratio: torch.Tensor, advantage: torch.Tensor, dist, source,
                   batch_shape: torch.Size, out: dict) -> torch.Tensor:
        kl = self._kl(log_ratio, dist, source, batch_shape)
        kl = match_shape(kl, log_ratio, "the KL divergence", type(self).__name__)
        beta = self.beta.clone()  # the buffer is updated in place below; the graph keeps this value
        objective = -(ratio * advantage - beta * kl).mean()
        with torch.no_grad():
            mean_kl = kl.detach().mean()
            out["kl"] = mean_kl
            out["beta"] = beta
            if mean_kl > 1.5 * self.dtarg:
                self.beta.mul_(self.increment)
            elif mean_kl < self.dtarg / 1.5:
                self.beta.mul_(self.decrement)
        return objective
