"""Data collectors: run a policy in environments and hand out batches of steps.

* :class:`SyncDataCollector` -- one environment, in this process.
* :class:`MultiSyncDataCollector` -- several worker processes, one batch from all of them.
* :class:`MultiaSyncDataCollector` -- several worker processes, each batch as soon as a
  worker has one.
* :mod:`rlkernel.collectors.distributed` -- collection over ``torch.distributed``
  (``torchrun``), imported on demand.

The names and arguments follow TorchRL, so a script ports by changing imports.
"""

from rlkernel.collectors.base import DataCollectorBase
from rlkernel.collectors.errors import CollectorError, CollectorLengthError
from rlkernel.collectors.multi import MultiaSyncDataCollector, MultiSyncDataCollector
from rlkernel.collectors.sync import SyncDataCollector
from rlkernel.collectors.trajectories import MASK_KEY, TRAJ_IDS_KEY, split_trajectories

__all__ = [
    "MASK_KEY",
    "TRAJ_IDS_KEY",
    "CollectorError",
    "CollectorLengthError",
    "DataCollectorBase",
    "MultiSyncDataCollector",
    "MultiaSyncDataCollector",
    "SyncDataCollector",
    "split_trajectories",
]
