"""The fast path of :meth:`GymWrapper.rollout`: gymnasium stepped straight into buffers.

The generic :meth:`EnvBase.rollout` builds, validates and stacks a few TensorDicts per step,
which costs far more than a gymnasium step. Here every entry of the rollout is a numpy
buffer of shape ``(*batch_size, T, *event_shape)`` allocated once; each step writes the
gymnasium outputs into row ``t`` and one TensorDict is built at the end, sharing the
buffers' memory. Without a policy the actions for all steps are drawn from the action spec
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
        # (t + 1, reset rows or None, reset observation arrays, reset info arrays) per reset.
        self.resets: list[tuple[int, Any, list[np.ndarray], list[np.ndarray]]] = []
        self.obs: Any = None
        self.last_info: Any = None
        self.done: Any = None
        self.just_reset = False

    def at(self, t: int) -> Any:
        return (slice(None), t) if self.vector else t

    def advance(self, t: int, action: Any) -> bool:
        """Take step ``t``; reset what ended. Returns True when the rollout must stop."""
        obs, reward, terminated, truncated, info = self.env.gym_env.step(action)
        i = self.at(t)
        if self.layout.single:
            buf = self.next_obs[0]
            buf[i] = obs
            offset = self.layout.leaves[0].offset
            if offset is not None:
                buf[i] -= offset
        else:
            self.layout.write(obs, self.next_obs, i)
        if self.info:
            self.info.write(info, self.next_info, i)
        if self.vector:
            self.reward[:, t, 0] = reward
            self.terminated[:, t, 0] = terminated
            self.truncated[:, t, 0] = truncated
            done = np.logical_or(terminated, truncated)
            ended = bool(done.any())
        else:
            self.reward[t, 0] = reward
            self.terminated[t, 0] = terminated
            self.truncated[t, 0] = truncated
            done = None
            ended = bool(terminated or truncated)
        self.obs, self.last_info, self.just_reset = obs, info, False
        if not ended:
            return False
        if self.break_when_done:
            self.env._needs_reset[:] = done if self.vector else True
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
    gym_actions = []
    for leaf, value in zip(layout.leaves, drawn):
        arr = value.cpu().numpy()
        gym_actions.append(arr + leaf.offset if leaf.offset is not None else arr)
    length = steps
    advance = rec.advance
    if layout.single:
        actions = gym_actions[0]
        for t in range(steps):
            if advance(t, actions[t]):
                length = t + 1
                break
    else:
        paths = [leaf.path for leaf in layout.leaves]
        for t in range(steps):
            if advance(t, layout.from_arrays({p: a[t] for p, a in zip(paths, gym_actions)})):
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
        if rec.advance(t, env._action_layout.to_gym(td)):
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
