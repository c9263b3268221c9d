"""``ParallelEnv``: ``N`` sub-environments, each in its own worker process.

Data never gets pickled per step: at start-up the parent allocates one shared-memory
buffer holding every worker's inputs and outputs (see :mod:`~rlkernel.envs.batched.layout`)
and hands it to the workers once. A step is then: copy the actions into the buffer,
write one command byte to each worker, sleep until the last worker to finish writes one
byte back (see :mod:`~rlkernel.envs.batched.protocol`), copy the ``"next"`` entries out.
``step_and_maybe_reset`` does its resets in the same round trip.

Faults are reported, never waited for (see :mod:`~rlkernel.envs.batched.pool`): an
exception in a worker (in the factory, ``_step``, ``_reset`` or ``set_seed``), an output
that does not match the specs, or a worker that dies is a
:class:`~rlkernel.errors.WorkerError` naming the worker, raised as soon as it is known;
afterwards the environment only accepts :meth:`close`, which always returns within a
couple of seconds. Start methods are discussed in :mod:`~rlkernel.envs.batched.context`.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from multiprocessing.context import BaseContext
from typing import Any

import torch

from rlkernel.envs.batched import protocol
from rlkernel.envs.batched.base import BatchedEnvBase, EnvFactory, normalize_factories
from rlkernel.envs.batched.context import factory_modules, pickle_factory, resolve_context
from rlkernel.envs.batched.pool import WorkerPool
from rlkernel.errors import EnvError


class ParallelEnv(BatchedEnvBase):
    """Batch ``num_workers`` environments built by ``create_env_fn``, one per process.

    Args:
        num_workers: how many worker processes (one sub-environment each).
        create_env_fn: a callable returning an :class:`~rlkernel.envs.EnvBase` (lambdas and
            closures are fine: it is sent with cloudpickle), or a list of ``num_workers``.
        create_env_kwargs: keyword arguments for the factory (a dict, or one per worker).
        mp_context: ``"forkserver"`` (default where available, else ``"spawn"``),
            ``"spawn"``, ``"fork"``, or a ``multiprocessing`` context object. The global
            start method is never touched.
        device: where the returned tensors live (default: the sub-environment's device).
        check_actions: validate actions against the action spec before each step (the
            shape and dtype of every input are always checked, cheaply).
        timeout: seconds to wait for the workers on each call (start-up included) before
            raising :class:`~rlkernel.errors.WorkerError`; ``None`` waits as long as the
            workers are alive.
        preload: modules the forkserver imports once for all workers (e.g.
            ``["gymnasium", "mujoco"]``), on top of torch, tensordict and rlkernel; only
            used when this call starts the server. ``None`` (default) preloads the
            already-imported modules ``create_env_fn`` refers to (its own module, the
            globals and closure variables it uses, such as ``GymEnv``'s module).

    ``step``/``reset`` return tensors the caller owns (one clone out of the shared buffer
    per call). ``set_seed(s)`` seeds worker ``i`` with ``s + i`` and returns ``s + N`` (for
    batched sub-environments, ``s + i * k`` and ``s + N * k`` with ``k`` the sub-batch size).
    ``worker_pids`` lists the worker processes.

    Example::

        >>> from rlkernel.testing import CountingEnv
        >>> with ParallelEnv(2, CountingEnv, {"max_count": 3}) as env:
        ...     env.rollout(5, break_when_any_done=False).batch_size
        torch.Size([2, 5])
    """

    def __init__(
        self,
        num_workers: int,
        create_env_fn: EnvFactory | Sequence[EnvFactory],
        create_env_kwargs: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        mp_context: str | BaseContext | None = None,
        device: torch.device | str | None = None,
        check_actions: bool = True,
        timeout: float | None = None,
        preload: Sequence[str] | None = None,
    ) -> None:
        factories = normalize_factories("ParallelEnv", num_workers, create_env_fn, create_env_kwargs)
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise EnvError(f"ParallelEnv: timeout must be a positive number of seconds or None, got {timeout!r}")
        self._prepare(num_workers, device, check_actions)
        self.timeout = timeout
        if preload is None:
            preload = [name for fn, _ in factories for name in factory_modules(fn)]
        ctx = resolve_context(mp_context, preload)
        payloads = [pickle_factory(fn, kwargs, i) for i, (fn, kwargs) in enumerate(factories)]
        self._pool = pool = WorkerPool("ParallelEnv", ctx, payloads)
        self._finalizer = weakref.finalize(self, pool.close)
        try:
            self._setup(pool.start(timeout))
            flat = self.layout.allocate(shared=True)
            pool.share((flat, self.layout), timeout)
            self._bind(flat)
        except BaseException:
            self.close()
            raise

    @property
    def mp_start_method(self) -> str:
        """The start method the workers were started with."""
        return self._pool.ctx.get_start_method()

    @property
    def worker_pids(self) -> list[int | None]:
        """The process id of each worker."""
        return self._pool.pids

    def _run_step(self, auto_reset: bool = False) -> None:
        if auto_reset:
            self._pool.run(protocol.STEP_AND_RESET, self._all_workers, "step_and_maybe_reset", self.timeout)
        else:
            self._pool.run(protocol.STEP, self._all_workers, "step", self.timeout)

    def _run_reset(self, indices: list[int], partial: bool) -> None:
        command = protocol.RESET_PARTIAL if partial else protocol.RESET
        self._pool.run(command, indices, "reset", self.timeout)

    def _run_seed(self, seeds: list[int | None]) -> None:
        self._pool.run(protocol.SEED, self._all_workers, "set_seed", self.timeout, seeds)

    def _assert_open(self) -> None:
        super()._assert_open()
        if self._pool.broken is not None:
            raise self._pool.unusable()

    def _shutdown(self) -> None:
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()
