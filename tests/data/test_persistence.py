"""state_dict / load_state_dict (weights_only loadable) and dumps / loads (no pickle)."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from buffer_helpers import transitions

from rlkernel.data import (
    LazyMemmapStorage,
    LazyTensorStorage,
    ListStorage,
    PrioritizedSampler,
    ReplayBuffer,
    SamplerWithoutReplacement,
    TensorDictMaxValueWriter,
    TensorDictPrioritizedReplayBuffer,
    TensorDictReplayBuffer,
)
from rlkernel.data.errors import BufferError, StorageError


def _no_pickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)


def _prioritized(storage):
    rb = TensorDictPrioritizedReplayBuffer(alpha=0.7, beta=0.5, storage=storage, batch_size=4)
    rb.extend(transitions(9))
    rb.extend(transitions(5, start=9))  # wraps around max_size 12
    batch = rb.sample()
    rb.update_priority(batch["index"], torch.arange(4.0) + 0.5)
    return rb


def _assert_same(a, b):
    assert len(a) == len(b) and a.storage.cursor == b.storage.cursor
    left, right = a[:], b[:]
    assert (left == right).all()
    assert a.sampler.state_dict().keys() == b.sampler.state_dict().keys()
    for key, value in a.sampler.state_dict().items():
        other = b.sampler.state_dict()[key]
        assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other


@pytest.mark.parametrize("kind", ["tensor", "memmap"])
def test_state_dict_loads_with_weights_only(tmp_path, kind):
    def storage(name):
        return LazyTensorStorage(12) if kind == "tensor" else LazyMemmapStorage(12, scratch_dir=tmp_path / name)

    rb = _prioritized(storage("a"))
    torch.save(rb.state_dict(), tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    restored = TensorDictPrioritizedReplayBuffer(alpha=0.7, beta=0.5, storage=storage("b"), batch_size=4)
    restored.load_state_dict(state)
    _assert_same(rb, restored)
    assert torch.equal(rb.sampler.priorities(), restored.sampler.priorities())
    assert restored.extend(transitions(1, start=100)).tolist() == [2]


def test_dumps_loads_round_trip_without_pickle(tmp_path, monkeypatch):
    rb = _prioritized(LazyMemmapStorage(12, scratch_dir=tmp_path / "source"))
    rb.dumps(tmp_path / "dump")
    _no_pickle(monkeypatch)
    restored = TensorDictPrioritizedReplayBuffer(alpha=0.7, beta=0.5, storage=LazyTensorStorage(12))
    restored.loads(tmp_path / "dump")
    _assert_same(rb, restored)
    torch.manual_seed(5)
    first = rb.sample(50)["index"]
    torch.manual_seed(5)
    assert torch.equal(restored.sample(50)["index"], first)  # same priorities: same draws
    meta = json.loads((tmp_path / "dump" / "state.json").read_text())
    assert meta["format"] == "rlkernel.data.state"


def test_without_replacement_position_is_restored(tmp_path, monkeypatch):
    rb = ReplayBuffer(storage=LazyTensorStorage(30), sampler=SamplerWithoutReplacement(), batch_size=4)
    rb.extend(torch.arange(30))
    taken = [rb.sample() for _ in range(3)]
    rb.dumps(tmp_path / "dump")
    _no_pickle(monkeypatch)
    restored = ReplayBuffer(storage=LazyTensorStorage(30), sampler=SamplerWithoutReplacement(), batch_size=4)
    restored.loads(tmp_path / "dump")
    rest = torch.cat(list(restored)).tolist()
    assert torch.equal(torch.cat(list(rb)), torch.tensor(rest))
    assert sorted(torch.cat(taken).tolist() + rest) == list(range(30))


def test_max_value_writer_and_list_storage_round_trip(tmp_path, monkeypatch):
    ranked = TensorDictReplayBuffer(storage=LazyTensorStorage(5), writer=TensorDictMaxValueWriter(rank_key="id"))
    ranked.extend(transitions(8))
    listed = ReplayBuffer(storage=ListStorage(6))
    listed.extend([torch.ones(2), 3, "text", None, {"a": [1, 2.5]}, transitions(2)])
    ranked.dumps(tmp_path / "ranked")
    listed.dumps(tmp_path / "listed")
    _no_pickle(monkeypatch)
    ranked_back = TensorDictReplayBuffer(storage=LazyTensorStorage(5), writer=TensorDictMaxValueWriter(rank_key="id"))
    ranked_back.loads(tmp_path / "ranked")
    assert sorted(ranked_back[:]["id"].tolist()) == [3, 4, 5, 6, 7]
    ranked_back.extend(transitions(1, start=2))  # ranks rebuilt from the storage: rejected
    assert sorted(ranked_back[:]["id"].tolist()) == [3, 4, 5, 6, 7]
    ranked_back.extend(transitions(1, start=20))
    assert sorted(ranked_back[:]["id"].tolist()) == [4, 5, 6, 7, 20]
    listed_back = ReplayBuffer(storage=ListStorage(6))
    listed_back.loads(tmp_path / "listed")
    items = [listed_back[i] for i in range(6)]
    assert torch.equal(items[0], torch.ones(2)) and items[1:5] == [3, "text", None, {"a": [1, 2.5]}]
    assert (items[5] == transitions(2)).all()


def test_unsavable_items_are_reported(tmp_path):
    rb = ReplayBuffer(storage=ListStorage(3))
    rb.extend([1, object()])
    with pytest.raises(StorageError, match="ListStorage row 1 holds a object, which cannot be saved without pickle"):
        rb.dumps(tmp_path / "dump")


def test_loads_checks_the_folder_and_the_state(tmp_path):
    rb = ReplayBuffer(storage=LazyTensorStorage(4))
    with pytest.raises(BufferError, match="holds no saved state"):
        rb.loads(tmp_path / "missing")
    other = ReplayBuffer(storage=LazyTensorStorage(8))
    other.extend(torch.arange(3))
    other.dumps(tmp_path / "eight")
    with pytest.raises(StorageError, match="max_size 8 into a storage of max_size 4"):
        rb.loads(tmp_path / "eight")
    with pytest.raises(BufferError, match=r"expects a dict returned by ReplayBuffer\.state_dict"):
        rb.load_state_dict({"storage": {}})


def test_prioritized_state_needs_the_same_capacity():
    sampler = PrioritizedSampler(4, alpha=1.0, beta=1.0)
    with pytest.raises(BufferError, match="max_capacity 8 into a sampler of max_capacity 4"):
        sampler.load_state_dict(PrioritizedSampler(8, alpha=1.0, beta=1.0).state_dict())
