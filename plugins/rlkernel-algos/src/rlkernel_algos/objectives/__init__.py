"""Losses and target-network updaters, with TorchRL's names and semantics.

==========================  =====================================================
loss                        terms (``forward`` returns a TensorDict of scalars)
==========================  =====================================================
:class:`PPOLoss`            loss_objective, loss_critic, loss_entropy
:class:`ClipPPOLoss`        loss_objective, loss_critic, loss_entropy (+ clip_fraction)
:class:`KLPENPPOLoss`       loss_objective, loss_critic, loss_entropy (+ kl, beta)
:class:`A2CLoss`            loss_objective, loss_critic, loss_entropy
:class:`ReinforceLoss`      loss_actor, loss_value
:class:`DQNLoss`            loss
:class:`DistributionalDQNLoss`  loss
:class:`DDPGLoss`           loss_actor, loss_value
:class:`TD3Loss`            loss_actor, loss_qvalue
:class:`SACLoss`            loss_actor, loss_qvalue, loss_alpha (+ loss_value in v1)
:class:`DiscreteSACLoss`    loss_actor, loss_qvalue, loss_alpha
==========================  =====================================================

Every loss takes a TensorDict or keyword tensors (``loss(observation=..., reward=...)``,
see :class:`LossModule`), renames its keys with ``set_keys``, and keeps its target
networks out of ``loss.parameters()``; :class:`SoftUpdate` and :class:`HardUpdate` move
them.
"""

from __future__ import annotations

from rlkernel_algos.objectives._keys import LossKeyError
from rlkernel_algos.objectives._returns import ReturnEstimator, ValueEstimators, distance_loss
from rlkernel_algos.objectives.a2c import A2CLoss
from rlkernel_algos.objectives.common import LossModule
from rlkernel_algos.objectives.ddpg import DDPGLoss
from rlkernel_algos.objectives.discrete_sac import DiscreteSACLoss
from rlkernel_algos.objectives.distributional_dqn import DistributionalDQNLoss, project_distribution
from rlkernel_algos.objectives.dqn import DQNLoss
from rlkernel_algos.objectives.ppo import ClipPPOLoss, KLPENPPOLoss, PPOLoss
from rlkernel_algos.objectives.reinforce import ReinforceLoss
from rlkernel_algos.objectives.sac import SACLoss
from rlkernel_algos.objectives.td3 import TD3Loss
from rlkernel_algos.objectives.updaters import HardUpdate, SoftUpdate, TargetNetUpdater

__all__ = [
    "A2CLoss",
    "ClipPPOLoss",
    "DDPGLoss",
    "DQNLoss",
    "DiscreteSACLoss",
    "DistributionalDQNLoss",
    "HardUpdate",
    "KLPENPPOLoss",
    "LossKeyError",
    "LossModule",
    "PPOLoss",
    "ReinforceLoss",
    "ReturnEstimator",
    "SACLoss",
    "SoftUpdate",
    "TD3Loss",
    "TargetNetUpdater",
    "ValueEstimators",
    "distance_loss",
    "project_distribution",
]
