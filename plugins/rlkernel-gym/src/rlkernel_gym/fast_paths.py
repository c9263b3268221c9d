"""GymWrapper's step and its one-pass ``maybe_reset``, kept apart from the wrapper's
construction and resets (``rlkernel_gym.envs``).

:class:`FastPaths` is a mixin of :class:`~rlkernel_gym.envs.GymWrapper`:

* ``_step_into_fn``: *the* gymnasium step of rlkernel-gym (``GymWrapper`` declares
  ``direct_step``): it writes gymnasium's outputs straight into preallocated tensors.
  ``EnvBase._step`` is derived from it; the batched envs' workers
  (``rlkernel.envs.batched``) and the collectors' stepper bind it to their own buffers.
* ``maybe_reset`` of a plain vector env in one pass (declared by ``one_pass_reset``): it
  gives exactly what the generic path gives (the tests compare them), without merging
  TensorDicts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import gymnasium
import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel._compat import tensordict as td_compat
from rlkernel.envs.step import DONE, NEXT, RESET, REWARD, TERMINATED, TRUNCATED, NestedKey
from rlkernel.errors import ActionError, EnvError


def _as_path(key: NestedKey) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


def _show(path: tuple[str, ...]) -> str:
    return repr(path[0]) if len(path) == 1 else repr(path)


def _wrong_size(owner: str, value: Any, shown: str, shape: tuple[int, ...]) -> EnvError:
    return EnvError(
        f"{owner}._step: gymnasium returned an observation of shape {np.shape(value)} for {shown}, "
        f"whose spec has shape {shape}"
    )


class FastPaths:
    """``_step_into_fn`` and ``maybe_reset`` (vector envs) of :class:`~rlkernel_gym.envs.GymWrapper`."""

    def maybe_reset(self, tensordict: TensorDictBase) -> TensorDictBase:
        """:meth:`EnvBase.maybe_reset`; for a plain vector env, in one pass.

        gymnasium's masked reset returns the observations of every sub-env (the current one
        where no reset happened) and the sub-envs that were not reset were not done (their
        flags are all False), so the new root is the old one with gymnasium's observations
        and cleared flags: no per-entry merge, same result. (gymnasium's Sync/AsyncVectorEnv
        return the current observation of the sub-envs not reset; a third-party VectorEnv
        that does not should be wrapped through a subclass that overrides ``reset``.)
        """
        if not self._plain_vector_reset or type(tensordict) is not TensorDict:
            return super().maybe_reset(tensordict)
        rows = self._any_done(tensordict).numpy()
        if not rows.any():
            return tensordict
        self._assert_open()
        obs, _ = self._gym_reset(None if rows.all() else rows.copy())
        entries = {}
        for key, value in td_compat.entries(tensordict).items():
            if key != NEXT and key != RESET:  # a nested sub-TensorDict is copied: the result must not share it
                entries[key] = value if isinstance(value, torch.Tensor) else value.copy()
        self._obs_layout.source(obs, entries)
        shape = self._flags_shape
        entries[TERMINATED] = torch.from_numpy(np.zeros(shape, dtype=bool))
        entries[TRUNCATED] = torch.from_numpy(np.zeros(shape, dtype=bool))
        entries[DONE] = torch.from_numpy(np.zeros(shape, dtype=bool))
        return td_compat.new_unsafe(entries, batch_size=self.batch_size, device=self.device)

    def _step_into_fn(
        self, inputs: MutableMapping[NestedKey, Any], outputs: Mapping[NestedKey, torch.Tensor]
    ) -> Callable[[], None] | None:
        """The gymnasium step, writing into ``outputs`` (see :meth:`EnvBase._step_into_fn`).

        ``inputs`` maps the action key(s) to the action tensor(s), read at each call;
        ``outputs`` maps every key of the step's output (the observation leaves, the
        ``info`` entries, ``reward`` and the three flags) to a CPU tensor of its spec's
        shape and dtype. Each call steps gymnasium once and writes its outputs in place:
        observations cast to their spec's dtype (0-based categories), the reward as float32,
        ``terminated`` and ``truncated`` as gymnasium gives them and ``done`` their or.
        A sub-env whose episode ended must be reset first (an
        :class:`~rlkernel.errors.EnvError` otherwise). ``None`` when ``outputs`` are not
        these keys or not all on the CPU.
        """
        obs_layout, act_layout, info = self._obs_layout, self._action_layout, self._info
        views = {_as_path(key): value for key, value in outputs.items()}
        obs_keys = [leaf.key for leaf in obs_layout.leaves]
        info_keys = [(name,) for name in info.names]
        flag_keys = [(REWARD,), (TERMINATED,), (TRUNCATED,), (DONE,)]
        wanted = {*obs_keys, *info_keys, *flag_keys}
        if set(views) != wanted or not all(value.is_cpu for value in views.values()):
            return None
        in_keys = {_as_path(key): key for key in inputs}
        if set(in_keys) != {leaf.key for leaf in act_layout.leaves}:
            return None
        obs_bufs = [views[key].numpy() for key in obs_keys]
        obs_plan = [
            (leaf.path, leaf.offset, buf, buf.shape, _show(leaf.key)) for leaf, buf in zip(obs_layout.leaves, obs_bufs)
        ]
        # one observation leaf at the root, no offset (the usual case): written without the loop
        single_obs = obs_layout.single and obs_layout.leaves[0].offset is None
        obs, obs_shape, obs_shown = obs_bufs[0], obs_bufs[0].shape, obs_plan[0][4]
        info_bufs = [views[key].numpy() for key in info_keys]
        reward_out, term_out, trunc_out, done_out = (views[key].numpy() for key in flag_keys)
        flags_shape = self._flags_shape
        gym_step, needs_reset, vector = self.gym_env.step, self._needs_reset, self.is_vector
        name = type(self).__name__
        single_action = act_layout.single
        act_key = in_keys[act_layout.leaves[0].key]
        offset = act_layout.leaves[0].offset
        # a single Discrete action goes to gymnasium as a Python int (its fastest check)
        as_int = single_action and not vector and isinstance(self.gym_env.action_space, gymnasium.spaces.Discrete)
        start = int(offset) if as_int and offset is not None else 0
        to_gym = act_layout.to_gym

        def step() -> None:
            if needs_reset[0] if not vector else needs_reset.any():
                raise self._not_reset_error()
            if single_action:
                action = inputs[act_key]
                if action is None:
                    raise ActionError(f"{name}.step: the action key {act_key!r} is missing")
                if as_int and not action.is_floating_point():
                    action = int(action.item()) + start
                else:
                    action = (
                        action.numpy() if action.is_cpu and not action.requires_grad
                        else action.detach().cpu().numpy()
                    )
                    action = action if offset is None else action + offset
            else:
                action = to_gym(inputs)
            value, reward, terminated, truncated, gym_info = gym_step(action)
            if single_obs:
                try:  # reshape: a wrong size is an error, not a broadcast
                    obs[...] = value.reshape(obs_shape) if type(value) is np.ndarray else np.reshape(value, obs_shape)
                except ValueError:
                    raise _wrong_size(name, value, obs_shown, obs_shape) from None
            else:
                for path, obs_offset, buf, shape, shown in obs_plan:
                    item = value
                    for part in path:
                        item = item[part]
                    try:
                        buf[...] = np.reshape(item, shape)
                    except ValueError:
                        raise _wrong_size(name, item, shown, shape) from None
                    if obs_offset is not None:
                        buf -= obs_offset
            if info_bufs:
                for buf, arr in zip(info_bufs, info.arrays(gym_info, "step")):
                    buf[...] = arr
            if vector:  # (gymnasium's vector envs give arrays: their own reshape is the fast one)
                reward_out[...] = reward.reshape(flags_shape) if type(reward) is np.ndarray else np.reshape(
                    reward, flags_shape
                )
                term_out[...] = terminated.reshape(flags_shape) if type(terminated) is np.ndarray else np.reshape(
                    terminated, flags_shape
                )
                trunc_out[...] = truncated.reshape(flags_shape) if type(truncated) is np.ndarray else np.reshape(
                    truncated, flags_shape
                )
                np.logical_or(term_out, trunc_out, out=done_out)
                needs_reset[:] = done_out[:, 0]
            else:
                reward_out[...] = reward
                term, trunc = bool(terminated), bool(truncated)
                term_out[...], trunc_out[...], done_out[...] = term, trunc, term or trunc
                needs_reset[0] = term or trunc

        return step
