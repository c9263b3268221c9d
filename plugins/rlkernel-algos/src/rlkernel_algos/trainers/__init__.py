"""The trainer: a collection/optimisation loop with hooks, logging and exact-resume checkpoints.

* :class:`TrainingLoop` -- the bookkeeping around a loop a recipe writes out itself (logs,
  checkpoints, progress, early stop); what the recipes use.
* :class:`Trainer` -- an optional ready-made loop; :meth:`Trainer.register_op` adds behaviour at the hook
  points of :data:`HOOK_POINTS`; :meth:`Trainer.register_module` adds state to checkpoints.
* :class:`ReplayBufferHook` -- writes batches into a replay buffer and samples minibatches.
* :class:`EpisodeReturnTracker` -- returns of the episodes that end in collected batches.
* :func:`seed_everything`, :func:`latest_checkpoint`, :func:`load_checkpoint_file`.
"""

from __future__ import annotations

from rlkernel_algos.trainers.checkpoint import latest_checkpoint, load_checkpoint_file, seed_everything
from rlkernel_algos.trainers.hooks import HOOK_POINTS, TrainerError
from rlkernel_algos.trainers.loop import TrainingLoop
from rlkernel_algos.trainers.replay import ReplayBufferHook
from rlkernel_algos.trainers.returns import EpisodeReturnTracker
from rlkernel_algos.trainers.trainer import Trainer

__all__ = [
    "HOOK_POINTS",
    "EpisodeReturnTracker",
    "ReplayBufferHook",
    "Trainer",
    "TrainerError",
    "TrainingLoop",
    "latest_checkpoint",
    "load_checkpoint_file",
    "seed_everything",
]
