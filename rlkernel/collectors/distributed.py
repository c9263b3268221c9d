"""Collection over ``torch.distributed``: rank 0 learns, ranks 1..N collect.

Every rank of a ``torchrun`` job builds the same :class:`DistributedDataCollector`; rank 0
(the learner) iterates over it, the others serve it with :meth:`~DistributedDataCollector.run`::

    collector = DistributedDataCollector(make_env, policy, frames_per_batch=2000, total_frames=200_000)
    if collector.is_learner:
        for batch in collector:              # (N, *env.batch_size, T): one slice per collector rank
            train(policy, batch)
            collector.update_policy_weights_()
    else:
        collector.run()                      # returns when the learner stops
    collector.shutdown()

launched with ``torchrun --nproc_per_node=3 --standalone script.py`` (see
``docs/distributed.md`` for several nodes).

Protocol. At start-up every rank checks that its policy has the same weight layout
(``all_gather_object`` on a gloo control group); the learner broadcasts its weights; each
collector rank builds its :class:`~rlkernel.collectors.SyncDataCollector`, collects a first
batch and sends its layout (keys, dtypes, shapes) to the learner, which checks that they
agree. Then, per batch, the learner broadcasts a command ``[collect|stop, weights_version]``
on the control group; if the version changed, the weights follow as one flat
``dist.broadcast``; each collector rank collects ``frames_per_batch / N`` frames and sends
them as one flat byte tensor (``dist.send``/``dist.recv``). Collection is lock-step: a batch
asked for after :meth:`update_policy_weights_` is collected entirely with the new weights.

Backends: ``"nccl"`` when CUDA is available (batches and weights travel as CUDA tensors
on ``cuda:LOCAL_RANK``), ``"gloo"`` otherwise; the control group is always gloo.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from tensordict import TensorDict, TensorDictBase
from torch import nn

from rlkernel.collectors.base import DataCollectorBase, check_frames, split_frames
from rlkernel.collectors.errors import CollectorError
from rlkernel.collectors.flat import FlatLayout
from rlkernel.collectors.multi import WORKER_KEY
from rlkernel.collectors.sync import SyncDataCollector, make_env
from rlkernel.collectors.trajectories import split_trajectories
from rlkernel.errors import WorkerError

__all__ = ["DistributedDataCollector"]

_STOP, _COLLECT = 0, 1


class DistributedDataCollector(DataCollectorBase):
    """A learner (rank 0) and collector ranks (1..N) over ``torch.distributed``.

    Args:
        create_env_fn: an environment factory (called on collector ranks only).
        policy: the policy; every rank builds it the same way (same weight layout). The
            learner's weights are the ones used: broadcast at start-up and by
            :meth:`update_policy_weights_`.

    Keyword Args:
        frames_per_batch: frames per batch handed to the learner, all collector ranks
            together (a multiple of ``N * env.numel``).
        total_frames: frames in all (a multiple of ``frames_per_batch``), ``-1`` for no end.
        backend: ``"gloo"`` or ``"nccl"`` (default: nccl if CUDA is available, else gloo);
            used only when this collector initialises the process group.
        timeout: seconds any collective may wait (the process group's timeout).
        split_trajs, postproc: applied on the learner to each assembled batch.
        seed: collector rank ``r`` seeds torch with ``seed + r`` and its env with
            ``seed + r * env.numel``.
        **collector_kwargs: passed to each collector rank's ``SyncDataCollector``
            (``init_random_frames`` is per collector rank there).

    The process group is initialised from torchrun's environment variables unless one
    exists already; :meth:`shutdown` destroys it only if this collector made it.
    """

    def __init__(
        self,
        create_env_fn: Callable[..., Any],
        policy: Any = None,
        *,
        frames_per_batch: int,
        total_frames: int = -1,
        backend: str | None = None,
        timeout: float = 300.0,
        split_trajs: bool = False,
        postproc: Callable[[TensorDictBase], TensorDictBase] | None = None,
        seed: int | None = None,
        **collector_kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        self.frames_per_batch, self.total_frames = check_frames(frames_per_batch, total_frames, owner=owner)
        self._frames = 0
        self._iteration = 0
        self._stopped = False
        self._owns_group = not dist.is_initialized()
        if self._owns_group:
            if backend is None:
                backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout))
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        if self.world_size < 2:
            raise CollectorError(f"{owner}: needs at least 2 ranks (a learner and a collector), got {self.world_size}")
        self.num_collectors = self.world_size - 1
        per_rank = split_frames(
            self.frames_per_batch, self.num_collectors, "the number of collector ranks", owner=owner
        )
        self.device = self._comm_device()
        self._control = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout))
        self.policy = policy
        self.split_trajs, self.postproc = bool(split_trajs), postproc
        self._version = 0
        self._sent_version = 0
        self._weights, self._weights_layout, self._weights_flat = self._agree_on_weights(owner)
        self._collector: SyncDataCollector | None = None
        self._batch_ready = False
        if self.is_learner:
            self._layout = self._receive_layouts(owner)
            self._recv = [self._layout.empty(self.device) for _ in range(self.num_collectors)]
        else:
            self._start_collecting(create_env_fn, per_rank, seed, collector_kwargs)

    @property
    def is_learner(self) -> bool:
        """Whether this rank is the learner (rank 0)."""
        return self.rank == 0

    def _comm_device(self) -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")

    # ------------------------------------------------------------------ start-up
    def _agree_on_weights(self, owner: str) -> tuple[TensorDictBase | None, FlatLayout | None, torch.Tensor | None]:
        weights = TensorDict.from_module(self.policy).data if isinstance(self.policy, nn.Module) else None
        layout = FlatLayout.of(weights) if weights is not None else None
        mine = layout.describe() if layout is not None else None
        every: list[Any] = [None] * self.world_size
        dist.all_gather_object(every, mine, group=self._control)
        if any(other != every[0] for other in every):
            differing = [r for r, other in enumerate(every) if other != every[0]]
            raise CollectorError(f"{owner}: the policy's weights differ in layout on rank(s) {differing} and rank 0")
        if layout is None:
            return None, None, None
        flat = layout.empty(self.device)
        if self.is_learner:
            layout.pack(weights, flat)
        dist.broadcast(flat, src=0)
        if not self.is_learner:
            weights.update_(layout.unpack(flat))
        return weights, layout, flat

    def _start_collecting(self, create_env_fn: Any, frames: int, seed: int | None, kwargs: dict) -> None:
        report: Any
        try:
            env, _ = make_env(create_env_fn, None, owner=f"collector rank {self.rank}")
            env_seed = None
            if seed is not None:  # before the collector's first reset
                torch.manual_seed(seed + self.rank)
                env_seed = seed + self.rank * env.numel
            collector = SyncDataCollector(env, self.policy, frames_per_batch=frames, seed=env_seed, **kwargs)
            collector._owns_env = True
            collector._stepper.set_traj_layout(self.rank - 1, self.num_collectors)
            self._collector = collector
            first = collector._collect()
            self._layout = FlatLayout.of(first)
            self._send = self._layout.empty(self.device)
            self._batch_ready = True
            report = ("ok", self._layout)
        except Exception as exc:  # reported to the learner, then raised here
            report = ("error", f"{type(exc).__name__}: {exc}")
            dist.gather_object(report, None, dst=0, group=self._control)
            raise
        dist.gather_object(report, None, dst=0, group=self._control)

    def _receive_layouts(self, owner: str) -> FlatLayout:
        reports: list[Any] = [None] * self.world_size
        dist.gather_object(None, reports, dst=0, group=self._control)
        failed = [(rank, r[1]) for rank, r in enumerate(reports) if rank and r[0] == "error"]
        if failed:
            self._broadcast_command(_STOP)
            self._stopped = True
            rank, message = failed[0]
            err = WorkerError(f"{owner}: collector rank {rank} failed at start-up: {message}")
            err.worker_index = rank  # type: ignore[attr-defined]
            raise err
        layouts = [r[1] for r in reports[1:]]
        if any(layout.describe() != layouts[0].describe() for layout in layouts):
            self._broadcast_command(_STOP)
            self._stopped = True
            raise CollectorError(f"{owner}: the collector ranks produce batches of different layouts")
        return layouts[0]

    # ------------------------------------------------------------------ learner side
    def _broadcast_command(self, command: int) -> torch.Tensor:
        message = torch.tensor([command, self._version], dtype=torch.int64)
        dist.broadcast(message, src=0, group=self._control)
        return message

    def _next_batch(self) -> TensorDictBase:
        if not self.is_learner:
            raise CollectorError(f"{type(self).__name__}: only the learner (rank 0) iterates; call run() here")
        if self._stopped:
            raise CollectorError(f"{type(self).__name__} is shut down")
        self._broadcast_command(_COLLECT)
        if self._version != self._sent_version:
            self._layout_pack_weights()
            dist.broadcast(self._weights_flat, src=0)  # type: ignore[arg-type]
            self._sent_version = self._version
        requests = [dist.irecv(buf, src=rank + 1) for rank, buf in enumerate(self._recv)]
        for request in requests:
            request.wait()
        batch = torch.stack([self._layout.unpack(buf) for buf in self._recv], 0)  # a copy
        shape = (self.num_collectors, *[1] * (batch.batch_dims - 1))
        ranks = torch.arange(1, self.world_size, device=batch.device).reshape(shape)
        batch.set(WORKER_KEY, ranks.expand(batch.batch_size).clone())
        self._frames += self.frames_per_batch
        self._iteration += 1
        if self.split_trajs:
            batch = split_trajectories(batch)
        if self.postproc is not None:
            batch = self.postproc(batch)
        return batch

    def _layout_pack_weights(self) -> None:
        assert self._weights_layout is not None and self._weights_flat is not None
        self._weights_layout.pack(TensorDict.from_module(self.policy).data, self._weights_flat)

    def update_policy_weights_(self, weights: Any = None) -> None:
        """Send the learner's current weights with the next batch request (learner only).

        ``weights`` (a TensorDict from ``TensorDict.from_module``) is loaded into the
        learner's ``policy`` first when given.
        """
        if not self.is_learner:
            raise CollectorError(f"{type(self).__name__}.update_policy_weights_ is called on the learner (rank 0)")
        if self._weights is None:
            if weights is not None:
                raise CollectorError(f"{type(self).__name__}: the policy is not an nn.Module; it has no weights")
            return
        if weights is not None:
            TensorDict.from_module(self.policy).data.update_(weights)
        self._version += 1

    # ------------------------------------------------------------------ collector side
    def run(self) -> None:
        """Serve the learner until it stops (collector ranks only)."""
        if self.is_learner:
            raise CollectorError(f"{type(self).__name__}.run is for collector ranks; the learner iterates")
        collector = self._collector
        assert collector is not None
        message = torch.zeros(2, dtype=torch.int64)
        while True:
            dist.broadcast(message, src=0, group=self._control)
            command, version = int(message[0]), int(message[1])
            if command == _STOP:
                self._stopped = True
                return
            if version != self._version:
                dist.broadcast(self._weights_flat, src=0)  # type: ignore[arg-type]
                self._weights.update_(self._weights_layout.unpack(self._weights_flat))  # type: ignore[union-attr]
                self._version = version
                self._batch_ready = False  # the pre-collected batch used the old weights
            if not self._batch_ready:
                collector._collect()
            self._batch_ready = False
            assert collector._stepper.buffer is not None
            self._layout.pack(collector._stepper.buffer.data, self._send)
            dist.send(self._send, dst=0)
            self._frames += collector.frames_per_batch
            self._iteration += 1

    # ------------------------------------------------------------------ shut-down
    def shutdown(self) -> None:
        """Stop the collector ranks (learner) or close the env (collector); idempotent.

        The process group is destroyed if this collector initialised it.
        """
        if self.is_learner and not self._stopped and dist.is_initialized():
            self._stopped = True
            self._broadcast_command(_STOP)
        if self._collector is not None:
            self._collector.shutdown()
            self._collector = None
        if self._owns_group and dist.is_initialized():
            self._owns_group = False
            dist.destroy_process_group()
