"""Batched environments: ``N`` copies of an environment stepped as one.

* :class:`SerialEnv` steps them one after another in this process;
* :class:`ParallelEnv` runs each in a worker process and exchanges data through shared
  memory, reporting any worker failure as a :class:`~rlkernel.errors.WorkerError`.

Both have batch size ``(N, *sub_batch_size)`` and the sub-environment's specs expanded
along the new leading dim.
"""

from rlkernel.envs.batched.parallel import ParallelEnv
from rlkernel.envs.batched.serial import SerialEnv

__all__ = ["ParallelEnv", "SerialEnv"]
