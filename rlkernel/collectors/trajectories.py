"""Trajectory ids and :func:`split_trajectories`.

Every step a collector writes carries ``("collector", "traj_ids")``: an id per
sub-environment that changes each time that sub-environment starts an episode (after a
``done``, a truncation by ``max_frames_per_traj`` or a reset at the start of a batch). Ids
never repeat within a collector; the multi-process collectors interleave them across
workers (``id = local_id * num_workers + worker``) so that they never repeat there either.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.collectors.errors import CollectorError
from rlkernel.envs.step import NestedKey

__all__ = ["MASK_KEY", "TRAJ_IDS_KEY", "TrajectoryIds", "split_trajectories"]

TRAJ_IDS_KEY: tuple[str, str] = ("collector", "traj_ids")
MASK_KEY: tuple[str, str] = ("collector", "mask")


class TrajectoryIds:
    """The current trajectory id of each sub-environment, and the next free id.

    Args:
        batch_size: the environment's batch size.
        offset, stride: ids are ``local * stride + offset`` (``local`` = 0, 1, 2, ...).
        device: where the ids tensor lives.
    """

    def __init__(
        self, batch_size: torch.Size, *, offset: int = 0, stride: int = 1, device: torch.device | None = None
    ) -> None:
        self.batch_size = torch.Size(batch_size)
        self.offset = offset
        self.stride = stride
        self.device = device
        self.next_local = 0
        self.ids = torch.empty(self.batch_size, dtype=torch.int64, device=device)
        self.renew_all()

    def _take(self, count: int) -> torch.Tensor:
        start = self.next_local * self.stride + self.offset
        self.next_local += count
        return torch.arange(start, start + count * self.stride, self.stride, device=self.device)

    def renew_all(self) -> None:
        """Give every sub-environment a new id (a reset of the whole batch)."""
        self.ids.copy_(self._take(self.batch_size.numel()).reshape(self.batch_size))

    def renew(self, mask: torch.Tensor) -> None:
        """Give a new id to the sub-environments where ``mask`` (shape ``batch_size``) is set."""
        count = int(mask.sum())
        if count:
            self.ids[mask] = self._take(count)


def split_trajectories(
    batch: TensorDictBase,
    *,
    traj_key: NestedKey = TRAJ_IDS_KEY,
    mask_key: NestedKey = MASK_KEY,
) -> TensorDictBase:
    """Regroup a batch of shape ``(*env_batch, T)`` into ``[n_traj, max_len]``, zero padded.

    Row ``i`` holds the steps of the ``i``-th trajectory id in increasing order, in time
    order; ``mask_key`` is ``True`` on real steps and ``False`` on padding. A trajectory
    that runs over the batch boundary appears in both batches, cut at the boundary.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> batch = TensorDict({"x": torch.arange(5), ("collector", "traj_ids"): torch.tensor([0, 0, 0, 1, 1])}, [5])
    >>> out = split_trajectories(batch)
    >>> out["x"]
    tensor([[0, 1, 2],
            [3, 4, 0]])
    >>> out["collector", "mask"]
    tensor([[ True,  True,  True],
            [ True,  True, False]])
    """
    ids = batch.get(traj_key, None)
    if ids is None:
        raise CollectorError(
            f"split_trajectories: the batch has no trajectory ids at {traj_key!r} "
            f"(keys: {sorted(map(str, batch.keys(include_nested=True, leaves_only=True)))})"
        )
    flat = batch.reshape(-1)
    ids = flat.get(traj_key)
    uniques, inverse, counts = torch.unique(ids, return_inverse=True, return_counts=True)
    n_traj, max_len = int(uniques.numel()), int(counts.max()) if ids.numel() else 0
    position = torch.arange(ids.numel(), device=ids.device)
    first = torch.full((n_traj,), ids.numel(), dtype=torch.int64, device=ids.device)
    first = first.scatter_reduce(0, inverse, position, reduce="amin")
    step_in_traj = position - first[inverse]
    if bool((step_in_traj >= counts[inverse]).any()):
        raise CollectorError(
            "split_trajectories: a trajectory id appears in non-adjacent steps; "
            "the batch is not laid out as (*env_batch, T) with time last"
        )

    def pad(value: torch.Tensor) -> torch.Tensor:
        out = value.new_zeros((n_traj, max_len, *value.shape[1:]))
        out[inverse, step_in_traj] = value
        return out

    result = flat.apply(pad, batch_size=[n_traj, max_len])
    mask = torch.zeros((n_traj, max_len), dtype=torch.bool, device=ids.device)
    mask[inverse, step_in_traj] = True
    result.set(mask_key, mask)
    if not isinstance(result, TensorDict):
        result = result.to_tensordict()
    return result
