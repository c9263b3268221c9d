"""Run by ``torchrun --nproc_per_node=3`` in ``test_collectors_distributed.py``.

Rank 0 learns, ranks 1 and 2 collect the core's cart-pole with a greedy MLP policy. The learner sets
its last layer so that the policy always picks action 0 before start-up (the collectors
must receive those weights), then after two batches switches it to action 1 and pushes the
update. It writes what it saw to the JSON file named by the first argument.
"""

from __future__ import annotations

import json
import sys
from functools import partial

import torch
from collectors_testing import cartpole, greedy_policy

from rlkernel.collectors import TRAJ_IDS_KEY
from rlkernel.collectors.distributed import DistributedDataCollector
from rlkernel.collectors.multi import WORKER_KEY


def set_last_layer(policy, bias):
    with torch.no_grad():
        policy.module[0][-1].weight.zero_()
        policy.module[0][-1].bias.copy_(torch.tensor(bias))


def main(out_path: str) -> None:
    torch.set_num_threads(1)
    policy = greedy_policy(seed=0)  # every rank builds the same architecture
    import torch.distributed as dist

    dist.init_process_group("gloo")
    if dist.get_rank() == 0:
        set_last_layer(policy, [1.0, 0.0])  # only the learner: collectors must get it at start-up
    collector = DistributedDataCollector(
        partial(cartpole, 2), policy, frames_per_batch=200, total_frames=800, seed=0, timeout=120
    )
    if collector.is_learner:
        report = {"batches": [], "world_size": collector.world_size}
        for i, batch in enumerate(collector):
            report["batches"].append(
                {
                    "shape": list(batch.batch_size),
                    "frames_per_rank": [int(batch[r].numel()) for r in range(batch.shape[0])],
                    "ranks": batch[WORKER_KEY][:, 0, 0].tolist(),
                    "action_mean": batch["action"].float().mean().item(),
                    "traj_ids": [sorted(set(batch[r][TRAJ_IDS_KEY].flatten().tolist())) for r in range(2)],
                }
            )
            if i == 1:
                set_last_layer(policy, [0.0, 1.0])
                collector.update_policy_weights_()
        report["frames"] = collector.frames
        with open(out_path, "w") as f:
            json.dump(report, f)
    else:
        collector.run()
    collector.shutdown()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
