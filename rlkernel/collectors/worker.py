"""The worker process of the multi-process collectors.

A worker builds its environment and a :class:`~rlkernel.collectors.SyncDataCollector` over
it, with its own copy of the policy whose weights are the parent's shared-memory tensors
(``TensorDict.to_module``), so a weight update in the parent reaches it with no message.
It allocates its batch buffer in shared memory, sends it to the parent with its first
batch, and afterwards only signals. Commands arrive on a pipe as tuples:

* ``("collect",)`` -> ``("batch", (buffer_or_None, next_local_traj_id))`` once the buffer
  holds a new batch (the buffer itself only the first time);
* ``("seed", seed)`` / ``("set_state", next_local_traj_id)`` -> ``("ok", None)``;
* ``("close",)`` -> the worker closes its environment and exits.

Anything raised is sent back as ``("error", FailureReport)`` (type, message, traceback),
after which the worker exits. It exits too when the parent's end of the pipe closes. The
worker ignores SIGINT (the parent handles Ctrl-C) and runs torch on one thread.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["WorkerSpec", "worker_main"]


@dataclass
class WorkerSpec:
    """Everything a worker needs, sent to it with cloudpickle (lambdas are fine)."""

    index: int
    num_workers: int
    create_env_fn: Any
    create_env_kwargs: dict[str, Any] | None
    policy: Any
    seed: int | None
    collector_kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self, weights: Any) -> Any:
        """Make the environment, the policy (loading the shared ``weights``) and the collector."""
        import torch
        from torch import nn

        from rlkernel.collectors.sync import SyncDataCollector, make_env

        env, _ = make_env(self.create_env_fn, self.create_env_kwargs, owner=f"worker {self.index}")
        policy = self.policy
        if weights is not None and isinstance(policy, nn.Module):
            weights.to_module(policy)
        env_seed = None
        if self.seed is not None:  # before the collector's first reset
            torch.manual_seed(self.seed + self.index)
            env_seed = self.seed + self.index * env.numel
        else:
            torch.seed()
        collector = SyncDataCollector(env, policy, total_frames=-1, seed=env_seed, **self.collector_kwargs)
        collector._owns_env = True
        collector._stepper.shared = True
        collector._stepper.set_traj_layout(self.index, self.num_workers)
        return collector

    def seed_worker(self, collector: Any, seed: int) -> None:
        """Seed torch with ``seed + index`` and the env with ``seed + index * env.numel``."""
        import torch

        torch.manual_seed(seed + self.index)
        collector.set_seed(seed + self.index * collector.env.numel)


def _report(conn: Connection, exc: BaseException, during: str) -> None:
    from rlkernel.envs.batched.protocol import FailureReport

    try:
        conn.send(("error", FailureReport.from_exception(exc, during)))
    except (OSError, ValueError):
        pass


def worker_main(conn: Connection, payload: bytes, weights: Any) -> None:
    """Run one worker until ``("close",)``, an error, or the parent's pipe closing."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import pickle

    import torch

    torch.set_num_threads(1)
    try:
        spec: WorkerSpec = pickle.loads(payload)
        collector = spec.build(weights)
    except BaseException as exc:
        _report(conn, exc, "start-up")
        return
    try:
        conn.send(("ready", None))
        _serve(conn, collector, spec)
    finally:
        try:
            collector.shutdown()
        except Exception:
            pass


def _serve(conn: Connection, collector: Any, spec: WorkerSpec) -> None:
    sent_buffer = False
    stepper = collector._stepper
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        command = message[0]
        if command == "close":
            return
        try:
            if command == "collect":
                data = collector._collect()
                conn.send(("batch", (None if sent_buffer else data, stepper.traj.next_local)))
                sent_buffer = True
            elif command == "seed":
                spec.seed_worker(collector, message[1])
                conn.send(("ok", None))
            elif command == "set_state":
                stepper.traj.next_local = max(stepper.traj.next_local, int(message[1]))
                stepper.traj.renew_all()
                conn.send(("ok", None))
            else:
                raise RuntimeError(f"unknown collector worker command {command!r}")
        except BaseException as exc:
            _report(conn, exc, command)
            return
