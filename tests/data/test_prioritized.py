"""Prioritized replay: sampling frequencies, importance weights, priority updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from buffer_helpers import assert_consistent, transitions

from rlkernel.data import (
    LazyTensorStorage,
    PrioritizedReplayBuffer,
    PrioritizedSampler,
    ReplayBuffer,
    TensorDictPrioritizedReplayBuffer,
    TensorDictReplayBuffer,
)
from rlkernel.data.errors import BufferError, PriorityError

# chi-square critical value, 7 degrees of freedom, p = 0.001
CHI2_7DOF_999 = 24.322


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sampling_frequencies_follow_priorities(dtype):
    torch.manual_seed(0)
    alpha, eps = 0.7, 1e-8
    priority = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.5, 6.0, 7.0, 8.0])
    rb = ReplayBuffer(storage=LazyTensorStorage(8), sampler=PrioritizedSampler(8, alpha, 0.5, eps, dtype))
    rb.extend(torch.arange(8))
    rb.update_priority(torch.arange(8), priority)
    draws = 200_000
    counts = torch.zeros(8)
    for _ in range(draws // 10_000):
        counts += torch.bincount(rb.sample(10_000), minlength=8)
    expected = (priority + eps) ** alpha
    expected = expected / expected.sum() * draws
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < CHI2_7DOF_999, (counts, expected)
    np.testing.assert_allclose(counts.numpy(), expected.numpy(), rtol=0.03)


def test_importance_weights_formula():
    torch.manual_seed(1)
    alpha, beta, eps = 0.6, 0.4, 1e-6
    rb = PrioritizedReplayBuffer(alpha=alpha, beta=beta, eps=eps, dtype=torch.float64, storage=LazyTensorStorage(16))
    rb.extend(torch.arange(10.0))
    priority = torch.rand(10, dtype=torch.float64) * 5
    rb.update_priority(torch.arange(10), priority)
    data, info = rb.sample(64, return_info=True)
    p = (priority + eps) ** alpha
    prob = p / p.sum()
    expected = (10 * prob[info["index"]]) ** -beta / ((10 * prob.min()) ** -beta)
    torch.testing.assert_close(info["_weight"], expected)
    assert torch.equal(data, info["index"].double())
    assert info["_weight"].max() <= 1.0


def test_new_rows_get_the_largest_priority_seen():
    sampler = PrioritizedSampler(10, alpha=0.5, beta=0.5, eps=0.0, dtype=torch.float64)
    rb = ReplayBuffer(storage=LazyTensorStorage(10), sampler=sampler)
    rb.extend(torch.arange(3))
    assert sampler.priorities(torch.arange(3)).tolist() == [1.0, 1.0, 1.0]
    rb.update_priority([0, 1], [9.0, 0.25])
    rb.extend(torch.arange(2))
    assert sampler.priorities().tolist()[:5] == [3.0, 0.5, 1.0, 3.0, 3.0]
    assert sampler.default_priority == 3.0


def test_sampling_never_picks_unwritten_rows():
    torch.manual_seed(2)
    rb = PrioritizedReplayBuffer(alpha=1.0, beta=1.0, storage=LazyTensorStorage(1000))
    rb.extend(torch.arange(37))
    assert rb.sample(5000).max() < 37


def test_update_priority_with_duplicates_last_wins_and_reduction():
    sampler = PrioritizedSampler(8, alpha=1.0, beta=0.5, eps=0.0, reduction="max")
    rb = ReplayBuffer(storage=LazyTensorStorage(8), sampler=sampler)
    rb.extend(torch.arange(8))
    rb.update_priority(torch.tensor([2, 5, 2]), torch.tensor([[1.0, 4.0], [2.0, 0.0], [3.0, 0.5]]))
    assert sampler.priorities(torch.tensor([2, 5])).tolist() == [3.0, 2.0]
    rb.update_priority(3, 0.5)  # one index, one number
    rb.update_priority([6, 7], 0.25)  # one number for several
    assert sampler.priorities(torch.tensor([3, 6, 7])).tolist() == [0.5, 0.25, 0.25]


@pytest.mark.parametrize(
    ("priority", "fragment"),
    [
        (torch.tensor([1.0, -0.5, 2.0]), r"priority -0.5 for index 6 \(position 1\) must be finite and >= 0"),
        (torch.tensor([1.0, 2.0, float("inf")]), r"priority inf for index 7 \(position 2\)"),
        (torch.tensor([float("nan"), 2.0, 1.0]), r"priority nan for index 5 \(position 0\)"),
    ],
)
def test_bad_priority_values_are_named(priority, fragment):
    rb = PrioritizedReplayBuffer(alpha=0.6, beta=0.4, storage=LazyTensorStorage(10))
    rb.extend(torch.arange(10))
    before = rb.sampler.priorities()
    with pytest.raises(PriorityError, match=fragment):
        rb.update_priority(torch.tensor([5, 6, 7]), priority)
    assert torch.equal(rb.sampler.priorities(), before)  # nothing was changed


def test_update_priority_index_errors():
    rb = PrioritizedReplayBuffer(alpha=0.6, beta=0.4, storage=LazyTensorStorage(10))
    rb.extend(torch.arange(4))
    with pytest.raises(PriorityError, match=r"3 indices but 2 priorities"):
        rb.update_priority(torch.tensor([0, 1, 2]), torch.tensor([1.0, 2.0]))
    with pytest.raises(PriorityError, match=r"index 4 \(position 1\) is out of range \[0, 4\)"):
        rb.update_priority(torch.tensor([0, 4]), torch.tensor([1.0, 2.0]))
    with pytest.raises(PriorityError, match=r"index -1 \(position 0\) is out of range"):
        rb.update_priority(torch.tensor([-1]), torch.tensor([1.0]))
    with pytest.raises(BufferError, match="must hold integers"):
        rb.update_priority(torch.tensor([0.5]), torch.tensor([1.0]))
    plain = ReplayBuffer(storage=LazyTensorStorage(4))
    with pytest.raises(BufferError, match="update_priority needs a PrioritizedSampler"):
        plain.update_priority([0], [1.0])


def test_all_zero_priorities_cannot_be_sampled():
    rb = ReplayBuffer(storage=LazyTensorStorage(4), sampler=PrioritizedSampler(4, alpha=1.0, beta=0.5, eps=0.0))
    rb.extend(torch.arange(4))
    rb.update_priority(torch.arange(4), torch.zeros(4))
    with pytest.raises(PriorityError, match=r"sum to 0\.0"):
        rb.sample(2)


def test_sampler_arguments_are_checked():
    with pytest.raises(BufferError, match="alpha must be a finite number >= 0"):
        PrioritizedSampler(4, alpha=-1, beta=0.5)
    with pytest.raises(BufferError, match="max_capacity must be a positive int"):
        PrioritizedSampler(0, alpha=1, beta=0.5)
    with pytest.raises(BufferError, match="reduction must be one of"):
        PrioritizedSampler(4, alpha=1, beta=0.5, reduction="prod")
    with pytest.raises(BufferError, match=r"max_capacity \(4\) is smaller than the storage's max_size \(8\)"):
        ReplayBuffer(storage=LazyTensorStorage(8), sampler=PrioritizedSampler(4, alpha=1, beta=0.5))


def test_tensordict_prioritized_buffer_reads_and_writes_priorities():
    torch.manual_seed(3)
    rb = TensorDictPrioritizedReplayBuffer(alpha=1.0, beta=0.5, eps=0.0, storage=LazyTensorStorage(10), batch_size=6)
    data = transitions(4)
    data["td_error"] = torch.tensor([0.0, 0.0, 4.0, 0.0])
    rb.extend(data)  # rows carrying the priority key get it
    batch = rb.sample()
    assert batch["index"].tolist() == [2] * 6
    assert_consistent(batch)
    batch["td_error"] = torch.full((6,), 2.0)
    rb.update_tensordict_priority(batch)
    assert rb.sampler.priorities(torch.tensor([2])).tolist() == [2.0]
    bad = transitions(2, start=4)
    bad["td_error"] = torch.tensor([1.0, -3.0])
    with pytest.raises(PriorityError, match=r"priority -3\.0 for row 1 of the data"):
        rb.extend(bad)
    assert len(rb) == 4  # rejected before anything was written
    with pytest.raises(BufferError, match="has no 'td_error' entry"):
        rb.update_tensordict_priority(rb.sample().exclude("td_error"))


def test_plain_prioritized_buffer_returns_weights_in_info():
    rb = PrioritizedReplayBuffer(alpha=0.7, beta=0.5, storage=LazyTensorStorage(20))
    rb.extend(torch.randn(20, 3))
    data, info = rb.sample(5, return_info=True)
    assert data.shape == (5, 3) and set(info) == {"_weight", "index"}


class _BaseInterfaceTree:
    """A tree kernel with only the required methods (no ``find_with_values`` or
    ``update_with``), delegating to another one: the sampler must fall back."""

    def __init__(self, tree):
        self._tree = tree
        for name in ("capacity", "dtype", "update", "get", "values", "total", "find_prefixsum", "min"):
            if hasattr(tree, name):
                setattr(self, name, getattr(tree, name))


def _draws(impl: str, dtype: torch.dtype, *, base_interface: bool = False) -> list[torch.Tensor]:
    torch.manual_seed(11)
    sampler = PrioritizedSampler(300, alpha=0.7, beta=0.5, dtype=dtype, kernel=impl)
    if base_interface:
        sampler._sum_tree = _BaseInterfaceTree(sampler._sum_tree)
        sampler._min_tree = _BaseInterfaceTree(sampler._min_tree)
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(300), sampler=sampler)
    out = []
    for step in range(30):
        rb.extend(transitions(int(torch.randint(1, 40, ())), start=step))
        batch = rb.sample(int(torch.randint(1, 64, ())))
        out += [batch["index"], batch["_weight"], batch["observation"]]
        priority = torch.rand(batch.shape[0]) * 3
        priority[0] = 0.0
        rb.update_priority(batch["index"], priority)
    return [*out, sampler.priorities()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_draws_with_every_kernel_and_without_the_optional_calls(dtype):
    from rlkernel.data.kernels import tree_kernel_names

    reference = _draws("torch", dtype)
    runs = [_draws(impl, dtype) for impl in tree_kernel_names("sum_tree")]
    runs += [_draws(impl, dtype, base_interface=True) for impl in ["torch", *tree_kernel_names("sum_tree")]]
    for run in runs:
        assert len(run) == len(reference)
        assert all(torch.equal(a, b) for a, b in zip(run, reference))
