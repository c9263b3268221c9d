"""Hooks that put a replay buffer between the collector and the loss.

:class:`ReplayBufferHook` writes every collected batch into a buffer (``batch_process``)
and hands the loss a sampled minibatch at each optimisation step (``process_optim_batch``).
Its buffer is saved in the trainer's checkpoints. With a prioritized buffer it updates the
priorities of each sampled minibatch from the TD error the loss wrote (``post_loss``).

Off-policy (DQN, SAC, ...)::

    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(100_000), batch_size=256)
    ReplayBufferHook(rb).register(trainer)

On-policy epochs (PPO): a buffer the size of one batch, sampled without replacement::

    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(frames_per_batch),
                                sampler=SamplerWithoutReplacement(), batch_size=minibatch)
    ReplayBufferHook(rb).register(trainer)   # optim_steps_per_batch = epochs * batches
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tensordict import TensorDictBase

from rlkernel_algos.trainers.hooks import TrainerError

if TYPE_CHECKING:
    from rlkernel_algos.trainers.trainer import Trainer

__all__ = ["ReplayBufferHook"]


class ReplayBufferHook:
    """Feed the loss from a replay buffer.

    Args:
        buffer: a replay buffer (``extend``, ``sample``, ``state_dict``, ``load_state_dict``).
        batch_size: the minibatch size (default: the buffer's own ``batch_size``).
        flatten: write each batch as rows (``batch.reshape(-1)``); turn off to keep
            trajectories (e.g. for a ``SliceSampler`` over a ``[n_traj, T]`` layout).
        exclude: keys dropped before writing (the collector's bookkeeping by default).
        device: move sampled minibatches there (``None``: leave them where they are).
    """

    def __init__(
        self,
        buffer: Any,
        *,
        batch_size: int | None = None,
        flatten: bool = True,
        exclude: tuple[Any, ...] = (("collector", "traj_ids"),),
        device: Any = None,
    ) -> None:
        for method in ("extend", "sample", "state_dict", "load_state_dict"):
            if not callable(getattr(buffer, method, None)):
                raise TrainerError(f"ReplayBufferHook: the buffer {type(buffer).__name__} has no {method}() method")
        if batch_size is None and getattr(buffer, "batch_size", None) is None:
            raise TrainerError("ReplayBufferHook: give batch_size (the buffer has none of its own)")
        self.buffer = buffer
        self.batch_size = batch_size
        self.flatten = bool(flatten)
        self.exclude = tuple(exclude)
        self.device = device
        self._prioritized = callable(getattr(buffer, "update_tensordict_priority", None))

    def extend(self, batch: TensorDictBase) -> TensorDictBase:
        """``batch_process``: write ``batch`` into the buffer; the batch itself goes on unchanged."""
        rows = batch.exclude(*self.exclude) if self.exclude else batch
        if self.flatten:
            rows = rows.reshape(-1)
        self.buffer.extend(rows)
        return batch

    def sample(self, batch: TensorDictBase) -> TensorDictBase:
        """``process_optim_batch``: a minibatch drawn from the buffer (``batch`` is ignored)."""
        sub = self.buffer.sample(self.batch_size) if self.batch_size is not None else self.buffer.sample()
        return sub if self.device is None else sub.to(self.device)

    def update_priority(self, losses: TensorDictBase, minibatch: TensorDictBase) -> None:
        """``post_loss``: update the priorities of the sampled rows from the TD error the loss wrote."""
        self.buffer.update_tensordict_priority(minibatch)

    def state_dict(self) -> dict[str, Any]:
        """The buffer's state (contents, writer and sampler positions)."""
        return self.buffer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the buffer's state."""
        self.buffer.load_state_dict(state)

    def register(self, trainer: Trainer, name: str = "replay_buffer") -> ReplayBufferHook:
        """Register the hooks on ``trainer`` and the buffer in its checkpoints (under ``name``)."""
        trainer.register_op("batch_process", self.extend)
        trainer.register_op("process_optim_batch", self.sample)
        if self._prioritized:
            trainer.register_op("post_loss", self.update_priority)
        trainer.register_module(name, self)
        return self
