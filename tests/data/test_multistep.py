"""MultiStep against a plain Python loop, on random data with terminations and truncations."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from rlkernel.data import MultiStep
from rlkernel.data.errors import BufferError


def _random_rollouts(batch=(3,), steps=17, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shape = (*batch, steps)
    terminated = torch.rand(shape, generator=gen) < 0.12
    truncated = (torch.rand(shape, generator=gen) < 0.08) & ~terminated
    return TensorDict(
        {
            "observation": torch.randn(*shape, 4, generator=gen),
            "next": {
                "observation": torch.randn(*shape, 4, generator=gen),
                "reward": torch.randn(*shape, 1, generator=gen),
                "terminated": terminated.unsqueeze(-1),
                "truncated": truncated.unsqueeze(-1),
                "done": (terminated | truncated).unsqueeze(-1),
            },
        },
        list(shape),
    )


def _reference(td, gamma, n):
    """The n-step transitions, one trajectory and one step at a time."""
    flat = td.reshape(-1, td.batch_size[-1])
    out = []
    for trajectory in flat.unbind(0):
        steps = trajectory.batch_size[0]
        rows = []
        for t in range(steps):
            total, m = 0.0, 0
            while True:
                total += gamma**m * float(trajectory["next", "reward"][t + m])
                m += 1
                if bool(trajectory["next", "done"][t + m - 1]) or m == n or t + m == steps:
                    break
            last = trajectory[t + m - 1]
            rows.append(
                {
                    "reward": total,
                    "steps": m,
                    "discount": gamma**m,
                    "observation": last["next", "observation"],
                    "terminated": bool(last["next", "terminated"]),
                    "truncated": bool(last["next", "truncated"]),
                }
            )
        out.append(rows)
    return out


@pytest.mark.parametrize(("gamma", "n", "batch"), [(0.9, 3, (3,)), (0.5, 1, (2,)), (0.99, 5, (2, 2)), (1.0, 30, (1,))])
def test_matches_the_python_loop(gamma, n, batch):
    td = _random_rollouts(batch=batch, seed=n)
    out = MultiStep(gamma, n)(td)
    reference = _reference(td, gamma, n)
    flat = out.reshape(-1, td.batch_size[-1])
    for b, rows in enumerate(reference):
        for t, row in enumerate(rows):
            got = flat[b, t]
            assert float(got["next", "reward"]) == pytest.approx(row["reward"], rel=1e-5, abs=1e-6)
            assert int(got["steps_to_next_obs"]) == row["steps"]
            assert float(got["next", "discount"]) == pytest.approx(row["discount"], rel=1e-6)
            assert torch.equal(got["next", "observation"], row["observation"])
            assert bool(got["next", "terminated"]) == row["terminated"]
            assert bool(got["next", "truncated"]) == row["truncated"]
            assert bool(got["next", "done"]) == (row["terminated"] or row["truncated"])
    assert torch.equal(out["next", "original_reward"], td["next", "reward"])
    assert torch.equal(out["observation"], td["observation"])


def test_input_is_unchanged_and_shapes_are_kept():
    td = _random_rollouts()
    before = td.clone()
    out = MultiStep(0.9, 4)(td)
    assert (td == before).all()
    assert out["steps_to_next_obs"].shape == td["next", "done"].shape
    assert out["next", "discount"].shape == td["next", "reward"].shape


def test_terminated_and_truncated_are_told_apart():
    # one episode truncated at step 1, then one terminated at step 3
    td = TensorDict(
        {
            "next": {
                "observation": torch.arange(1.0, 5.0).unsqueeze(-1),
                "reward": torch.ones(4, 1),
                "terminated": torch.tensor([[False], [False], [False], [True]]),
                "truncated": torch.tensor([[False], [True], [False], [False]]),
            }
        },
        [4],
    )
    out = MultiStep(0.5, 3)(td)
    assert out["steps_to_next_obs"].view(-1).tolist() == [2, 1, 2, 1]
    assert out["next", "truncated"].view(-1).tolist() == [True, True, False, False]
    assert out["next", "terminated"].view(-1).tolist() == [False, False, True, True]
    assert out["next", "observation"].view(-1).tolist() == [2.0, 2.0, 4.0, 4.0]
    assert out["next", "reward"].view(-1).tolist() == [1.5, 1.0, 1.5, 1.0]


def test_errors():
    with pytest.raises(BufferError, match="n_steps must be a positive int"):
        MultiStep(0.9, 0)
    with pytest.raises(BufferError, match=r"gamma must be a number in \[0, 1\]"):
        MultiStep(1.5, 2)
    with pytest.raises(BufferError, match=r"no \('next', 'reward'\) entry"):
        MultiStep(0.9, 2)(TensorDict({"next": {"done": torch.zeros(3, 1, dtype=torch.bool)}}, [3]))
    with pytest.raises(BufferError, match="none of"):
        MultiStep(0.9, 2)(TensorDict({"next": {"reward": torch.zeros(3, 1)}}, [3]))
    with pytest.raises(BufferError, match="last batch dimension is time"):
        MultiStep(0.9, 2)(TensorDict({"next": {"reward": torch.zeros(1)}}, []))
