"""What PPO, A2C and REINFORCE share: an actor, an optional critic, advantages, entropy.

The input is a batch of steps as a collector writes them (``[*B]`` or ``[*B, T]``)::

    {observation, action, action_log_prob, [advantage, value_target, state_value],
     next: {observation, reward, done, terminated}}

When ``advantage`` is missing, the loss runs its value estimator first (GAE with
``gamma=0.99, lmbda=0.95`` unless :meth:`~OnPolicyLoss.make_value_estimator` chose
another): the estimator writes into a shallow copy, the caller's batch is left as it is.
Most training loops instead call ``loss.value_estimator(batch)`` once per collected batch,
before splitting it into minibatches.
"""

from __future__ import annotations

import dataclasses

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from rlkernel.errors import SpecError
from rlkernel_algos.objectives._keys import LossKeyError
from rlkernel_algos.objectives._returns import (
    check_loss_function,
    distance_loss,
    make_advantage_estimator,
    match_shape,
)
from rlkernel_algos.objectives._runner import ModuleRunner
from rlkernel_algos.objectives.common import LossModule

__all__ = ["OnPolicyLoss", "actor_default_keys"]


def actor_default_keys(actor) -> tuple[NestedKey, NestedKey]:
    """``(action key, log-prob key)`` that a probabilistic actor writes.

    tensordict names the log-probability of ``"action"`` ``"action_log_prob"``.
    """
    action: NestedKey = "action"
    try:
        action = actor.dist_sample_keys[0]
    except (AttributeError, IndexError, RuntimeError):
        pass
    try:
        log_prob = actor.log_prob_key
    except (AttributeError, RuntimeError):
        log_prob = None
    if log_prob is None:
        log_prob = f"{action}_log_prob" if isinstance(action, str) else (*action[:-1], f"{action[-1]}_log_prob")
    return action, log_prob


