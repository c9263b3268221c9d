"""TorchRL's side of ``bench_buffers``: run with the Python of a virtualenv holding TorchRL.

    .nox/reference/bin/python benchmarks/torchrl_buffers.py --capacity 1000000

Prints one JSON line: the same workloads as ``bench_buffers`` measures for rlkernel
(transitions/s for ``fill`` and ``sample``, iterations/s for ``prioritized``), or for a
workload that cannot run, the reason. Standalone on purpose: it imports only torch,
tensordict and torchrl.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from tensordict import TensorDict


def _transitions(n: int) -> TensorDict:
    return TensorDict(
        {
            "observation": torch.randn(n, 17),
            "action": torch.randn(n, 6),
            "reward": torch.randn(n, 1),
            "done": torch.zeros(n, 1, dtype=torch.bool),
            "next": {
                "observation": torch.randn(n, 17),
                "reward": torch.randn(n, 1),
                "done": torch.zeros(n, 1, dtype=torch.bool),
            },
        },
        [n],
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--sample-calls", type=int, default=2000)
    parser.add_argument("--loop-iterations", type=int, default=500)
    args = parser.parse_args()

    import torchrl
    from torchrl.data import LazyTensorStorage, TensorDictPrioritizedReplayBuffer, TensorDictReplayBuffer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    capacity = args.capacity
    result: dict[str, object] = {"torchrl": torchrl.__version__, "torch": torch.__version__}

    chunk = _transitions(1000)
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(capacity))
    start = time.perf_counter()
    for _ in range(capacity // 1000):
        rb.extend(chunk)
    result["fill"] = (capacity // 1000) * 1000 / (time.perf_counter() - start)

    for _ in range(20):
        rb.sample(256)
    start = time.perf_counter()
    for _ in range(args.sample_calls):
        rb.sample(256)
    result["sample"] = args.sample_calls * 256 / (time.perf_counter() - start)
    del rb

    try:
        prb = TensorDictPrioritizedReplayBuffer(alpha=0.7, beta=0.5, storage=LazyTensorStorage(capacity))
        big = _transitions(min(capacity, 100_000))
        for _ in range(max(1, capacity // big.numel())):
            prb.extend(big)
        small = _transitions(256)

        def step() -> None:
            prb.extend(small)
            batch = prb.sample(256)
            prb.update_priority(batch["index"], torch.rand(256))

        for _ in range(10):
            step()
        start = time.perf_counter()
        for _ in range(args.loop_iterations):
            step()
        result["prioritized"] = args.loop_iterations / (time.perf_counter() - start)
    except Exception as err:  # TorchRL's C++ extension may not load with this torch
        result["prioritized"] = None
        result["prioritized_error"] = f"{type(err).__name__}: {err}"
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
