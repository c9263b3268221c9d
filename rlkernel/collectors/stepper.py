"""The rollout engine: policy, step, write, move on, reset what is done.

It is the one loop that steps environments over time: the collectors run it batch after
batch, and :meth:`EnvBase.rollout <rlkernel.envs.EnvBase.rollout>` runs it once (without
trajectory ids, stopping at the first or last end of an episode when asked).

:class:`Stepper` keeps one root TensorDict alive between steps (what the policy reads) and
writes each step into a :class:`~rlkernel.collectors.buffer.RolloutBuffer`. Per step it
does no ``step_mdp`` and builds no TensorDict of its own:

* the environment's output is read once (key paths fixed at the first step) and that one
  list of tensors serves the buffer write, the done check and the move to the next step
  (the next observation and done flags are rebound into the root);
* ``env._step`` is called directly when the environment's class keeps the contract's
  ``step`` (``EnvBase.standard_step``; ``EnvBase.step`` would complete the done flags every
  step: they are completed only when the output lacks one), or, for a class that declares
  a direct step (``EnvBase.direct_step``), its direct step bound to tensors of the
  stepper; the action a policy wrote is checked at every step by ``env.check_step_input``,
  as ``env.step`` does (random actions drawn from the action spec are in it by construction);
* root leaves equal to the previous step's ``"next"`` leaves (observation, done flags)
  are not copied at every step: they are written after a reset and otherwise filled from
  ``"next"`` in one copy per leaf at the end of the batch. This is on only when nothing
  else writes them: random actions or a plain ``TensorDictModule`` policy whose out-keys
  do not include them, and an environment whose class keeps the contract's ``step``;
* only when a sub-environment is done does it call ``env.maybe_reset`` (the env's one
  partial-reset merge).
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.collectors.access import as_path, gather, put, put_many
from rlkernel.collectors.buffer import NEXT_PART, PARTIAL_AND_NEXT, ROOT, ROOT_PARTIAL, RolloutBuffer
from rlkernel.collectors.errors import CollectorError
from rlkernel.collectors.policy import PolicyCaller
from rlkernel.collectors.trajectories import TRAJ_IDS_KEY, TrajectoryIds
from rlkernel.envs.common import EnvBase
from rlkernel.envs.step import DONE, NEXT, TRUNCATED, NestedKey

__all__ = ["Stepper"]

_TRAJ_PATH = as_path(TRAJ_IDS_KEY)


def _leaf_name(key: NestedKey) -> str:
    return key[-1] if isinstance(key, tuple) else key


class Stepper:
    """Steps ``env`` with ``policy`` and records ``steps`` steps per :meth:`collect`.

    Args:
        env: the environment.
        policy: the policy caller (``policy.policy is None``: random actions).
        steps: time steps per batch.
        storing_device: where the batch buffer lives.
        max_frames_per_traj: truncate episodes after this many steps (``None``: never).
        shared: allocate the batch buffer in shared memory.
        owner: the collector's name, for error messages.
        root: the root to start from (default: ``env.reset()``).
        trajectories: write ``("collector", "traj_ids")`` into the root (``EnvBase.rollout``
            does not).

    ``policy`` is a :class:`~rlkernel.collectors.policy.PolicyCaller` or an object with the
    same members (``policy``, ``discover``, ``written_keys``, ``output_paths`` and a call
    that writes into the root, or returns the TensorDict to go on with). One whose
    ``draws_from_spec`` is true writes actions drawn from the env's action spec: they are
    not checked.
    """

    def __init__(
        self,
        env: EnvBase,
        policy: PolicyCaller,
        *,
        steps: int,
        storing_device: torch.device,
        max_frames_per_traj: int | None,
        shared: bool = False,
        owner: str,
        root: TensorDictBase | None = None,
        trajectories: bool = True,
    ) -> None:
        self.env = env
        self.policy = policy
        self.steps = steps
        self.storing_device = storing_device
        self.max_frames_per_traj = max_frames_per_traj
        self.shared = shared
        self.owner = owner
        self.batch_size = env.batch_size
        self.traj = TrajectoryIds(env.batch_size, device=env.device)
        self.buffer: RolloutBuffer | None = None
        self._direct_step = type(env).standard_step
        self._done_keys = [k for k in env.done_keys if _leaf_name(k) == DONE]
        self._trunc_keys = [k for k in env.done_keys if _leaf_name(k) in (DONE, TRUNCATED)]
        self._step_count = torch.zeros(env.batch_size, dtype=torch.int64, device=env.device)
        self._trajectories = trajectories
        self._policy_draws = policy.policy is None or bool(getattr(policy, "draws_from_spec", False))
        self._stop: str | None = None  # set by collect(): None, "any" or "all"
        self._finished: torch.Tensor | None = None  # sub-envs that ended an episode (stop="all")
        #: The number of steps the last :meth:`collect` took (less than ``steps`` when it stopped).
        self.length = steps
        if root is None:
            root = self._fresh_root(renew=False)
        elif trajectories:
            root.set(TRAJ_IDS_KEY, self.traj.ids)
        self.root: TensorDictBase = root
        probe = policy.discover(self.root, env.action_keys, owner=owner)
        self._policy_zeros = [(as_path(k), torch.zeros_like(probe.get(k))) for k in policy.written_keys]
        self._done_paths = [as_path(k) for k in self._done_keys]
        self._all_done_paths = [as_path(k) for k in env.done_keys]
        self._root_paths: list[tuple[str, ...]] = []
        self._next_paths: list[tuple[str, ...]] = []
        self._carry: list[tuple[tuple[str, ...], int]] = []
        self._done_index: list[int] = []
        self._all_done_index: list[int] = []
        self._into: tuple | None = None
        self._holds_outputs: TensorDictBase | None = None  # the root that holds the direct step's outputs

    def set_traj_layout(self, offset: int, stride: int) -> None:
        """Make ids ``local * stride + offset`` (one id space per worker); renews the ids."""
        self.traj.offset, self.traj.stride = offset, stride
        self.traj.next_local = 0
        self.traj.renew_all()

    def _fresh_root(self, *, renew: bool) -> TensorDictBase:
        root = self.env.reset()
        if renew:
            self.traj.renew_all()
        self._step_count.zero_()
        if self._trajectories:
            root.set(TRAJ_IDS_KEY, self.traj.ids)
        return root

    def reset(self) -> None:
        """Reset every sub-environment; each starts a new trajectory."""
        self.root = self._fresh_root(renew=True)
        self._holds_outputs = None

    # ------------------------------------------------------------------ the loop
    def collect(self, random_steps: int = 0, stop: str | None = None) -> TensorDictBase:
        """Run ``steps`` steps (the first ``random_steps`` with random actions) into the buffer.

        ``stop="any"`` ends after the first step where a sub-environment is done (without
        resetting it); ``stop="all"`` once every sub-environment has ended an episode (they
        are reset as they end). :attr:`length` is then the number of steps taken, and only
        the first :attr:`length` steps of the returned buffer hold data.
        """
        self._stop = stop
        if stop == "all":
            self._finished = torch.zeros(self.batch_size, dtype=torch.bool, device=self.env.device)
        written = [False] * self.steps
        self._write_all = True  # the first step of a batch writes every root leaf
        self.length = self.steps
        for t in range(self.steps):
            written[t] = self._write_all
            if self._step(t, t < random_steps):
                self.length = t + 1
                break
        assert self.buffer is not None
        self.buffer.fill_shifted(written)
        return self.buffer.data

    def _step(self, t: int, random: bool) -> bool:
        """Take step ``t``; True when :meth:`collect` must stop (see its ``stop``)."""
        env = self.env
        root = self.root
        if random or self.policy.policy is None:
            drawn = True
            for path, zero in self._policy_zeros:
                put(root, path, zero)
            env.rand_action(root)
        else:
            drawn = self._policy_draws
            returned = self.policy(root)
            if returned is not None:  # a policy that hands back the TensorDict to go on with
                root = returned
        buffer = self.buffer
        into = self._into
        nxt: list | None = None
        recorded: list | None = None  # what the buffer gets of "next" (default: nxt)
        full = self._write_all
        if self._direct_step:
            # A full root holds the env's own output tensors (observation, flags): record it
            # before the env steps, in case the env reuses them. A partial one holds only
            # what the policy and the collector wrote: it goes with "next", in one copy.
            if buffer is not None and full:
                self._write(buffer, t, gather(root, self._root_paths), ROOT)
            elif buffer is None:
                first_root = root.clone()
            if not drawn:
                env.check_step_input(root)
            if into is None:
                out, nxt = self._complete(env._step(root))
            else:  # the env writes straight into fixed output tensors (see _bind_step_into)
                step_into, inputs, action_path, nxt, recorded = into
                inputs[action_path[0]] = gather(root, (action_path,))[0]
                step_into()
        else:
            root = env.step(root)
            out = root.get(NEXT)
            first_root = root.exclude(NEXT)
            if buffer is not None:
                self._write_root(buffer, t, root)
        if self.max_frames_per_traj is not None:
            self._truncate(out)
            nxt = None
        if buffer is None:
            buffer = self._allocate(first_root, out)
            self._write_root(buffer, t, first_root)
        if nxt is None:
            nxt = gather(out, self._next_paths)
        if recorded is None:
            recorded = nxt
        if full or not self._direct_step:
            self._write(buffer, t, recorded, NEXT_PART)
        else:
            self._write(buffer, t, gather(root, self._partial_root_paths) + recorded, PARTIAL_AND_NEXT)
        self._write_all = not self._shift
        if into is None:
            put_many(root, self._carry, nxt)
        elif self._policy_draws:
            # the direct step's outputs themselves (no policy reads the root; they are
            # rewritten by the next step, after the root was recorded): put into a root once,
            # then it holds them at every step (until an episode end brings a new root)
            if self._holds_outputs is not root:
                put_many(root, self._carry, nxt)
                self._holds_outputs = root
        else:  # the root gets copies: a policy may keep what it read
            for path, index in self._carry:
                put(root, path, nxt[index].clone())
        if self._single_flag:  # one sub-environment, one flag: no mask to build
            if recorded[self._done_index[0]]:  # (a NumPy view with the direct step: faster to test)
                return self._end_episodes(root, None)
        else:
            for index in self._done_index:
                if recorded[index].any():
                    return self._end_episodes(root, self._done_mask([nxt[i] for i in self._done_index]))
        self.root = root
        return False

    def _end_episodes(self, root: TensorDictBase, done: torch.Tensor | None) -> bool:
        """After a step where a sub-environment (``done``; ``None``: the only one) is done:
        reset it, unless the collection stops here. True when it stops."""
        stop = self._stop
        self._holds_outputs = None  # maybe_reset may change the root in place
        if stop == "any":
            self.root = root
            return True
        self.root = self._reset_done(self.env.maybe_reset(root), done)
        if stop == "all":
            finished = self._finished
            assert finished is not None
            if done is None:
                finished.fill_(True)
            else:
                finished |= done
            return bool(finished.all())
        return False

    def _write_root(self, buffer: RolloutBuffer, t: int, root: TensorDictBase) -> None:
        if self._write_all:
            self._write(buffer, t, gather(root, self._root_paths), ROOT)
        else:
            self._write(buffer, t, gather(root, self._partial_root_paths), ROOT_PARTIAL)

    def _write(self, buffer: RolloutBuffer, t: int, values: list, part: str) -> None:
        try:
            buffer.write(t, values, part)
        except (TypeError, RuntimeError):
            if any(value is None for value in values):
                raise self._missing(values, part) from None
            raise

    def _complete(self, out: TensorDictBase) -> tuple[TensorDictBase, list | None]:
        """``env._complete(out)`` unless ``out`` already holds every done flag.

        Returns ``out`` and, once the buffer exists, its values at the buffer's next-keys
        (gathered once, reused for the write, the carry and the done check).
        """
        if self.buffer is not None and type(out) is TensorDict and out.batch_size == self.batch_size:
            nxt = gather(out, self._next_paths)
            for index in self._all_done_index:
                if nxt[index] is None:
                    break
            else:
                return out, nxt
        return self.env._complete(out, "_step"), None

    def _done_mask(self, flags: list) -> torch.Tensor:
        batch = self.batch_size
        done = flags[0].reshape(*batch, -1).any(-1)
        for flag in flags[1:]:
            done = done | flag.reshape(*batch, -1).any(-1)
        return done

    def _reset_done(self, root: TensorDictBase, done: torch.Tensor | None) -> TensorDictBase:
        """After ``maybe_reset``: new trajectory ids (and step counts) where ``done``."""
        self._write_all = True  # the reset root is not the previous "next": write it whole
        if self.max_frames_per_traj is not None:
            if done is None:
                self._step_count.zero_()
            else:
                self._step_count[done] = 0
        if self._trajectories:
            if done is None:
                self.traj.renew_all()
            else:
                self.traj.renew(done)
            put(root, _TRAJ_PATH, self.traj.ids)
        return root

    def _missing(self, values: list, part: str) -> CollectorError:
        nexts = [(NEXT, *path) for path in self._next_paths]
        keys = {
            ROOT: self._root_paths,
            ROOT_PARTIAL: self._partial_root_paths,
            PARTIAL_AND_NEXT: [*self._partial_root_paths, *nexts],
        }.get(part, nexts)
        missing = [key for key, value in zip(keys, values) if value is None]
        return CollectorError(
            f"{self.owner}: the step is missing {missing}, present in the first step of the batch; "
            "the environment and the policy must write the same keys at every step"
        )

    def _truncate(self, out: TensorDictBase) -> None:
        count = self._step_count
        count += 1
        cut = count >= self.max_frames_per_traj
        if not bool(cut.any()):
            return
        for key in self._trunc_keys:
            value = out.get(key)
            out.set(key, value | cut.reshape(*cut.shape, *([1] * (value.ndim - cut.ndim))))

    def _allocate(self, root: TensorDictBase, out: TensorDictBase) -> RolloutBuffer:
        """Make the buffer from the first step; fix the keys every later step must have."""
        if not self._done_keys:
            raise CollectorError(f"{self.owner}: the environment declares no 'done' key ({self.env.done_keys})")
        template = root.exclude(NEXT)
        template.set(NEXT, out)
        buffer = RolloutBuffer(
            template, self.steps, len(self.batch_size), device=self.storing_device, shared=self.shared
        )
        rewards = {as_path(key) for key in self.env.reward_keys}
        self._root_paths = root_paths = [as_path(key) for key in buffer.root_keys]
        self._next_paths = next_paths = [as_path(key) for key in buffer.next_keys]
        self._carry = [(path, i) for i, path in enumerate(next_paths) if path not in rewards]
        self._done_index = [next_paths.index(path) for path in self._done_paths]
        self._all_done_index = [next_paths.index(path) for path in self._all_done_paths]
        flags = [out.get(path) for path in self._done_paths]
        self._single_flag = len(flags) == 1 and flags[0].numel() == 1
        # Root leaves that are the previous step's "next" leaves (observation, done flags):
        # written only after a reset, otherwise filled from "next" at the end of the batch.
        # Only when nothing but the collector writes them: the policy's outputs are known
        # (fast path, or random actions) and the env's class keeps the contract's ``step``.
        policy_paths = self.policy.output_paths()
        if self._direct_step and policy_paths is not None:
            carried = {path: i for path, i in self._carry if path not in policy_paths}
            buffer.set_shifted([(r, carried[path]) for r, path in enumerate(root_paths) if path in carried])
        self._shift = bool(buffer._shifted)
        self._partial_root_paths = [root_paths[i] for i in buffer.partial_root_indices]
        self._into = self._bind_step_into(root, out)
        self.buffer = buffer
        return buffer

    def _bind_step_into(self, root: TensorDictBase, out: TensorDictBase) -> tuple | None:
        """The environment's direct step, when its class declares one (``EnvBase.direct_step``,
        e.g. ``rlkernel_gym.GymWrapper``): it reads the action and writes the step's outputs
        into tensors allocated here, which then serve as the step's ``"next"`` values: the
        buffer copies them, and the root gets copies of those it carries (what the policy
        reads may be kept or aliased by it: it must not change under it). Not with truncation
        by ``max_frames_per_traj`` (it edits the output) or when the class has its own
        ``step``; ``None`` then, or when ``_step_into_fn`` declines these tensors.
        """
        env = self.env
        action_keys = env.action_keys
        if not type(env).direct_step or not self._direct_step or self.max_frames_per_traj is not None:
            return None
        if len(action_keys) != 1 or any(len(path) != 1 for path in self._next_paths):
            return None
        action_path = as_path(action_keys[0])
        action = gather(root, (action_path,))[0]
        if len(action_path) != 1 or action is None:
            return None
        outputs = {path[0]: torch.zeros_like(out.get(path)) for path in self._next_paths}
        inputs = {action_path[0]: action}
        step_into = env._step_into_fn(inputs, outputs)
        if step_into is None:
            return None
        tensors = [outputs[path[0]] for path in self._next_paths]
        # NumPy views of the same tensors, made once: what the buffer records from (a CPU
        # buffer copies them with one NumPy assignment each, see RolloutBuffer.write)
        arrays = [tensor.numpy() for tensor in tensors] if all(t.is_cpu for t in tensors) else tensors
        return step_into, inputs, action_path, tensors, arrays
