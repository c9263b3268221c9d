"""Multi-process collectors: :class:`MultiSyncDataCollector` and :class:`MultiaSyncDataCollector`.

Each worker process runs its own :class:`~rlkernel.collectors.SyncDataCollector` over its
own environment with its own copy of the policy. The policy's weights live once, in shared
memory (``TensorDict.from_module(policy)`` cloned there and loaded into each worker's copy
with ``to_module``): :meth:`update_policy_weights_` copies the learner's current weights
into those tensors in place, and every worker acts with them from its next step.

Batches come back through shared memory too: each worker allocates its batch buffer there
once and afterwards only signals that it is full. The parent copies it out (the sync
collector into one stacked TensorDict, the async one into a clone), so a batch handed to
the learner is never overwritten by a worker.

>>> from functools import partial
>>> from rlkernel.testing import CountingEnv
>>> collector = MultiSyncDataCollector(
...     [partial(CountingEnv, batch_size=(2,))] * 2, frames_per_batch=16, total_frames=32)
>>> [tuple(b.batch_size) for b in collector]   # (workers, *env.batch_size, T)
[(2, 2, 4), (2, 2, 4)]
>>> collector.shutdown()
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.context import BaseContext
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from rlkernel.collectors.base import DataCollectorBase, check_frames, check_positive_int, split_frames
from rlkernel.collectors.errors import CollectorError
from rlkernel.collectors.processes import WorkerGroup, get_context
from rlkernel.collectors.trajectories import split_trajectories
from rlkernel.collectors.worker import WorkerSpec
from rlkernel.exploration import ExplorationType

__all__ = ["WORKER_KEY", "MultiSyncDataCollector", "MultiaSyncDataCollector"]

WORKER_KEY: tuple[str, str] = ("collector", "worker")


def _env_fns(create_env_fn: Any, num_workers: int | None, owner: str) -> list[Any]:
    if isinstance(create_env_fn, Sequence) and not isinstance(create_env_fn, str):
        fns = list(create_env_fn)
        if not fns:
            raise CollectorError(f"{owner}: create_env_fn is an empty list; give one factory per worker")
        if num_workers is not None and num_workers != len(fns):
            raise CollectorError(f"{owner}: num_workers={num_workers} but {len(fns)} env factories were given")
        return fns
    if num_workers is None:
        raise CollectorError(f"{owner}: give a list of env factories (one per worker) or num_workers")
    return [create_env_fn] * check_positive_int("num_workers", num_workers, owner=owner)


def _env_kwargs(create_env_kwargs: Any, num_workers: int, owner: str) -> list[dict[str, Any] | None]:
    if create_env_kwargs is None or isinstance(create_env_kwargs, Mapping):
        return [dict(create_env_kwargs) if create_env_kwargs else None] * num_workers
    kwargs = list(create_env_kwargs)
    if len(kwargs) != num_workers:
        raise CollectorError(f"{owner}: {len(kwargs)} create_env_kwargs for {num_workers} workers")
    return kwargs


class _MultiCollector(DataCollectorBase):
    """What the sync and async multi-process collectors share (see the two classes)."""

    def __init__(
        self,
        create_env_fn: Sequence[Callable[..., Any]] | Callable[..., Any],
        policy: Any = None,
        *,
        num_workers: int | None = None,
        frames_per_batch: int,
        total_frames: int = -1,
        create_env_kwargs: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        init_random_frames: int | None = 0,
        max_frames_per_traj: int | None = None,
        reset_at_each_iter: bool = False,
        split_trajs: bool = False,
        exploration_type: ExplorationType | None = ExplorationType.RANDOM,
        postproc: Callable[[TensorDictBase], TensorDictBase] | None = None,
        device: torch.device | str | None = None,
        env_device: torch.device | str | None = None,
        policy_device: torch.device | str | None = None,
        storing_device: torch.device | str | None = None,
        seed: int | None = None,
        mp_start_method: str | BaseContext = "spawn",
        timeout: float | None = 300.0,
    ) -> None:
        owner = type(self).__name__
        self._group: WorkerGroup | None = None
        fns = _env_fns(create_env_fn, num_workers, owner)
        self.num_workers = n = len(fns)
        self.frames_per_batch, self.total_frames = check_frames(frames_per_batch, total_frames, owner=owner)
        per_worker = self._worker_frames(owner)
        init_random_frames = check_positive_int(
            "init_random_frames", init_random_frames or 0, owner=owner, allow_zero=True
        )
        if postproc is not None and not callable(postproc):
            raise CollectorError(f"{owner}: postproc must be callable, got {type(postproc).__name__}")
        if timeout is not None and not timeout > 0:
            raise CollectorError(f"{owner}: timeout must be > 0 seconds or None, got {timeout!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise CollectorError(f"{owner}: seed must be an int or None, got {seed!r}")
        self.split_trajs = bool(split_trajs)
        self.postproc = postproc
        self.policy = policy
        self._frames = 0
        self._iteration = 0
        self._traj_next_local = [0] * n
        self._buffers: list[TensorDictBase | None] = [None] * n
        ctx = get_context(mp_start_method, owner)
        self._weights = self._share_weights(policy, policy_device if policy_device is not None else device)
        collector_kwargs = {
            "frames_per_batch": per_worker,
            "init_random_frames": -(-init_random_frames // n),
            "max_frames_per_traj": max_frames_per_traj,
            "reset_at_each_iter": reset_at_each_iter,
            "exploration_type": exploration_type,
            "device": device,
            "env_device": env_device,
            "policy_device": policy_device,
            "storing_device": storing_device,
            "return_same_td": True,
        }
        kwargs = _env_kwargs(create_env_kwargs, n, owner)
        specs = [WorkerSpec(i, n, fns[i], kwargs[i], policy, seed, collector_kwargs) for i in range(n)]
        self._group = WorkerGroup(owner, ctx, specs, self._weights, timeout)
        try:
            self._group.wait_all(range(n), "ready", "start-up")
        except BaseException:
            self.shutdown()
            raise

    def _worker_frames(self, owner: str) -> int:
        raise NotImplementedError

    @staticmethod
    def _share_weights(policy: Any, device: Any) -> TensorDictBase | None:
        if not isinstance(policy, nn.Module):
            return None
        weights = TensorDict.from_module(policy).data.clone()
        if device is not None:
            weights = weights.to(device)
        if weights.device is None or weights.device.type == "cpu":
            weights.share_memory_()
        return weights

    # ------------------------------------------------------------------ batches
    def _take(self, index: int, payload: tuple[TensorDictBase | None, int]) -> None:
        buffer, next_local = payload
        if buffer is not None:
            self._buffers[index] = buffer
        self._traj_next_local[index] = next_local

    def _finish(self, batch: TensorDictBase) -> TensorDictBase:
        self._frames += self.frames_per_batch
        self._iteration += 1
        if self.split_trajs:
            batch = split_trajectories(batch)
        if self.postproc is not None:
            batch = self.postproc(batch)
        return batch

    # ------------------------------------------------------------------ controls
    @property
    def _workers(self) -> WorkerGroup:
        if self._group is None:
            raise CollectorError(f"{type(self).__name__} has no workers")
        return self._group

    @property
    def worker_pids(self) -> list[int | None]:
        """The process id of each worker."""
        return self._workers.pids

    def update_policy_weights_(self, weights: Any = None) -> None:
        """Copy the learner's weights into the shared tensors the workers act with.

        ``weights``: a TensorDict (``TensorDict.from_module(policy)``) or a state dict; by
        default the current weights of the ``policy`` given to the constructor.
        """
        owner = type(self).__name__
        if self._weights is None:
            if weights is not None:
                raise CollectorError(f"{owner}: the policy is not an nn.Module; it has no weights to update")
            return
        if weights is None:
            source = TensorDict.from_module(self.policy).data
        elif isinstance(weights, TensorDictBase):
            source = weights
        elif isinstance(weights, Mapping):
            source = TensorDict(dict(weights), batch_size=[]).unflatten_keys(".")
        else:
            raise CollectorError(f"{owner}: weights must be a TensorDict or a state dict, got {type(weights).__name__}")
        try:
            self._weights.update_(source)
        except (KeyError, RuntimeError, ValueError) as err:
            raise CollectorError(f"{owner}: the weights do not fit the policy: {err}") from err

    def set_seed(self, seed: int) -> int:
        """Seed every worker: torch with ``seed + i``, its env with ``seed + i * env.numel``."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise CollectorError(f"{type(self).__name__}.set_seed expects an int, got {seed!r}")
        self._command_all(("seed", seed), "set_seed")
        return seed

    def _command_all(self, message: tuple, what: str) -> None:
        self._assert_idle(what)
        for index in range(self.num_workers):
            self._workers.send(index, message)
        self._workers.wait_all(range(self.num_workers), "ok", what)

    def _assert_idle(self, what: str) -> None:
        """Async collectors raise here while workers are collecting (see the subclass)."""

    def state_dict(self) -> dict[str, Any]:
        """Frames, iteration, each worker's next trajectory id and the shared policy weights.

        Loadable with ``torch.load(..., weights_only=True)``.
        """
        state: dict[str, Any] = {
            "frames": self._frames,
            "iteration": self._iteration,
            "traj_next_local": list(self._traj_next_local),
        }
        if self._weights is not None:
            state["policy_state_dict"] = self._weights.flatten_keys(".").to_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (before iterating, for the async collector)."""
        owner = type(self).__name__
        for key in ("frames", "iteration", "traj_next_local"):
            if key not in state:
                raise CollectorError(f"{owner}.load_state_dict: the state has no {key!r} entry")
        counters = list(state["traj_next_local"])
        if len(counters) != self.num_workers:
            raise CollectorError(
                f"{owner}.load_state_dict: {len(counters)} worker counters for {self.num_workers} workers"
            )
        self._assert_idle("load_state_dict")
        for index, value in enumerate(counters):
            self._workers.send(index, ("set_state", int(value)))
        self._workers.wait_all(range(self.num_workers), "ok", "load_state_dict")
        self._traj_next_local = [int(v) for v in counters]
        self._frames = int(state["frames"])
        self._iteration = int(state["iteration"])
        if "policy_state_dict" in state:
            self.update_policy_weights_(state["policy_state_dict"])

    def shutdown(self) -> None:
        """Stop the workers; returns within a few seconds. Calling it twice is harmless."""
        if self._group is not None:
            self._group.close()

    def __del__(self) -> None:
        group = getattr(self, "_group", None)
        if group is not None:
            group.close()


class MultiSyncDataCollector(_MultiCollector):
    """Collect each batch from all workers at once; batches of shape ``(W, *env.batch_size, T)``.

    Each of the ``W`` workers contributes ``frames_per_batch / W`` frames (so
    ``frames_per_batch`` must be a multiple of ``W * env.numel``). Workers collect only
    when a batch is asked for, so every step of a batch uses the weights in force when the
    batch started. ``("collector", "worker")`` says which worker made each step.

    Args:
        create_env_fn: a list of environment factories, one per worker, or one factory
            used by ``num_workers`` workers. Factories and the policy are sent to the
            workers with cloudpickle (lambdas work).
        policy: as for :class:`~rlkernel.collectors.SyncDataCollector`.

    Keyword Args:
        num_workers: the number of workers when ``create_env_fn`` is one factory.
        create_env_kwargs: one dict for every worker, or a list of dicts, one per worker.
        init_random_frames: random actions until this many frames were collected in all
            (each worker takes its share, rounded up).
        split_trajs, postproc: applied in this process to the assembled batch.
        seed: worker ``i`` seeds torch with ``seed + i`` and its environment with
            ``seed + i * env.numel`` (without a seed, workers seed torch from the OS).
        mp_start_method: a start-method name (default ``"spawn"``) or a context.
        timeout: seconds to wait for the workers before reporting them as hung (``None``:
            no limit). A worker that raises or dies is reported at once either way.
        The other arguments are passed to each worker's ``SyncDataCollector``.

    Trajectory ids are unique across workers: worker ``i`` numbers its trajectories
    ``i, i + W, i + 2W, ...``.
    """

    def _worker_frames(self, owner: str) -> int:
        return split_frames(self.frames_per_batch, self.num_workers, "the number of workers", owner=owner)

    def _next_batch(self) -> TensorDictBase:
        workers = self._workers
        every = range(self.num_workers)
        for index in every:
            workers.send(index, ("collect",))
        for index, payload in workers.wait_all(every, "batch", "collect").items():
            self._take(index, payload)
        batch = torch.stack([self._buffers[i] for i in every], 0)  # type: ignore[misc]
        shape = (self.num_workers, *[1] * (batch.batch_dims - 1))
        batch.set(WORKER_KEY, torch.arange(self.num_workers).reshape(shape).expand(batch.batch_size).clone())
        return self._finish(batch)


class MultiaSyncDataCollector(_MultiCollector):
    """Hand out each worker's batch as soon as it is full; batches of ``(*env.batch_size, T)``.

    Every worker collects ``frames_per_batch`` frames per batch and starts its next batch
    as soon as the previous one was copied out, so workers keep collecting while the
    learner trains: a weight update reaches them mid-batch (from their next step). Which
    worker made a batch is in ``batch["collector", "worker"]`` and in
    :attr:`last_worker`. Arguments as for :class:`MultiSyncDataCollector`, except that
    ``frames_per_batch`` is per batch of one worker.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._outstanding: list[int] = []
        self._ready: collections.deque[tuple[int, Any]] = collections.deque()
        self._requested = 0
        self._started = False
        self.last_worker: int | None = None
        super().__init__(*args, **kwargs)

    def _worker_frames(self, owner: str) -> int:
        return self.frames_per_batch

    def _request(self, index: int) -> None:
        if 0 <= self.total_frames <= self._requested:
            return
        self._workers.send(index, ("collect",))
        self._outstanding.append(index)
        self._requested += self.frames_per_batch

    def _next_batch(self) -> TensorDictBase:
        if not self._started:
            self._started = True
            self._requested = self._frames
            for index in range(self.num_workers):
                self._request(index)
        while not self._ready:
            answers = self._workers.wait_any(self._outstanding, "batch", "collect")
            answered = {index for index, _ in answers}
            order = {index: n for n, index in enumerate(self._outstanding)}
            self._ready.extend(sorted(answers, key=lambda item: order[item[0]]))
            self._outstanding = [i for i in self._outstanding if i not in answered]
        index, payload = self._ready.popleft()
        self._take(index, payload)
        batch = self._buffers[index].clone()  # type: ignore[union-attr]
        self._request(index)
        batch.set(WORKER_KEY, torch.full(batch.batch_size, index, dtype=torch.int64))
        self.last_worker = index
        return self._finish(batch)

    def _assert_idle(self, what: str) -> None:
        if self._outstanding or self._ready:
            raise CollectorError(
                f"{type(self).__name__}.{what}: workers are collecting; call it before iterating"
            )
