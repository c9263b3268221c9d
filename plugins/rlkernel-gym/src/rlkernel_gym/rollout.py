"""The fast path of :meth:`GymWrapper.rollout`: gymnasium stepped straight into buffers.

The generic :meth:`EnvBase.rollout` builds, validates and stacks a few TensorDicts per step,
which costs far more than a gymnasium step. Here every entry of the rollout is a numpy
buffer of shape ``(*batch_size, T, *event_shape)`` allocated once; each step runs the
env's one gymnasium step (its direct step, ``GymWrapper._step_into_fn``, bound once to
staging tensors), copies the staging tensors into row ``t`` and one TensorDict is built at
the end, sharing the buffers' memory. Without a policy the actions for all steps are drawn from the action spec
in one call. With a policy, one TensorDict is handed to it per step (carrying over the
policy's own entries, as ``step_mdp`` does) and its entries are copied into buffers.

The result equals the generic loop's: same keys, shapes, dtypes and values (tested).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.envs.common import Policy
from rlkernel.envs.step import DONE, NEXT, REWARD, TERMINATED, TRUNCATED
from rlkernel.errors import EnvError
from rlkernel_gym.spaces import Key, nest

if TYPE_CHECKING:
    from rlkernel_gym.envs import GymWrapper

FLAGS = (DONE, TERMINATED, TRUNCATED)


class _Recorder:
    """Steps the gymnasium env and writes what comes back into ``(*batch, T, ...)`` buffers."""

    def __init__(self, env: GymWrapper, steps: int, break_when_done: bool) -> None:
        self.env = env
        self.batch = tuple(env.batch_size)
        self.vector = env.is_vector
        self.steps = steps
        self.break_when_done = break_when_done
        self.layout = env._obs_layout
        self.info = env._info
        lead = (*self.batch, steps)
        self.next_obs = [
            np.empty((*lead, *leaf.spec.shape[len(self.batch):]), leaf.dtype) for leaf in self.layout.leaves
        ]
        self.next_info = [
            np.empty((*lead, *spec.shape[len(self.batch):]), dtype)
            for spec, dtype in zip(self.info.specs.values(), self.info.dtypes)
        ]
        self.reward = np.empty((*lead, 1), np.float32)
        self.terminated = np.empty((*lead, 1), bool)
        self.truncated = np.empty((*lead, 1), bool)
        # the env's direct step, bound to staging tensors (numpy views kept for the copies)
        staging = {key: torch.zeros(spec.shape, dtype=spec.dtype) for key, spec in env.step_output_specs()}
        self.inputs: dict[Any, Any] = {key: None for key in env.action_keys}
        self.step = env._step_into_fn(self.inputs, staging)
        if self.step is None:
            raise EnvError(f"{type(env).__name__}: the direct step declined the rollout's staging tensors")
        views = {(key,) if isinstance(key, str) else tuple(key): value.numpy() for key, value in staging.items()}
        self.obs_now = [views[leaf.key] for leaf in self.layout.leaves]
        self.info_now = [views[(name,)] for name in self.info.names]
        self.reward_now, self.term_now, self.trunc_now = views[(REWARD,)], views[(TERMINATED,)], views[(TRUNCATED,)]
        self.done_now = views[(DONE,)]
        # (t + 1, reset rows or None, reset observation arrays, reset info arrays) per reset.
        self.resets: list[tuple[int, Any, list[np.ndarray], list[np.ndarray]]] = []
        self.obs: Any = None
        self.last_info: Any = None
        self.done: Any = None
        self.just_reset = False

    def at(self, t: int) -> Any:
        return (slice(None), t) if self.vector else t

    def advance(self, t: int, actions: dict[Any, torch.Tensor]) -> bool:
        """Take step ``t`` with ``actions`` (``{action key: tensor}``); reset what ended.
        Returns True when the rollout must stop."""
        self.inputs.update(actions)
        self.step()
        i = self.at(t)
        for buf, now in zip(self.next_obs, self.obs_now):
            buf[i] = now
        for buf, now in zip(self.next_info, self.info_now):
            buf[i] = now
        self.reward[i] = self.reward_now
        self.terminated[i] = self.term_now
        self.truncated[i] = self.trunc_now
        self.obs, self.just_reset = None, False
        if self.vector:
            done = self.done_now[:, 0].copy()
            ended = bool(done.any())
        else:
            done = None
            ended = bool(self.done_now[0])
        if not ended:
            return False
        if self.break_when_done:
            return True
        obs, info = self.env._gym_reset(done)
        self.obs, self.last_info, self.done, self.just_reset = obs, info, done, True
        if t + 1 < self.steps:
            infos = self.info.arrays(info, "reset") if self.info else []
            self.resets.append((t + 1, done, self.layout.arrays(obs), infos))
        return False

    # ------------------------------------------------------------------ roots
    def root_now(self, t: int) -> dict[Key, torch.Tensor]:
        """The observation entries of the next root (after step ``t``), as fresh tensors."""
        if self.obs is None:  # no reset after the step: the step's observations
            flat = {leaf.key: torch.from_numpy(now.copy()) for leaf, now in zip(self.layout.leaves, self.obs_now)}
        else:
            flat = self.layout.tensors(self.obs)
        if self.info:
            values = [np.array(buf[self.at(t)]) for buf in self.next_info]
            if self.just_reset:
                fresh = self.info.arrays(self.last_info, "reset")
                for value, new in zip(values, fresh):
                    if self.vector:
                        value[self.done] = new[self.done]
                    else:
                        value[...] = new
            for name, value in zip(self.info.names, values):
                flat[(name,)] = torch.from_numpy(value)
        return flat

    def root_buffers(self, first: TensorDictBase, length: int) -> list[np.ndarray]:
        """Root observation (and info) buffers: the reset, then each next observation, with
        the reset observations where an episode restarted."""
        out = []
        keys = [leaf.key for leaf in self.layout.leaves] + [(name,) for name in self.info.names]
        nexts = self.next_obs + self.next_info
        for n, (key, nxt) in enumerate(zip(keys, nexts)):
            root = np.empty_like(nxt)
            tl = (slice(None),) * len(self.batch)
            root[(*tl, 0)] = first.get(key).cpu().numpy()
            root[(*tl, slice(1, length))] = nxt[(*tl, slice(0, length - 1))]
            n_obs = len(self.next_obs)
            for t1, rows, obs_arrays, info_arrays in self.resets:
                if t1 >= length:
                    break
                fresh = obs_arrays[n] if n < n_obs else info_arrays[n - n_obs]
                if self.vector:
                    view = root[:, t1]
                    view[rows] = fresh[rows]
                else:
                    root[t1] = fresh
            out.append(root)
        return out


def _cut(array: Any, time_dim: int, length: int, full: int) -> Any:
    if length == full:
        return array
    index = (slice(None),) * time_dim + (slice(0, length),)
    part = array[index]
    return np.ascontiguousarray(part) if isinstance(part, np.ndarray) else part.contiguous()


def fast_rollout(
    env: GymWrapper,
    max_steps: int,
    policy: Policy | None,
    *,
    break_when_done: bool,
    set_truncated: bool,
) -> TensorDictBase:
    """Roll ``env`` out for ``max_steps`` steps from a reset; see the module docstring."""
    first = env.reset()
    rec = _Recorder(env, max_steps, break_when_done)
    nb = len(env.batch_size)
    if policy is None:
        length, root_flat = _random_actions(env, rec, first)
    else:
        length, root_flat = _with_policy(env, rec, first, policy)
    if set_truncated:
        last = (slice(None),) * nb + (length - 1,)
        rec.truncated[last] = np.logical_or(rec.truncated[last], ~rec.terminated[last])
    done = np.logical_or(rec.terminated, rec.truncated)
    next_flat: dict[Key, Any] = {}
    for leaf, buf in zip(rec.layout.leaves, rec.next_obs):
        next_flat[leaf.key] = buf
    for name, buf in zip(rec.info.names, rec.next_info):
        next_flat[(name,)] = buf
    next_flat[(REWARD,)] = rec.reward
    next_flat[(DONE,)] = done
    next_flat[(TERMINATED,)] = rec.terminated
    next_flat[(TRUNCATED,)] = rec.truncated
    next_flat = {k: torch.from_numpy(_cut(v, nb, length, max_steps)) for k, v in next_flat.items()}
    data = nest(root_flat)
    data[NEXT] = nest(next_flat)
    return TensorDict(data, batch_size=(*env.batch_size, length), device=env.device)


def _random_actions(env: GymWrapper, rec: _Recorder, first: TensorDictBase) -> tuple[int, dict[Key, Any]]:
    steps, nb = rec.steps, len(env.batch_size)
    layout = env._action_layout
    drawn = [leaf.spec.rand((steps,), generator=env.generator) for leaf in layout.leaves]  # (T, *batch, *event) each
    on_cpu = [value.cpu() for value in drawn]
    keys = [leaf.key[0] if len(leaf.key) == 1 else leaf.key for leaf in layout.leaves]
    length = steps
    advance = rec.advance
    for t in range(steps):
        if advance(t, {key: value[t] for key, value in zip(keys, on_cpu)}):
            length = t + 1
            break
    root_flat: dict[Key, Any] = {}
    keys = [leaf.key for leaf in rec.layout.leaves] + [(name,) for name in rec.info.names]
    for key, buf in zip(keys, rec.root_buffers(first, length)):
        root_flat[key] = torch.from_numpy(_cut(buf, nb, length, steps))
    flag_shape = (*env.batch_size, length, 1)
    for flag in FLAGS:
        root_flat[(flag,)] = torch.zeros(flag_shape, dtype=torch.bool)
    for leaf, value in zip(layout.leaves, drawn):
        moved = value.movedim(0, nb) if nb else value
        root_flat[leaf.key] = _cut(moved.contiguous(), nb, length, steps)
    return length, root_flat


def _with_policy(
    env: GymWrapper, rec: _Recorder, first: TensorDictBase, policy: Policy
) -> tuple[int, dict[Key, Any]]:
    steps, nb = rec.steps, len(env.batch_size)
    batch = tuple(env.batch_size)
    device = env.device
    action_keys = env.action_keys
    false = torch.zeros((*batch, 1), dtype=torch.bool, device=device)
    records: list[tuple[Any, torch.Tensor]] | None = None
    root: TensorDictBase = first
    length = steps
    for t in range(steps):
        td = policy(root)
        if not isinstance(td, TensorDictBase):
            raise EnvError(f"rollout: the policy must return a TensorDict, got {type(td).__name__}")
        env.check_step_input(td)
        if records is None:
            records = []
            for key in td.keys(include_nested=True, leaves_only=True):
                if (key[0] if isinstance(key, tuple) else key) == NEXT:
                    continue
                value = td.get(key)
                buf = torch.empty((*batch, steps, *value.shape[nb:]), dtype=value.dtype, device=value.device)
                records.append((key, buf))
        for key, buf in records:
            buf.select(nb, t).copy_(td.get(key))
        if rec.advance(t, {key: td.get(key) for key in action_keys}):
            length = t + 1
            break
        for key in action_keys:
            td.del_(key)
        for key, value in rec.root_now(t).items():
            td.set(key, value.to(device) if device.type != "cpu" else value)
        for flag in FLAGS:
            td.set(flag, false)
        root = td
    assert records is not None
    return length, {
        (key if isinstance(key, tuple) else (key,)): _cut(buf, nb, length, steps) for key, buf in records
    }
