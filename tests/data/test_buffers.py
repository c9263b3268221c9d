"""Replay buffers: every storage x sampler x writer combination that makes sense,
iteration, transforms, prefetching."""

from __future__ import annotations

import gc
import itertools
import threading
import time

import pytest
import torch
from buffer_helpers import assert_consistent, row_ids, transitions
from tensordict import TensorDict

from rlkernel.data import (
    LazyMemmapStorage,
    LazyTensorStorage,
    ListStorage,
    PrioritizedSampler,
    RandomSampler,
    ReplayBuffer,
    RoundRobinWriter,
    SamplerWithoutReplacement,
    SliceSampler,
    TensorDictMaxValueWriter,
    TensorDictReplayBuffer,
)
from rlkernel.data.errors import BufferError

SIZE = 20


def _storage(kind, tmp_path):
    if kind == "list":
        return ListStorage(SIZE)
    if kind == "tensor":
        return LazyTensorStorage(SIZE)
    return LazyMemmapStorage(SIZE, scratch_dir=tmp_path / "mm")


def _sampler(kind):
    return {
        "random": RandomSampler(),
        "without": SamplerWithoutReplacement(),
        "prioritized": PrioritizedSampler(SIZE, alpha=0.8, beta=0.4),
        "slice": SliceSampler(slice_len=4, traj_key="traj"),
    }[kind]


COMBINATIONS = [
    (storage, sampler, writer)
    for storage, sampler, writer in itertools.product(
        ["list", "tensor", "memmap"], ["random", "without", "prioritized", "slice"], ["round_robin", "max_value"]
    )
    # a list storage has no columns (slices) and no ranks (max value)
    if not (storage == "list" and (sampler == "slice" or writer == "max_value"))
    # slices need rows in write order
    and not (sampler == "slice" and writer == "max_value")
]


@pytest.mark.parametrize(("storage_kind", "sampler_kind", "writer_kind"), COMBINATIONS)
def test_combination(tmp_path, storage_kind, sampler_kind, writer_kind):
    writer = RoundRobinWriter() if writer_kind == "round_robin" else TensorDictMaxValueWriter(rank_key="id")
    rb = TensorDictReplayBuffer(
        storage=_storage(storage_kind, tmp_path), sampler=_sampler(sampler_kind), writer=writer, batch_size=8
    )
    written = 0
    for n in (6, 9, 12):
        data = transitions(n, start=written)
        data["traj"] = torch.arange(written, written + n) // 6
        index = rb.extend(data)
        if writer_kind == "round_robin":
            assert index.tolist() == [(written + i) % SIZE for i in range(n)]
        written += n
    assert len(rb) == SIZE
    stored = set(row_ids(rb[:]))
    if writer_kind == "max_value":
        assert stored == set(range(written - SIZE, written))  # the top ids
    sizes = itertools.cycle([8, 8, 4]) if sampler_kind == "without" else itertools.repeat(8)
    for size in itertools.islice(sizes, 5):
        batch, info = rb.sample(return_info=True)
        assert batch.batch_size == torch.Size([size])
        assert set(row_ids(batch)) <= stored
        assert_consistent(batch)
        assert torch.equal(batch["index"], info["index"])
        assert torch.equal(rb[info["index"]]["id"], batch["id"])
    if sampler_kind == "prioritized":
        assert batch["_weight"].shape == (8,)
        rb.update_priority(info["index"], torch.rand(8))
    if sampler_kind == "slice":
        traj = batch["traj"].view(2, 4)
        assert (traj == traj[:, :1]).all()
        assert (batch["id"].view(2, 4).diff(dim=1) == 1).all()


@pytest.mark.parametrize("storage_kind", ["list", "tensor", "memmap"])
def test_plain_buffer_with_each_storage(tmp_path, storage_kind):
    rb = ReplayBuffer(storage=_storage(storage_kind, tmp_path), batch_size=5)
    data = torch.arange(30).view(15, 2)
    assert rb.extend(data if storage_kind != "list" else list(data)).tolist() == list(range(15))
    assert rb.add(torch.tensor([100, 101])) == 15
    sample, info = rb.sample(return_info=True)
    assert sample.shape == (5, 2)
    assert (sample[:, 1] == sample[:, 0] + 1).all()
    assert set(info) == {"index"}


def test_iteration_without_replacement_yields_each_item_once_per_epoch():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(50), sampler=SamplerWithoutReplacement(), batch_size=7)
    rb.extend(transitions(33))
    for _ in range(3):
        seen = [i for batch in rb for i in row_ids(batch)]
        assert sorted(seen) == list(range(33))
    dropped = TensorDictReplayBuffer(
        storage=LazyTensorStorage(50), sampler=SamplerWithoutReplacement(drop_last=True), batch_size=7
    )
    dropped.extend(transitions(33))
    sizes = [batch.numel() for batch in dropped]
    assert sizes == [7, 7, 7, 7]


def test_sampler_without_replacement_in_order_and_new_rows_join_next_epoch():
    rb = ReplayBuffer(storage=LazyTensorStorage(50), sampler=SamplerWithoutReplacement(shuffle=False), batch_size=4)
    rb.extend(torch.arange(10))
    assert rb.sample().tolist() == [0, 1, 2, 3]
    rb.extend(torch.arange(10, 12))
    assert rb.sample().tolist() == [4, 5, 6, 7]
    assert rb.sample().tolist() == [8, 9]
    assert rb.sampler.ran_out
    assert sorted(torch.cat(list(rb)).tolist()) == list(range(12))


