"""Storages: layouts, exact index bookkeeping on wrap-around, memory-mapped reopening."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from buffer_helpers import assert_consistent, row_ids, transitions
from tensordict import TensorDict

from rlkernel.data import (
    LazyMemmapStorage,
    LazyTensorStorage,
    ListStorage,
    ReplayBuffer,
    TensorDictReplayBuffer,
)
from rlkernel.data.errors import BufferIndexError, StorageError

REPO = Path(__file__).resolve().parents[2]


def _storages(tmp_path, size):
    return {
        "list": ListStorage(size),
        "tensor": LazyTensorStorage(size),
        "memmap": LazyMemmapStorage(size, scratch_dir=tmp_path / "mm"),
    }


@pytest.mark.parametrize("kind", ["list", "tensor", "memmap"])
def test_round_robin_wrap_around_indices(tmp_path, kind):
    storage = _storages(tmp_path, 10)[kind]
    rb = TensorDictReplayBuffer(storage=storage)
    expected_rows: dict[int, int] = {}
    written = 0
    for n in [3, 4, 5, 9, 1, 10, 2]:
        batch = transitions(n, start=written)
        if kind == "list":
            index = rb.extend(batch)  # a list storage stores the rows one by one
        else:
            index = rb.extend(batch)
        assert index.tolist() == [(written + i) % 10 for i in range(n)]
        for i in range(n):
            expected_rows[(written + i) % 10] = written + i
        written += n
        assert len(rb) == min(written, 10)
        assert storage.cursor == written % 10
    for row, ident in expected_rows.items():
        item = rb[row]
        assert int(item["id"]) == ident


@pytest.mark.parametrize("kind", ["tensor", "memmap"])
def test_batch_larger_than_storage_keeps_the_last_rows(tmp_path, kind):
    storage = _storages(tmp_path, 4)[kind]
    rb = TensorDictReplayBuffer(storage=storage)
    rb.extend(transitions(3))
    index = rb.extend(transitions(10, start=3))
    assert index.tolist() == [3, 0, 1, 2, 3, 0, 1, 2, 3, 0]
    assert storage.cursor == 1 and len(rb) == 4
    assert row_ids(rb[:]) == [12, 9, 10, 11]
    assert_consistent(rb[:])


def test_tensor_storage_getitem_forms():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(8))
    rb.extend(transitions(6))
    assert int(rb[2]["id"]) == 2 and rb[2].batch_size == torch.Size([])
    assert int(rb[-1]["id"]) == 5
    assert row_ids(rb[1:4]) == [1, 2, 3]
    assert row_ids(rb[torch.tensor([5, 0])]) == [5, 0]
    assert row_ids(rb[[4, 4]]) == [4, 4]
    with pytest.raises(BufferIndexError, match="row 6 is out of range"):
        rb[6]
    with pytest.raises(BufferIndexError, match=r"row 7 is out of range \[0, 6\)"):
        rb[torch.tensor([1, 7])]
    with pytest.raises(BufferIndexError, match="must hold integers"):
        rb[torch.tensor([0.5])]


def test_plain_tensor_storage():
    rb = ReplayBuffer(storage=LazyTensorStorage(5), batch_size=3)
    assert rb.extend(torch.arange(12.0).view(6, 2)).tolist() == [0, 1, 2, 3, 4, 0]
    assert rb[0].tolist() == [10.0, 11.0]
    assert rb.add(torch.tensor([-1.0, -2.0])) == 1
    assert rb.sample().shape == (3, 2)
    with pytest.raises(StorageError, match=r"rows of shape \(2,\) and dtype torch.float32, got rows of shape \(3,\)"):
        rb.extend(torch.zeros(2, 3))


def test_storage_set_checks_index_and_rows():
    storage = LazyTensorStorage(4)
    storage.set([0, 1], torch.zeros(2, 3))
    assert len(storage) == 2
    storage.set(torch.tensor([3]), torch.ones(1, 3))
    assert len(storage) == 4
    with pytest.raises(BufferIndexError, match=r"row 4 is out of range \[0, 4\)"):
        storage.set([4], torch.zeros(1, 3))
    with pytest.raises(StorageError, match="2 indices for 1 rows"):
        storage.set([0, 1], torch.zeros(1, 3))


def test_trajectory_rows_keep_their_batch_shape():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10))
    td = TensorDict({"obs": torch.randn(4, 7, 2)}, [4, 7])
    assert rb.extend(td).tolist() == [0, 1, 2, 3]
    assert rb.sample(5).batch_size == torch.Size([5, 7])
    with pytest.raises(StorageError, match="rows of batch shape"):
        rb.extend(TensorDict({"obs": torch.randn(4, 7, 2)}, [4]))


def test_packed_rows_read_back_exactly_and_contiguous():
    """Leaves sharing a buffer: scalar, flat and multi-dimensional rows, written from
    non-contiguous tensors, from tensors requiring grad (the per-leaf copy path) and with
    the keys in another order, read back exactly, each leaf contiguous."""
    n = 6
    first = TensorDict(
        {
            "scalar": torch.arange(n, dtype=torch.float32),
            "grid": torch.arange(n * 6, dtype=torch.float32).view(n, 2, 3),
            "flat": torch.arange(n * 4, dtype=torch.float32).view(4, n).t(),  # not contiguous
            "flag": torch.arange(n) % 2 == 0,
            "next": {"grid": -torch.arange(n * 6, dtype=torch.float32).view(n, 3, 2)},
        },
        [n],
    )
    needs_grad = first.clone()
    needs_grad["grid"] = needs_grad["grid"].clone().requires_grad_(True)
    reordered = TensorDict({k: first[k] + 100 if k != "flag" else first[k] for k in reversed(list(first.keys()))}, [n])
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(20))
    rb.extend(first)
    rb.extend(needs_grad)
    rb.extend(reordered)
    got = rb[torch.arange(3 * n)]
    for key in first.keys(include_nested=True, leaves_only=True):
        expected = torch.cat([first[key], needs_grad[key].detach(), reordered[key]])
        assert torch.equal(got[key].detach(), expected), key
        assert got[key].is_contiguous() and got[key].shape == expected.shape, key


@pytest.mark.parametrize("make", [lambda tmp: LazyTensorStorage(8), lambda tmp: LazyMemmapStorage(8, scratch_dir=tmp)],
                         ids=["tensor", "memmap"])
def test_stored_data_carries_no_autograd_graph(make, tmp_path):
    weight = torch.ones(3, requires_grad=True)
    rb = TensorDictReplayBuffer(storage=make(tmp_path / "rb"), batch_size=4)
    rb.extend(TensorDict({"observation": torch.randn(5, 3) * weight, "reward": torch.ones(5, 1)}, [5]))
    rb.extend(TensorDict({"observation": torch.randn(1, 3) * weight, "reward": torch.ones(1, 1)}, [1]))
    batch = rb.sample()
    assert not batch["observation"].requires_grad and batch["observation"].grad_fn is None
    assert weight.grad is None


def test_list_storage_holds_any_object_and_collates():
    rb = ReplayBuffer(storage=ListStorage(3), batch_size=2)
    rb.extend([{"a": 1}, "x", 3.5])
    assert rb[1] == "x"
    rb.add(object())
    assert rb.writer.storage.cursor == 1
    numbers = ReplayBuffer(storage=ListStorage(5))
    numbers.extend([1, 2, 3])
    assert numbers.sample(4).dtype == torch.int64
    tensors = ReplayBuffer(storage=ListStorage(5))
    tensors.extend(torch.arange(6).view(3, 2))  # rows of a tensor are items
    assert tensors.sample(4).shape == (4, 2)
    with pytest.raises(StorageError, match="takes a list or tuple of items"):
        tensors.extend(5)


def test_memmap_storage_reopens_in_the_same_process(tmp_path):
    folder = tmp_path / "buffer"
    rb = TensorDictReplayBuffer(storage=LazyMemmapStorage(7, scratch_dir=folder))
    rb.extend(transitions(5))
    rb.extend(transitions(4, start=5))
    again = TensorDictReplayBuffer(storage=LazyMemmapStorage(7, scratch_dir=folder))
    assert len(again) == 7 and again.storage.cursor == 2
    assert row_ids(again[:]) == [7, 8, 2, 3, 4, 5, 6]
    assert_consistent(again[:])
    assert again.extend(transitions(1, start=9)).tolist() == [2]
    with pytest.raises(StorageError, match="holds a storage of max_size 7"):
        LazyMemmapStorage(8, scratch_dir=folder)


def test_memmap_storage_in_a_temporary_folder_is_removed():
    storage = LazyMemmapStorage(4)
    storage.set([0], torch.zeros(1, 2))
    folder = storage.scratch_dir
    assert (folder / "storage.json").exists()
    del storage
    import gc

    gc.collect()
    assert not folder.exists()


WRITER = textwrap.dedent(
    """
    import sys, time, torch
    from tensordict import TensorDict
    from rlkernel.data import TensorDictReplayBuffer, LazyMemmapStorage
    rb = TensorDictReplayBuffer(storage=LazyMemmapStorage(50, scratch_dir=sys.argv[1]))
    def batch(start, n):
        ids = torch.arange(start, start + n)
        return TensorDict({"id": ids, "obs": ids.float().unsqueeze(-1).expand(n, 4).clone(),
                           "next": {"done": (ids % 3 == 0).unsqueeze(-1)}}, [n])
    written = 0
    for n in (7, 13, 11, 9, 17, 4):
        rb.extend(batch(written, n))
        written += n
    print("WROTE", written, flush=True)
    if sys.argv[2] == "idle":
        time.sleep(600)
    while True:  # keep writing until killed
        rb.extend(batch(written, 5))
        written += 5
    """
)


def _write_then_kill(folder: Path, mode: str) -> int:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(folder), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("WROTE"), proc.stderr.read()
        if mode == "busy":
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return int(line.split()[1])


def test_memmap_storage_survives_sigkill(tmp_path):
    folder = tmp_path / "killed"
    written = _write_then_kill(folder, "idle")
    assert written == 61
    storage = LazyMemmapStorage(50, scratch_dir=folder)
    assert len(storage) == 50 and storage.cursor == 11
    rb = TensorDictReplayBuffer(storage=storage)
    # rows 11..49 hold ids 11..49, rows 0..10 the wrapped ids 50..60
    assert row_ids(rb[:]) == list(range(50, 61)) + list(range(11, 50))
    assert torch.equal(storage.column("obs")[:, 0], storage.column("id").float())
    assert torch.equal(storage.column(("next", "done"))[:, 0], storage.column("id") % 3 == 0)
    assert rb.extend(transitions(0)).numel() == 0 and len(rb) == 50


def test_memmap_storage_killed_while_writing(tmp_path):
    folder = tmp_path / "busy"
    _write_then_kill(folder, "busy")
    storage = LazyMemmapStorage(50, scratch_dir=folder)
    assert len(storage) == 50
    ids, obs, cursor = storage.column("id"), storage.column("obs"), storage.cursor
    newest = int(ids[(cursor - 1) % 50])
    assert newest >= 60 and (newest + 1 - 61) % 5 == 0  # whole writes only
    # The 5 rows at the cursor are the ones a write in progress was overwriting; every
    # other row holds the data of a completed write, in order.
    for back in range(45):
        row = (cursor - 1 - back) % 50
        assert int(ids[row]) == newest - back
        assert (obs[row] == newest - back).all()
