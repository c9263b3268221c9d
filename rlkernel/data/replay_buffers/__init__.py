"""Replay buffers: :class:`ReplayBuffer`, :class:`TensorDictReplayBuffer` and their
prioritized variants."""

from rlkernel.data.replay_buffers.replay_buffer import ReplayBuffer
from rlkernel.data.replay_buffers.tensordict_buffers import (
    PrioritizedReplayBuffer,
    TensorDictPrioritizedReplayBuffer,
    TensorDictReplayBuffer,
)

__all__ = ["PrioritizedReplayBuffer", "ReplayBuffer", "TensorDictPrioritizedReplayBuffer", "TensorDictReplayBuffer"]
