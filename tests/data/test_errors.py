"""Bad input fails at the call that brought it, with an rlkernel error naming what was wrong."""

from __future__ import annotations

import pytest
import torch
from buffer_helpers import transitions
from tensordict import TensorDict

from rlkernel.data import (
    LazyMemmapStorage,
    LazyTensorStorage,
    ListStorage,
    RandomSampler,
    ReplayBuffer,
    SamplerWithoutReplacement,
    TensorDictMaxValueWriter,
    TensorDictReplayBuffer,
)
from rlkernel.data.errors import BufferError, EmptyBufferError, StorageError
from rlkernel.errors import RLKernelError


@pytest.fixture(params=["tensor", "memmap"])
def filled(request, tmp_path):
    storage = LazyTensorStorage(10) if request.param == "tensor" else LazyMemmapStorage(10, scratch_dir=tmp_path)
    rb = TensorDictReplayBuffer(storage=storage)
    rb.extend(transitions(4))
    return rb


def test_errors_are_rlkernel_errors():
    for cls in (BufferError, EmptyBufferError, StorageError):
        assert issubclass(cls, RLKernelError) and issubclass(cls, ValueError)


def test_missing_key(filled):
    data = transitions(2).exclude(("next", "reward"))
    with pytest.raises(StorageError, match=r"key \('next', 'reward'\) is missing from the data"):
        filled.extend(data)
    assert len(filled) == 4


def test_extra_key(filled):
    data = transitions(2).set("extra", torch.zeros(2))
    with pytest.raises(StorageError, match="key 'extra' is not in the storage"):
        filled.extend(data)


def test_wrong_shape(filled):
    data = transitions(2).set("observation", torch.zeros(2, 5))
    with pytest.raises(
        StorageError,
        match=r"key 'observation': the storage holds rows of shape \(3,\) and dtype torch.float32, "
        r"got rows of shape \(5,\) and dtype torch.float32",
    ):
        filled.extend(data)


def test_wrong_dtype(filled):
    data = transitions(2)
    data["next", "done"] = data["next", "done"].float()
    with pytest.raises(StorageError, match=r"key \('next', 'done'\): .*dtype torch.bool, got .*dtype torch.float32"):
        filled.extend(data)
    assert len(filled) == 4 and filled.storage.cursor == 4


def test_same_keys_in_another_order_are_fine(filled):
    data = transitions(2, start=4)
    reordered = TensorDict({k: data[k] for k in reversed(list(data.keys()))}, [2])
    assert filled.extend(reordered).tolist() == [4, 5]
    assert filled[5]["id"] == 5


def test_not_a_tensordict():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10))
    with pytest.raises(StorageError, match=r"TensorDictReplayBuffer\.extend takes a TensorDict, got Tensor"):
        rb.extend(torch.zeros(3))
    plain = ReplayBuffer(storage=LazyTensorStorage(10))
    with pytest.raises(StorageError, match=r"expected a torch\.Tensor or a TensorDict, got list"):
        plain.extend([1, 2])
    plain.extend(torch.zeros(3, 2))
    with pytest.raises(StorageError, match="this storage holds tensors, got TensorDict"):
        plain.extend(transitions(2))
    with pytest.raises(StorageError, match="got a 0-d tensor"):
        plain.extend(torch.tensor(1.0))
    with pytest.raises(StorageError, match="batch_size=\\[\\]"):
        TensorDictReplayBuffer(storage=LazyTensorStorage(4)).extend(transitions(1)[0])


def test_sampling_an_empty_buffer():
    for storage in (ListStorage(5), LazyTensorStorage(5)):
        rb = ReplayBuffer(storage=storage, batch_size=2)
        with pytest.raises(EmptyBufferError, match="cannot sample from an empty ReplayBuffer: extend it first"):
            rb.sample()
        with pytest.raises(EmptyBufferError, match="cannot iterate over an empty ReplayBuffer"):
            iter(rb)


def test_missing_batch_size():
    rb = ReplayBuffer(storage=LazyTensorStorage(5))
    rb.extend(torch.arange(3))
    with pytest.raises(BufferError, match="sample\\(\\) needs a batch_size"):
        rb.sample()
    with pytest.raises(BufferError, match="iterating over a replay buffer needs its batch_size"):
        iter(rb)
    with pytest.raises(BufferError, match="batch_size must be a positive int, got 0"):
        rb.sample(0)
    with pytest.raises(BufferError, match=r"batch_size must be a positive int, got 2\.5"):
        ReplayBuffer(batch_size=2.5)


def test_bad_parts():
    with pytest.raises(BufferError, match="storage must be a Storage, got list"):
        ReplayBuffer(storage=[])
    with pytest.raises(BufferError, match="sampler must be a Sampler, got RoundRobinWriter"):
        from rlkernel.data import RoundRobinWriter

        ReplayBuffer(sampler=RoundRobinWriter())
    with pytest.raises(BufferError, match="writer must be a Writer, got RandomSampler"):
        ReplayBuffer(writer=RandomSampler())
    with pytest.raises(BufferError, match="transform must be callable, got int"):
        ReplayBuffer(transform=3)
    with pytest.raises(StorageError, match="max_size must be a positive int, got 0"):
        LazyTensorStorage(0)
    with pytest.raises(BufferError, match="prefetch must be a non-negative int"):
        ReplayBuffer(batch_size=2, prefetch=-1)


def test_transform_returning_none():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(5), transform=lambda td: None)
    rb.extend(transitions(3))
    with pytest.raises(BufferError, match="returned None instead of the batch"):
        rb.sample(2)


def test_drop_last_with_too_few_rows():
    rb = ReplayBuffer(storage=LazyTensorStorage(5), sampler=SamplerWithoutReplacement(drop_last=True))
    rb.extend(torch.arange(3))
    with pytest.raises(BufferError, match="cannot make a batch of 4 from 3 rows"):
        rb.sample(4)


def test_max_value_writer_errors():
    with pytest.raises(BufferError, match="needs a tensor storage"):
        TensorDictReplayBuffer(storage=ListStorage(4), writer=TensorDictMaxValueWriter())
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(4), writer=TensorDictMaxValueWriter(rank_key="score"))
    with pytest.raises(StorageError, match="has no rank key 'score'"):
        rb.extend(transitions(2))
    with pytest.raises(BufferError, match="reduction must be one of"):
        TensorDictMaxValueWriter(reduction="prod")
