"""``SyncDataCollector``: steps one environment with a policy, batch after batch, in this process.

>>> from rlkernel.testing import CountingEnv
>>> from rlkernel.collectors import SyncDataCollector
>>> collector = SyncDataCollector(CountingEnv(batch_size=(2,)), frames_per_batch=8, total_frames=16)
>>> [tuple(batch.batch_size) for batch in collector]
[(2, 4), (2, 4)]
>>> collector.shutdown()
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase

from rlkernel.collectors.base import DataCollectorBase, check_frames, check_positive_int, split_frames
from rlkernel.collectors.errors import CollectorError
from rlkernel.collectors.policy import PolicyCaller, adapt_policy
from rlkernel.collectors.stepper import Stepper
from rlkernel.collectors.trajectories import split_trajectories
from rlkernel.envs.common import EnvBase
from rlkernel.exploration import ExplorationType, set_exploration_type

__all__ = ["SyncDataCollector", "make_env"]

EnvMaker = EnvBase | Callable[..., EnvBase]


def make_env(create_env_fn: EnvMaker, kwargs: dict[str, Any] | None, *, owner: str) -> tuple[EnvBase, bool]:
    """``(env, owned)``: the environment, and whether the collector made it (and closes it)."""
    if isinstance(create_env_fn, EnvBase):
        if kwargs:
            raise CollectorError(f"{owner}: create_env_kwargs given but create_env_fn is already an environment")
        return create_env_fn, False
    if not callable(create_env_fn):
        raise CollectorError(
            f"{owner}: create_env_fn must be an EnvBase or a callable returning one, "
            f"got {type(create_env_fn).__name__}"
        )
    env = create_env_fn(**(kwargs or {}))
    if not isinstance(env, EnvBase):
        raise CollectorError(
            f"{owner}: create_env_fn returned {type(env).__name__}, expected an rlkernel EnvBase"
        )
    return env, True


def _check_max_frames_per_traj(value: Any, owner: str) -> int | None:
    if value is None or (not isinstance(value, bool) and isinstance(value, int) and value == -1):
        return None
    return check_positive_int("max_frames_per_traj", value, owner=owner)


class SyncDataCollector(DataCollectorBase):
    """Collect batches of exactly ``frames_per_batch`` frames from one environment.

    Each batch is a TensorDict of batch size ``(*env.batch_size, T)`` with
    ``T = frames_per_batch / env.numel``: the root holds what the policy saw and did
    (observation, done flags, action, whatever the policy wrote), ``"next"`` what the
    environment returned, and ``("collector", "traj_ids")`` the trajectory id of each step.
    Done sub-environments are reset between steps; trajectories continue across batches.

    Args:
        create_env_fn: an :class:`~rlkernel.envs.EnvBase`, or a callable returning one
            (called with ``create_env_kwargs``). Environments the collector made are
            closed by :meth:`shutdown`; one passed in is left open.
        policy: a callable ``td -> td`` writing the action (a ``TensorDictModule``), a plain
            ``nn.Module`` observation -> action (wrapped, see :mod:`rlkernel.collectors.policy`),
            or ``None`` for random actions from the action spec.

    Keyword Args:
        frames_per_batch: frames per batch; a multiple of ``env.numel`` (else an error).
        total_frames: frames in all (a multiple of ``frames_per_batch``), ``-1`` for no end.
        create_env_kwargs: keyword arguments for ``create_env_fn``.
        init_random_frames: take random actions while fewer frames than this were collected
            (counted per step: a step of ``env.numel`` frames that starts below the mark is
            random). ``None`` is 0, as in TorchRL.
        max_frames_per_traj: cut episodes after this many steps: the step is marked
            ``truncated`` and ``done`` in ``"next"`` and the sub-environment is reset.
        reset_at_each_iter: reset every sub-environment at the start of each batch.
        split_trajs: return each batch as ``[n_traj, max_len]``, zero padded, with a
            ``("collector", "mask")`` entry (see :func:`split_trajectories`).
        exploration_type: set around the policy calls (``None`` leaves the ambient one).
        postproc: a callable applied to each batch before it is returned.
        device: the default for ``policy_device`` and ``storing_device``.
        env_device: the environment's device; must match ``env.device`` when given (rlkernel
            environments are built on their device; there is no ``env.to``).
        policy_device: where the policy runs; the collector moves the TensorDict there and
            back. A policy whose parameters are elsewhere is copied there (see
            :meth:`update_policy_weights_`).
        storing_device: where batches are stored (default: the environment's device).
        seed: seeds the environment (``env.set_seed``).
        return_same_td: return the collector's own buffer, overwritten by the next batch,
            instead of a copy (with ``split_trajs`` the batch is always a new TensorDict).

    Total frames are never rounded: a ``total_frames`` that is not a multiple of
    ``frames_per_batch``, or a ``frames_per_batch`` that is not a multiple of
    ``env.numel``, is a :class:`~rlkernel.collectors.errors.CollectorError` (TorchRL
    rounds up with a warning).

    Hot path. The batch buffer is allocated once, from the first step; each step is one
    fused copy of its leaves into it, and the observation and done flags of the root are
    filled from the previous step's ``"next"`` at the end of the batch rather than copied
    again (see :mod:`rlkernel.collectors.stepper`). A plain ``TensorDictModule`` policy is
    called without its wrapper (see :mod:`rlkernel.collectors.policy`). The policy's actions
    are checked against the action spec at every step when the environment's
    ``check_actions`` is on (``env.check_step_input``, as ``env.step`` does): an action
    outside the spec is an :class:`~rlkernel.errors.ActionError` naming the key, the spec
    and the value, and nothing of that batch is returned. Policies run under ``torch.no_grad()``.
    The collector does not change the number of torch threads of this process (set
    ``torch.set_num_threads(1)`` yourself for small policies).
    """

    def __init__(
        self,
        create_env_fn: EnvMaker,
        policy: Any = None,
        *,
        frames_per_batch: int,
        total_frames: int = -1,
        create_env_kwargs: dict[str, Any] | None = None,
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
        return_same_td: bool = False,
    ) -> None:
        owner = type(self).__name__
        self.frames_per_batch, self.total_frames = check_frames(frames_per_batch, total_frames, owner=owner)
        self.init_random_frames = check_positive_int(
            "init_random_frames", init_random_frames or 0, owner=owner, allow_zero=True
        )
        self.max_frames_per_traj = _check_max_frames_per_traj(max_frames_per_traj, owner)
        if exploration_type is not None and not isinstance(exploration_type, ExplorationType):
            raise CollectorError(
                f"{owner}: exploration_type must be an ExplorationType or None, got {exploration_type!r}"
            )
        if postproc is not None and not callable(postproc):
            raise CollectorError(f"{owner}: postproc must be callable, got {type(postproc).__name__}")
        self.exploration_type = exploration_type
        self.reset_at_each_iter = bool(reset_at_each_iter)
        self.split_trajs = bool(split_trajs)
        self.postproc = postproc
        self.return_same_td = bool(return_same_td)
        self._frames = 0
        self._iteration = 0
        self._closed = False
        self.env, self._owns_env = make_env(create_env_fn, create_env_kwargs, owner=owner)
        try:
            self._setup(policy, device, env_device, policy_device, storing_device, seed, owner)
        except BaseException:
            self.shutdown()
            raise

    def _setup(self, policy, device, env_device, policy_device, storing_device, seed, owner) -> None:
        env = self.env
        if env_device is not None and torch.device(env_device) != env.device:
            raise CollectorError(
                f"{owner}: env_device={env_device} but the environment lives on {env.device}; "
                "build the environment on the device you want"
            )
        self.env_device = env.device
        self.steps_per_batch = split_frames(
            self.frames_per_batch, env.numel, f"env.numel (batch_size {tuple(env.batch_size)})", owner=owner
        )
        default = torch.device(device) if device is not None else None
        self.storing_device = torch.device(storing_device) if storing_device is not None else (default or env.device)
        self._policy = PolicyCaller(
            adapt_policy(policy, env, owner=owner), env.device, policy_device if policy_device is not None else default
        )
        self.policy_device = self._policy.device
        self.policy = self._policy.policy
        if seed is not None:
            self.set_seed(seed)
        with contextlib.ExitStack() as stack:  # the policy's dry run sees the collector's exploration type
            if self.exploration_type is not None:
                stack.enter_context(set_exploration_type(self.exploration_type))
            self._stepper = Stepper(
                env,
                self._policy,
                steps=self.steps_per_batch,
                storing_device=self.storing_device,
                max_frames_per_traj=self.max_frames_per_traj,
                owner=owner,
            )

    # ------------------------------------------------------------------ collection
    def _collect(self) -> TensorDictBase:
        """Fill the buffer with one batch; returns the buffer (overwritten next time)."""
        if self._closed:
            raise CollectorError(f"{type(self).__name__} is shut down")
        stepper = self._stepper
        if self.reset_at_each_iter and self._iteration > 0:
            stepper.reset()
        random_steps = 0
        if self._frames < self.init_random_frames:
            random_steps = -(-(self.init_random_frames - self._frames) // self.env.numel)
        with torch.no_grad():
            if self.exploration_type is None:
                data = stepper.collect(random_steps)
            else:
                with set_exploration_type(self.exploration_type):
                    data = stepper.collect(random_steps)
        self._frames += self.frames_per_batch
        self._iteration += 1
        return data

    def _next_batch(self) -> TensorDictBase:
        data = self._collect()
        if not self.return_same_td or self.split_trajs:
            data = split_trajectories(data) if self.split_trajs else data.clone()
        if self.postproc is not None:
            data = self.postproc(data)
        return data

    # ------------------------------------------------------------------ controls
    def set_seed(self, seed: int) -> int:
        """Seed the environment (``env.set_seed``); returns ``seed``."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise CollectorError(f"{type(self).__name__}.set_seed expects an int, got {seed!r}")
        self.env.set_seed(seed)
        return seed

    def reset(self) -> None:
        """Reset every sub-environment now (they get new trajectory ids)."""
        self._stepper.reset()

    def update_policy_weights_(self, weights: Any = None) -> None:
        """Load ``weights`` into the collecting policy.

        ``weights`` is a TensorDict (``TensorDict.from_module(learner_policy)``) or a state
        dict. Without it, a copy of the policy on another ``policy_device`` takes the
        original's current weights; a policy used directly needs nothing.
        """
        self._policy.update_weights(weights, owner=type(self).__name__)

    def state_dict(self) -> dict[str, Any]:
        """Counters and policy weights, loadable with ``torch.load(..., weights_only=True)``.

        The environments' own state is not saved: after :meth:`load_state_dict` the
        collector continues counting frames and trajectory ids from where the saved one
        was; the episodes its environment is running get new ids.
        """
        state: dict[str, Any] = {
            "frames": self._frames,
            "iteration": self._iteration,
            "traj_next_local": self._stepper.traj.next_local,
        }
        policy_state = self._policy.state_dict()
        if policy_state is not None:
            state["policy_state_dict"] = policy_state
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        owner = type(self).__name__
        for key in ("frames", "iteration", "traj_next_local"):
            if key not in state:
                raise CollectorError(f"{owner}.load_state_dict: the state has no {key!r} entry")
        self._frames = int(state["frames"])
        self._iteration = int(state["iteration"])
        traj = self._stepper.traj
        traj.next_local = max(traj.next_local, int(state["traj_next_local"]))
        traj.renew_all()  # the running episodes get ids above every saved one
        if "policy_state_dict" in state:
            self._policy.update_weights(state["policy_state_dict"], owner=owner)

    def shutdown(self) -> None:
        """Close the environment if the collector made it. Calling it twice is harmless."""
        if self._closed:
            return
        self._closed = True
        if getattr(self, "_owns_env", False):
            self.env.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(env={type(self.env).__name__}{tuple(self.env.batch_size)}, "
            f"frames_per_batch={self.frames_per_batch}, total_frames={self.total_frames}, "
            f"frames={self._frames})"
        )
