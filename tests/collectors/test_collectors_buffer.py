"""RolloutBuffer: the NumPy write of CPU buffers and the torch write agree, and each takes
what the other cannot (arrays, tensors needing grad, dtypes NumPy lacks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from rlkernel.collectors.buffer import NEXT_PART, PARTIAL_AND_NEXT, ROOT, RolloutBuffer


def _template(batch: tuple[int, ...], dtype: torch.dtype = torch.float32) -> TensorDict:
    return TensorDict(
        {
            "observation": torch.zeros(*batch, 3, dtype=dtype),
            "action": torch.zeros(batch, dtype=torch.int64),
            "next": {
                "observation": torch.zeros(*batch, 3, dtype=dtype),
                "done": torch.zeros(*batch, 1, dtype=torch.bool),
            },
        },
        batch,
    )


@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
def test_numpy_and_torch_writes_fill_the_same_slots(batch):
    steps = 4
    fast = RolloutBuffer(_template(batch), steps, len(batch))
    assert fast._arrays is not None  # a CPU buffer of NumPy dtypes takes the NumPy write
    slow = RolloutBuffer(_template(batch), steps, len(batch))
    slow._arrays = None  # the torch write
    gen = torch.Generator().manual_seed(0)
    for t in range(steps):
        root = [torch.randn(*batch, 3, generator=gen), torch.randint(0, 5, batch, generator=gen)]
        nxt = [torch.randn(*batch, 3, generator=gen), torch.rand(*batch, 1, generator=gen) > 0.5]
        for buf in (fast, slow):
            buf.write(t, root, ROOT)
            buf.write(t, nxt, NEXT_PART)
        assert torch.equal(fast.data["observation"].select(len(batch), t), root[0])
    assert (fast.data == slow.data).all()


def test_numpy_arrays_and_tensors_mix_in_one_write():
    buf = RolloutBuffer(_template(()), 3, 0)
    obs = torch.arange(3.0)
    buf.write(1, [torch.ones(3), torch.tensor(4), obs.numpy(), np.array([True])], PARTIAL_AND_NEXT)
    assert buf.data["next", "observation"][1].tolist() == [0.0, 1.0, 2.0]
    assert buf.data["action"][1].item() == 4 and bool(buf.data["next", "done"][1])


def test_values_numpy_cannot_take_go_through_torch():
    buf = RolloutBuffer(_template(()), 2, 0)
    needs_grad = torch.full((3,), 2.0, requires_grad=True)
    with torch.no_grad():
        buf.write(0, [needs_grad, torch.tensor(1)], ROOT)
    assert buf.data["observation"][0].tolist() == [2.0, 2.0, 2.0]
    assert not buf.data["observation"].requires_grad


def test_a_dtype_numpy_lacks_uses_the_torch_write():
    buf = RolloutBuffer(_template((), torch.bfloat16), 2, 0)
    assert buf._arrays is None
    buf.write(1, [torch.full((3,), 1.5, dtype=torch.bfloat16), torch.tensor(2)], ROOT)
    assert buf.data["observation"][1].tolist() == [1.5, 1.5, 1.5]
    buf.write(1, [np.full(3, 0.5, dtype=np.float32), np.array(np.int64(1))], ROOT)  # arrays too
    assert buf.data["observation"][1].tolist() == [0.5, 0.5, 0.5]


def test_wrong_shape_and_missing_values_still_raise():
    buf = RolloutBuffer(_template(()), 2, 0)
    with pytest.raises(RuntimeError):
        buf.write(0, [torch.zeros(2), torch.tensor(1)], ROOT)
    with pytest.raises((TypeError, RuntimeError)):
        buf.write(0, [None, torch.tensor(1)], ROOT)
