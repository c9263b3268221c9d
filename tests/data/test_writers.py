"""Writers: round-robin cursor bookkeeping and the max-value writer's top-k."""

from __future__ import annotations

import torch
from tensordict import TensorDict

from rlkernel.data import LazyTensorStorage, RoundRobinWriter, TensorDictMaxValueWriter, TensorDictReplayBuffer


def _scored(scores, start=0):
    scores = torch.as_tensor(scores, dtype=torch.float32)
    n = scores.numel()
    return TensorDict({"id": torch.arange(start, start + n), "next": {"reward": scores.unsqueeze(-1)}}, [n])


def test_max_value_writer_keeps_the_top_k():
    gen = torch.Generator().manual_seed(0)
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(16), writer=TensorDictMaxValueWriter())
    everything = []
    written = 0
    for n in (5, 9, 1, 30, 7, 16, 3):
        scores = torch.randint(0, 40, (n,), generator=gen).float()  # ties on purpose
        everything += list(zip(scores.tolist(), range(written, written + n)))
        index = rb.extend(_scored(scores, start=written))
        assert index.unique().numel() == index.numel()
        written += n
        kept = sorted(rb[:]["next", "reward"].view(-1).tolist(), reverse=True)
        best = sorted((s for s, _ in everything), reverse=True)[:16]
        assert kept == best
        assert (rb[index]["id"] >= written - n).all()  # the rows returned hold this batch's items


def test_max_value_writer_ties_keep_the_stored_row_and_add_reports_rejection():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(2), writer=TensorDictMaxValueWriter(reduction="max"))
    assert rb.extend(_scored([1.0, 2.0])).tolist() == [0, 1]
    assert rb.add(_scored([1.0], start=10)[0]) == -1  # a tie with the lowest: not kept
    assert rb.add(_scored([5.0], start=11)[0]) == 0
    assert sorted(rb[:]["id"].tolist()) == [1, 11]
    assert rb.extend(_scored([0.0, 0.5], start=20)).numel() == 0


def test_max_value_writer_returns_rows_in_input_order():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(4), writer=TensorDictMaxValueWriter())
    rb.extend(_scored([4.0, 3.0, 2.0, 1.0]))
    index = rb.extend(_scored([0.0, 10.0, 2.5, 20.0], start=10))
    assert rb[index]["id"].tolist() == [11, 13]  # 2.5 ranks below the kept 3.0 and 4.0


def test_round_robin_writer_directly_on_a_storage():
    storage = LazyTensorStorage(3)
    writer = RoundRobinWriter()
    writer.register_storage(storage)
    assert writer.extend(torch.zeros(2, 1)).tolist() == [0, 1]
    assert writer.add(torch.ones(1)) == 2
    assert writer.extend(torch.full((2, 1), 2.0)).tolist() == [0, 1]
    assert storage.cursor == 2 and len(storage) == 3
    assert storage[:].view(-1).tolist() == [2.0, 2.0, 1.0]
