"""Replay buffers: storages, samplers and writers, composed as in TorchRL.

A TorchRL script ports by changing its imports::

    from rlkernel.data import (TensorDictReplayBuffer, LazyTensorStorage,
                               SamplerWithoutReplacement, PrioritizedSampler, SliceSampler)

Importing this package is cheap: each name is imported on first use.

>>> import torch
>>> from tensordict import TensorDict
>>> from rlkernel.data import TensorDictReplayBuffer, LazyTensorStorage
>>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(1000), batch_size=32)
>>> _ = rb.extend(TensorDict({"observation": torch.randn(100, 4)}, [100]))
>>> rb.sample()["observation"].shape
torch.Size([32, 4])
"""

from __future__ import annotations

from rlkernel.lazy import lazy_exports

# Public name -> module defining it.
_LAZY = {
    "ReplayBuffer": "rlkernel.data.replay_buffers",
    "TensorDictReplayBuffer": "rlkernel.data.replay_buffers",
    "PrioritizedReplayBuffer": "rlkernel.data.replay_buffers",
    "TensorDictPrioritizedReplayBuffer": "rlkernel.data.replay_buffers",
    "Storage": "rlkernel.data.storages",
    "ListStorage": "rlkernel.data.storages",
    "TensorStorage": "rlkernel.data.storages",
    "LazyTensorStorage": "rlkernel.data.storages",
    "LazyMemmapStorage": "rlkernel.data.storages",
    "Sampler": "rlkernel.data.samplers",
    "RandomSampler": "rlkernel.data.samplers",
    "SamplerWithoutReplacement": "rlkernel.data.samplers",
    "PrioritizedSampler": "rlkernel.data.samplers",
    "SliceSampler": "rlkernel.data.samplers",
    "Writer": "rlkernel.data.writers",
    "RoundRobinWriter": "rlkernel.data.writers",
    "TensorDictMaxValueWriter": "rlkernel.data.writers",
    "MultiStep": "rlkernel.data.multistep",
    "get_tree_kernel": "rlkernel.data.kernels",
    "BufferError": "rlkernel.data.errors",
    "BufferIndexError": "rlkernel.data.errors",
    "EmptyBufferError": "rlkernel.data.errors",
    "KernelError": "rlkernel.data.errors",
    "PriorityError": "rlkernel.data.errors",
    "StorageError": "rlkernel.data.errors",
}


__getattr__, __dir__, _ = lazy_exports(__name__, _LAZY, globals())


__all__ = sorted(_LAZY)
