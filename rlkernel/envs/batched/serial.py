"""``SerialEnv``: ``N`` sub-environments stepped one after another in this process.

The reference implementation of batching: same specs, buffer layout, output checks and
seeding as :class:`~rlkernel.envs.batched.ParallelEnv`, without processes. Use it to debug
(exceptions surface with their own traceback) or when the sub-environments are so cheap
that processes would cost more than they save.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from rlkernel.envs.batched.base import BatchedEnvBase, EnvFactory, normalize_factories
from rlkernel.envs.batched.runner import SubEnvRunner
from rlkernel.envs.batched.subspecs import SubEnvSpecs


class SerialEnv(BatchedEnvBase):
    """Batch ``num_workers`` environments built by ``create_env_fn``, run in this process.

    Args:
        num_workers: how many sub-environments.
        create_env_fn: a callable returning an :class:`~rlkernel.envs.EnvBase`, or a list
            of ``num_workers`` of them.
        create_env_kwargs: keyword arguments for the factory (a dict, or one per worker).
        device: where the returned tensors live (default: the sub-environment's device).
        check_actions: validate actions against the action spec before each step.

    The batch size is ``(num_workers, *sub_batch_size)``. An exception raised by a
    sub-environment propagates unchanged, with a note naming its index; an output that
    does not match the specs is an :class:`~rlkernel.errors.EnvError` naming the key.

    Example::

        >>> from rlkernel.testing import CountingEnv
        >>> env = SerialEnv(3, CountingEnv, {"max_count": 4})
        >>> env.rollout(10, break_when_any_done=False).batch_size
        torch.Size([3, 10])
    """

    def __init__(
        self,
        num_workers: int,
        create_env_fn: EnvFactory | Sequence[EnvFactory],
        create_env_kwargs: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        device: torch.device | str | None = None,
        check_actions: bool = True,
    ) -> None:
        factories = normalize_factories("SerialEnv", num_workers, create_env_fn, create_env_kwargs)
        self._prepare(num_workers, device, check_actions)
        self.envs: list[Any] = []
        self._runners: list[SubEnvRunner] = []
        try:
            specs = []
            for fn, kwargs in factories:
                env = fn(**kwargs)
                specs.append(SubEnvSpecs.of(env))  # refuses anything but an EnvBase
                self.envs.append(env)
            self._setup(specs)
            flat = self.layout.allocate(shared=False)
            self._runners = [SubEnvRunner(env, self.layout, flat, i) for i, env in enumerate(self.envs)]
            self._bind(flat)
        except BaseException:
            try:
                self.close()
            except Exception:  # the original error matters more
                pass
            raise

    def _each(self, indices: Sequence[int], action: str, *args: Any) -> None:
        runners = self._runners
        for i in indices:
            try:
                getattr(runners[i], action)(*args)
            except Exception as exc:
                _add_note(exc, i, action)
                raise

    def _run_step(self, auto_reset: bool = False) -> None:
        index = 0
        try:
            for runner in self._runners:
                if auto_reset:
                    runner.step_and_maybe_reset()
                else:
                    runner.step()
                index += 1
        except Exception as exc:
            _add_note(exc, index, "step_and_maybe_reset" if auto_reset else "step")
            raise

    def _run_reset(self, indices: list[int], partial: bool) -> None:
        self._each(indices, "reset", partial)

    def _run_seed(self, seeds: list[int | None]) -> None:
        for i, seed in enumerate(seeds):
            self._each((i,), "set_seed", seed)

    def _shutdown(self) -> None:
        errors = []
        for env in getattr(self, "envs", []):
            try:
                env.close()
            except Exception as exc:  # close the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]


def _add_note(exc: BaseException, index: int, action: str) -> None:
    if hasattr(exc, "add_note"):  # Python 3.11+
        exc.add_note(f"(raised by SerialEnv sub-environment {index} during {action})")
