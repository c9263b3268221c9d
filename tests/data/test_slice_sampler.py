"""SliceSampler: contiguous slices of trajectories, across the circular wrap."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from rlkernel.data import LazyMemmapStorage, LazyTensorStorage, ListStorage, SliceSampler, TensorDictReplayBuffer
from rlkernel.data.errors import BufferError

EPISODES = [3, 7, 2, 9, 5, 4, 6]  # 36 steps into 20 rows: steps 16..35 remain


def _episodes(lengths=EPISODES, *, last_done=True):
    step, episode, done = [], [], []
    for number, length in enumerate(lengths):
        step.extend(range(len(step), len(step) + length))
        episode.extend([number] * length)
        done.extend([False] * (length - 1) + [True])
    if not last_done:
        done[-1] = False
    n = len(step)
    return TensorDict(
        {
            "step": torch.tensor(step),
            "episode": torch.tensor(episode),
            "obs": torch.tensor(step, dtype=torch.float32).unsqueeze(-1),
            "next": {
                "done": torch.tensor(done).unsqueeze(-1),
                "truncated": torch.zeros(n, 1, dtype=torch.bool),
            },
        },
        [n],
    )


def _buffer(sampler, storage=None):
    rb = TensorDictReplayBuffer(storage=storage or LazyTensorStorage(20), sampler=sampler)
    rb.extend(_episodes())
    assert rb.storage.cursor == 16 and len(rb) == 20
    return rb


@pytest.mark.parametrize("by", ["done", "traj_key"])
def test_slices_stay_in_one_trajectory_across_the_wrap(tmp_path, by):
    torch.manual_seed(0)
    sampler = SliceSampler(slice_len=5) if by == "done" else SliceSampler(slice_len=5, traj_key="episode")
    rb = _buffer(sampler, LazyMemmapStorage(20, scratch_dir=tmp_path / by))
    crossed_wrap = False
    seen_episodes = set()
    for _ in range(50):
        batch = rb.sample(20)
        steps, episodes, rows = (batch[k].view(4, 5) for k in ("step", "episode", "index"))
        assert (steps.diff(dim=1) == 1).all()
        assert (episodes == episodes[:, :1]).all()
        assert (steps >= 16).all()
        seen_episodes.update(episodes[:, 0].tolist())
        crossed_wrap |= bool(((rows[:, :-1] == 19) & (rows[:, 1:] == 0)).any())
    # episode 3 (steps 16..20) wraps from row 19 to row 0; episode 5 has 4 steps only
    assert seen_episodes == {3, 4, 6}
    assert crossed_wrap


def test_slice_end_flags():
    rb = _buffer(SliceSampler(num_slices=2))
    batch = rb.sample(10)
    truncated = batch["next", "truncated"].view(2, 5)
    assert truncated[:, -1].all() and not truncated[:, :-1].any()
    done = batch["next", "done"].view(2, 5)
    assert done[:, -1].all()
    # the stored flags are unchanged
    assert not rb[:]["next", "truncated"].any()


def test_trajectories_in_write_order():
    rb = _buffer(SliceSampler(slice_len=2))
    starts, lengths, order = rb.sampler.trajectories(rb.storage)
    assert order.tolist() == [16, 17, 18, 19, *range(16)]
    assert lengths.tolist() == [5, 5, 4, 6]
    assert starts.tolist() == [0, 5, 10, 14]


def test_the_newest_trajectory_in_progress_ends_at_the_cursor():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), sampler=SliceSampler(slice_len=3))
    rb.extend(_episodes([4, 9], last_done=False))  # 13 steps into 10 rows
    starts, lengths, order = rb.sampler.trajectories(rb.storage)
    assert lengths.tolist() == [1, 9]  # the tail of episode 0, then episode 1 so far
    assert order[starts[1] + lengths[1] - 1] == 2  # ends at the newest row


def test_non_strict_length_allows_short_slices():
    torch.manual_seed(1)
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(40), sampler=SliceSampler(slice_len=6, strict_length=False))
    rb.extend(_episodes([2, 3, 8]))
    lengths = set()
    for _ in range(30):
        batch = rb.sample(18)
        ends = batch["next", "truncated"].view(-1).nonzero().view(-1)
        pieces = torch.tensor_split(batch["step"], (ends + 1)[:-1].tolist())
        assert sum(p.numel() for p in pieces) == batch.numel() <= 18
        for piece in pieces:
            assert (piece.diff() == 1).all() and piece.numel() <= 6
            lengths.add(piece.numel())
    assert lengths == {2, 3, 6}


def test_strict_length_skips_short_trajectories_and_errors_when_none_fits():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(40), sampler=SliceSampler(slice_len=4))
    rb.extend(_episodes([2, 3, 5]))
    for _ in range(10):
        assert (rb.sample(8)["episode"] == 2).all()
    short = TensorDictReplayBuffer(storage=LazyTensorStorage(40), sampler=SliceSampler(slice_len=6))
    short.extend(_episodes([2, 3, 5]))
    with pytest.raises(
        BufferError, match=r"none of the 3 stored trajectories has slice_len=6 steps \(the longest has 5\)"
    ):
        short.sample(12)


def test_argument_errors():
    with pytest.raises(BufferError, match="pass exactly one of num_slices and slice_len"):
        SliceSampler()
    with pytest.raises(BufferError, match="pass exactly one of num_slices and slice_len"):
        SliceSampler(num_slices=2, slice_len=3)
    with pytest.raises(BufferError, match="slice_len must be a positive int"):
        SliceSampler(slice_len=0)
    rb = _buffer(SliceSampler(slice_len=3))
    with pytest.raises(BufferError, match="batch_size 10 is not a multiple of slice_len 3"):
        rb.sample(10)
    rb = _buffer(SliceSampler(num_slices=3))
    with pytest.raises(BufferError, match="batch_size 10 is not a multiple of num_slices 3"):
        rb.sample(10)
    rb = _buffer(SliceSampler(slice_len=2, end_key=("next", "terminated")))
    with pytest.raises(BufferError, match=r"end_key \('next', 'terminated'\) is not in the storage"):
        rb.sample(4)
    rb = _buffer(SliceSampler(slice_len=2, traj_key="traj"))
    with pytest.raises(BufferError, match="traj_key 'traj' is not in the storage"):
        rb.sample(4)
    listed = TensorDictReplayBuffer(storage=ListStorage(10), sampler=SliceSampler(slice_len=2))
    listed.extend(_episodes([4]))
    with pytest.raises(BufferError, match="needs a tensor storage holding TensorDicts"):
        listed.sample(4)