class OnPolicyLoss(LossModule):
    """Base of the policy-gradient losses (not used directly).

    Args:
        actor_network: a probabilistic actor (``ProbabilisticTensorDictSequential`` /
            ``ProbabilisticActor``) whose distribution scores the stored actions.
        critic_network: a value network writing ``state_value`` (optional for REINFORCE).
        entropy_bonus: add ``loss_entropy = -entropy_coef * entropy``.
        samples_mc_entropy: samples of the Monte-Carlo entropy estimate for distributions
            without a closed form (e.g. TanhNormal).
        entropy_coef: weight of the entropy bonus (``entropy_coeff`` is accepted too).
        critic_coef: weight of the critic loss (``critic_coeff`` is accepted too).
        loss_critic_type: ``"l2"``, ``"l1"`` or ``"smooth_l1"``.
        normalize_advantage: standardise the advantage over the batch.
        clip_value: if set, clip the new value prediction to ``old value +- clip_value``
            and take the larger of the clipped and unclipped losses (PPO2).
        log_explained_variance: report ``explained_variance`` of the critic (off by default,
            unlike TorchRL: it costs about 5% of a small PPO minibatch update).
    """

    default_value_estimator = "gae"

    @dataclasses.dataclass
    class _AcceptedKeys:
        """Keys read by the policy-gradient losses.

        Attributes:
            advantage: the advantage (computed by the value estimator when missing).
            value_target: the critic's regression target.
            value: the critic's output key, and the stored value read by ``clip_value``.
            sample_log_prob: the log-probability of the action when it was collected
                (default: the actor's log-prob key, ``"action_log_prob"``).
            action: the action taken (default: the actor's sample key).
            reward, done, terminated: read under ``"next"`` by the value estimator.
        """

        advantage: NestedKey = "advantage"
        value_target: NestedKey = "value_target"
        value: NestedKey = "state_value"
        sample_log_prob: NestedKey = "action_log_prob"
        action: NestedKey = "action"
        reward: NestedKey = "reward"
        done: NestedKey = "done"
        terminated: NestedKey = "terminated"

    def __init__(
        self,
        actor_network,
        critic_network=None,
        *,
        entropy_bonus: bool = True,
        samples_mc_entropy: int = 1,
        entropy_coef: float = 0.01,
        critic_coef: float = 1.0,
        loss_critic_type: str = "smooth_l1",
        normalize_advantage: bool = False,
        clip_value: float | None = None,
        log_explained_variance: bool = False,
        entropy_coeff: float | None = None,
        critic_coeff: float | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.actor_network = actor_network
        self.critic_network = critic_network
        self._actor = ModuleRunner(actor_network, f"{owner}.actor_network")
        if not self._actor.probabilistic:
            raise SpecError(f"{owner}: actor_network must end in a distribution (a probabilistic actor)")
        self._critic = ModuleRunner(critic_network, f"{owner}.critic_network") if critic_network is not None else None
        self.entropy_bonus = bool(entropy_bonus)
        self.samples_mc_entropy = int(samples_mc_entropy)
        self.entropy_coef = float(entropy_coef if entropy_coeff is None else entropy_coeff)
        self.critic_coef = float(critic_coef if critic_coeff is None else critic_coeff)
        self.loss_critic_type = check_loss_function(loss_critic_type, owner)
        self.normalize_advantage = bool(normalize_advantage)
        if clip_value is not None and float(clip_value) <= 0:
            raise SpecError(f"{owner}: clip_value must be positive, got {clip_value}")
        self.clip_value = None if clip_value is None else float(clip_value)
        self.log_explained_variance = bool(log_explained_variance)
        action, log_prob = actor_default_keys(actor_network)
        self.tensor_keys.action, self.tensor_keys.sample_log_prob = action, log_prob

    # ---- keys -------------------------------------------------------------------------
    def _policy_keys(self) -> list[NestedKey]:
        """The keys the policy term reads besides the actor's inputs (overridden by A2C)."""
        return [self.tensor_keys.action, self.tensor_keys.sample_log_prob]

    def _build_in_keys(self) -> list[NestedKey]:
        keys = self.tensor_keys
        out = [*self._actor.in_keys, *self._policy_keys(), keys.advantage]
        if self._critic is not None:
            out += [keys.value_target, *self._critic.in_keys]
            if self.clip_value is not None:
                out.append(keys.value)
            out += self._network_keys(self._critic, now=False, nxt=True)
            out += [("next", keys.reward), ("next", keys.done), ("next", keys.terminated)]
        return out

    def _keys_changed(self) -> None:
        estimator = self.__dict__.get("_value_estimator")
        if estimator is not None and hasattr(estimator, "set_keys"):
            keys = self.tensor_keys
            estimator.set_keys(
                advantage=keys.advantage, value_target=keys.value_target, value=keys.value,
                reward=keys.reward, done=keys.done, terminated=keys.terminated,
            )

    # ---- value estimator -----------------------------------------------------------------
    def make_value_estimator(self, value_type=None, **hyperparams):
        """Choose the advantage estimator: ``"gae"`` (default), ``"td0"``, ``"td1"``,
        ``"td_lambda"`` or ``"vtrace"``, with its hyper-parameters (``gamma``, ``lmbda``, ...).

        The estimator (an :mod:`rlkernel_algos.value` module using this loss's critic and
        keys) is ``loss.value_estimator``; calling it on a batch writes ``advantage`` and
        ``value_target``.
        """
        if self._critic is None:
            raise SpecError(f"{type(self).__name__}: computing advantages needs a critic_network")
        return self._set_value_estimator(make_advantage_estimator(
            self.default_value_estimator if value_type is None else value_type,
            self.critic_network, self.tensor_keys, hyperparams, type(self).__name__, self.actor_network,
        ))

    # ---- shared terms -------------------------------------------------------------------
    def _advantage(self, source, batch_shape: torch.Size):
        """``(source, advantage)``: runs the estimator (on a copy) when the input has none."""
        advantage = source.get(self.tensor_keys.advantage, None)
        if advantage is None:
            if self._critic is None:
                raise LossKeyError(
                    f"{type(self).__name__}: the input has no {self.tensor_keys.advantage!r} entry and the loss "
                    "has no critic to compute it; pass the advantage (e.g. the return)"
                )
            td = source.copy() if isinstance(source, TensorDictBase) else self._as_source(source, batch_shape)
            self.value_estimator(td)
            source, advantage = td, td.get(self.tensor_keys.advantage)
        if self.normalize_advantage and advantage.numel() > 1:
            advantage = (advantage - advantage.mean()) / advantage.std().clamp_min(1e-6)
        return source, advantage

    def _entropy(self, dist: torch.distributions.Distribution) -> torch.Tensor:
        try:
            return dist.entropy()
        except NotImplementedError:
            shape = torch.Size((self.samples_mc_entropy,))
            sample = dist.rsample(shape) if dist.has_rsample else dist.sample(shape)
            return -dist.log_prob(sample).mean(0)

    def _add_entropy(self, dist: torch.distributions.Distribution, out: dict) -> None:
        if not self.entropy_bonus:
            return
        entropy = self._entropy(dist).mean()
        out["entropy"] = entropy.detach()
        out["loss_entropy"] = -self.entropy_coef * entropy

    def _critic_value(self, source, batch_shape: torch.Size) -> torch.Tensor:
        key = self.tensor_keys.value
        values = self._critic.outputs(source, batch_shape=batch_shape, stop_at=key)
        value = values.get(key)
        if value is None:
            raise LossKeyError(
                f"{type(self).__name__}: the critic writes {self._critic.out_keys}, not the value key {key!r}; "
                f"use set_keys(value=...)"
            )
        return value

    def _critic_loss(self, source, batch_shape: torch.Size, out: dict, name: str = "loss_critic",
                     coef: float | None = None) -> None:
        owner = type(self).__name__
        value = self._critic_value(source, batch_shape)
        target = match_shape(self._get(source, "value_target"), value, "value_target", owner).detach()
        loss = distance_loss(value, target, self.loss_critic_type)
        if self.clip_value is not None:
            old = match_shape(self._get(source, "value"), value, "the stored value", owner).detach()
            moved = value - old
            clipped = moved.clamp(-self.clip_value, self.clip_value)
            loss = torch.maximum(loss, distance_loss(old + clipped, target, self.loss_critic_type))
            with torch.no_grad():
                out["value_clip_fraction"] = (moved != clipped).to(value.dtype).mean()
        out[name] = (self.critic_coef if coef is None else coef) * loss.mean()
        if self.log_explained_variance:
            with torch.no_grad():
                resid = (target - value).var(correction=0)
                out["explained_variance"] = 1.0 - resid / (target.var(correction=0) + 1e-8)

    def _log_prob(self, source, batch_shape: torch.Size):
        """``(dist, log-prob of the stored action)``."""
        dist = self._actor.dist(source, batch_shape=batch_shape)
        return dist, dist.log_prob(self._get(source, "action"))
