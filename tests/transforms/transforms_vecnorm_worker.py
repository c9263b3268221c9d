"""Worker code for the VecNorm sharing tests (imported by the spawned children)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from rlkernel.testing import CartPoleEnv
from rlkernel.transforms import TransformedEnv, VecNorm


def run_and_record(env: Any, steps: int) -> torch.Tensor:
    """Take ``steps`` random steps (resetting finished episodes) and return, as float64 rows,
    every raw observation a VecNorm inside ``env`` saw: resets and next observations."""
    td = env.reset()
    seen = [td["observation"].reshape(-1, td["observation"].shape[-1])]
    for _ in range(steps):
        td, root = env.step_and_maybe_reset(env.rand_action(td))
        seen.append(td["next", "observation"].reshape(-1, seen[0].shape[-1]))
        done = td["next", "done"].reshape(-1)
        if bool(done.any()):
            seen.append(root["observation"].reshape(-1, seen[0].shape[-1])[done])
        td = root
    return torch.cat(seen).double()


def cartpole_worker(shared: TensorDictBase, lock: Any, steps: int, seed: int, results: Any) -> None:
    """Random cart-pole steps through a VecNorm on the shared statistics; report what went in
    as ``(count, sum, sum_of_squares)`` on the ``results`` queue."""
    torch.set_num_threads(1)

    env = TransformedEnv(
        CartPoleEnv(),
        VecNorm(out_keys=["normalized"], decay=1.0, shared_data=shared, lock=lock),
    )
    env.set_seed(seed)
    seen = run_and_record(env, steps)
    results.put((seen.shape[0], seen.sum(0).tolist(), seen.square().sum(0).tolist()))


def normalized_cartpole(shared_data: TensorDictBase, lock: Any = None) -> Any:
    """A ParallelEnv factory: the core's cart-pole whose VecNorm writes the shared statistics."""
    torch.set_num_threads(1)

    return TransformedEnv(
        CartPoleEnv(), VecNorm(out_keys=["normalized"], decay=1.0, shared_data=shared_data, lock=lock)
    )