def test_iteration_with_an_infinite_sampler_goes_on():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), batch_size=3)
    rb.extend(transitions(10))
    assert len(list(itertools.islice(rb, 25))) == 25


def test_transform_is_applied_at_sampling():
    calls = []

    def transform(td):
        calls.append(td.batch_size)
        return td.set("double", td["observation"] * 2)

    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), transform=transform, batch_size=4)
    rb.extend(transitions(10))
    assert calls == []  # not at writing
    batch = rb.sample()
    torch.testing.assert_close(batch["double"], batch["observation"] * 2)
    assert "double" not in rb[:].keys()
    plain = ReplayBuffer(storage=LazyTensorStorage(10), transform=lambda x: x + 1000)
    plain.extend(torch.arange(5))
    assert (plain.sample(4) >= 1000).all()


def test_collate_fn_is_used():
    rb = ReplayBuffer(storage=ListStorage(10), collate_fn=lambda items: ("collated", sorted(items)))
    rb.extend([3, 1, 2])
    tag, items = rb.sample(5)
    assert tag == "collated" and len(items) == 5 and set(items) <= {1, 2, 3}


def test_empty_resets_everything():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), sampler=PrioritizedSampler(10, 0.6, 0.4))
    rb.extend(transitions(8))
    rb.update_priority(torch.arange(8), torch.ones(8) * 7)
    rb.empty()
    assert len(rb) == 0 and rb.storage.cursor == 0
    assert rb.sampler.priorities().sum() == 0
    assert rb.extend(transitions(2)).tolist() == [0, 1]


# -- prefetch --------------------------------------------------------------------------
def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "rlkernel-prefetch"]


def test_prefetch_serves_batches_and_closes():
    before = len(_prefetch_threads())
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(100), batch_size=8, prefetch=3)
    assert len(_prefetch_threads()) == before + 1
    rb.extend(transitions(100))
    deadline = time.monotonic() + 5
    while len(rb._prefetcher._ready) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(rb._prefetcher._ready) == 3
    for _ in range(20):
        batch = rb.sample()
        assert batch.batch_size == (8,)
        assert_consistent(batch)
    assert rb.sample(5).batch_size == (5,)  # another size: drawn directly
    rb.close()
    assert len(_prefetch_threads()) == before
    assert rb.sample().batch_size == (8,)  # still works, without the thread


def test_prefetch_never_returns_a_batch_older_than_a_write():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), batch_size=4, prefetch=4)
    with rb:
        for step in range(30):
            rb.extend(transitions(10, start=10 * step))
            for _ in range(3):
                batch = rb.sample()
                # every row comes from the latest write: nothing stale
                assert min(row_ids(batch)) >= 10 * step
                assert torch.equal(rb[batch["index"]]["id"], batch["id"])


def test_prefetch_keeps_epochs_exact_across_writes():
    rb = ReplayBuffer(storage=LazyTensorStorage(100), sampler=SamplerWithoutReplacement(), batch_size=5, prefetch=3)
    with rb:
        rb.extend(torch.arange(40))
        time.sleep(0.05)
        first = rb.sample().tolist()
        time.sleep(0.05)  # let the thread draw ahead
        rb.extend(torch.arange(40, 45))  # discards and rolls back the drawn-ahead batches
        rest = [i for batch in itertools.takewhile(lambda _: True, rb) for i in batch.tolist()]
        assert sorted(first + rest) == list(range(40))


def test_prefetch_errors_surface_at_sample():
    def broken(td):
        raise ValueError("transform broke")

    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), batch_size=2, prefetch=2, transform=broken)
    with rb:
        rb.extend(transitions(5))
        with pytest.raises(ValueError, match="transform broke"):
            rb.sample()


def test_prefetch_thread_stops_when_the_buffer_is_collected():
    before = len(_prefetch_threads())
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), batch_size=2, prefetch=2)
    rb.extend(transitions(5))
    rb.sample()
    thread = _prefetch_threads()[-1]
    del rb
    gc.collect()
    thread.join(5)
    assert not thread.is_alive() and len(_prefetch_threads()) == before


def test_prefetch_needs_a_batch_size():
    with pytest.raises(BufferError, match="prefetch needs the buffer's batch_size"):
        ReplayBuffer(storage=LazyTensorStorage(10), prefetch=2)


def test_state_is_what_was_delivered_with_prefetch():
    rb = ReplayBuffer(storage=LazyTensorStorage(20), sampler=SamplerWithoutReplacement(), batch_size=4, prefetch=2)
    with rb:
        rb.extend(torch.arange(20))
        delivered = rb.sample().tolist()
        time.sleep(0.05)
        state = rb.state_dict()
    assert state["sampler"]["queue"].numel() == 16
    assert not set(delivered) & set(state["sampler"]["queue"].tolist())


def test_add_returns_the_row():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(3))
    rows = [rb.add(transitions(1, start=i)[0]) for i in range(5)]
    assert rows == [0, 1, 2, 0, 1]
    assert row_ids(rb[:]) == [3, 4, 2]
    trajectory = TensorDict({"obs": torch.zeros(5, 2)}, [5])
    traj_rb = TensorDictReplayBuffer(storage=LazyTensorStorage(3))
    assert traj_rb.add(trajectory) == 0
    assert traj_rb.sample(2).batch_size == (2, 5)
