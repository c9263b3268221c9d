"""GymWrapper's fast paths, kept apart from the wrapper's contract (``rlkernel_gym.envs``).

:class:`FastPaths` is a mixin of :class:`~rlkernel_gym.envs.GymWrapper`:

* ``maybe_reset`` of a plain vector env in one pass;
* ``_step_into_fn``: a step that writes gymnasium's outputs straight into preallocated
  tensors, used by the batched envs' workers (``rlkernel.envs.batched``) and by the
  collectors' stepper.

Both give exactly what the generic paths give (the tests compare them); they only skip
building and merging TensorDicts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium
import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel._compat import tensordict as td_compat
from rlkernel.envs.step import DONE, NEXT, RESET, REWARD, TERMINATED, TRUNCATED
from rlkernel.errors import ActionError, EnvError


class FastPaths:
    """``maybe_reset`` (vector envs) and ``_step_into_fn`` of :class:`~rlkernel_gym.envs.GymWrapper`."""

    def maybe_reset(self, tensordict: TensorDictBase) -> TensorDictBase:
        """:meth:`EnvBase.maybe_reset`; for a plain vector env, in one pass.

        gymnasium's masked reset returns the observations of every sub-env (the current one
        where no reset happened) and the sub-envs that were not reset were not done (their
        flags are all False), so the new root is the old one with gymnasium's observations
        and cleared flags: no per-entry merge, same result. (gymnasium's Sync/AsyncVectorEnv
        return the current observation of the sub-envs not reset; a third-party VectorEnv
        that does not should be wrapped through a subclass that overrides ``reset``.)
        """
        if not self._plain_vector_reset or type(tensordict) is not TensorDict or "_reset" in vars(self):
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
        self, inputs: Mapping[Any, torch.Tensor], outputs: Mapping[Any, torch.Tensor]
    ) -> Callable[[], None] | None:
        """A step that reads the action from ``inputs`` and writes into ``outputs``, used by
        the batched envs' workers and by the collectors.

        ``inputs`` maps the action key to the action tensor (read at each call: the caller
        may put a new tensor there between calls); ``outputs`` maps every key of
        :meth:`_step`'s output to a preallocated tensor of its spec's shape and dtype. The
        function writes exactly what :meth:`_step` returns (observation cast to its spec's
        dtype, reward, the three flags) without building tensors or a TensorDict, in about
        half the time. Only for a CPU env with one observation and one action leaf at the
        root, no ``info`` keys and no pixels, when this class's ``_step`` is not overridden
        (by a subclass or on the instance); ``None`` otherwise (the caller then uses :meth:`_step`).
        """
        obs_layout, act_layout = self._obs_layout, self._action_layout
        simple = (
            not self._has_info and not self.from_pixels and self._trusted_outputs
            and obs_layout.single and act_layout.single and obs_layout.leaves[0].offset is None
            and self._own_outputs and "_step" not in vars(self)  # _step not overridden, nor patched
        )
        obs_key, act_key = obs_layout.keys[0][0], act_layout.keys[0][0]
        wanted = {obs_key, REWARD, TERMINATED, TRUNCATED, DONE}
        if not simple or set(outputs) != wanted or set(inputs) != {act_key}:
            return None
        offset = act_layout.leaves[0].offset
        obs, reward_out = outputs[obs_key].numpy(), outputs[REWARD].numpy()
        term_out, trunc_out, done_out = (outputs[k].numpy() for k in (TERMINATED, TRUNCATED, DONE))
        obs_shape, flags_shape = obs.shape, self._flags_shape
        gym_step, needs_reset, vector = self.gym_env.step, self._needs_reset, self.is_vector
        # a single Discrete action goes to gymnasium as a Python int (its fastest check)
        as_int = not vector and isinstance(self.gym_env.action_space, gymnasium.spaces.Discrete)
        start = 0 if offset is None else int(offset)

        def step() -> None:
            if needs_reset[0] if not vector else needs_reset.any():
                raise self._not_reset_error()
            action = inputs[act_key]
            if action is None:
                raise ActionError(f"{type(self).__name__}.step: the action key {act_key!r} is missing")
            if as_int and not action.is_floating_point():
                action = int(action.item()) + start
            else:
                action = action.numpy() if action.is_cpu and not action.requires_grad else action.detach().cpu().numpy()
                action = action if offset is None else action + offset
            value, reward, terminated, truncated, _ = gym_step(action)
            try:
                obs[...] = np.reshape(value, obs_shape)  # reshape: a wrong size is an error, not a broadcast
            except ValueError:
                raise EnvError(
                    f"{type(self).__name__}._step: gymnasium returned an observation of shape "
                    f"{np.shape(value)} for {obs_key!r}, whose spec has shape {obs_shape}"
                ) from None
            if vector:
                reward_out[...] = np.reshape(reward, flags_shape)
                term_out[...] = np.reshape(terminated, flags_shape)
                trunc_out[...] = np.reshape(truncated, flags_shape)
                np.logical_or(term_out, trunc_out, out=done_out)
                needs_reset[:] = done_out[:, 0]
            else:
                reward_out[...] = reward
                term, trunc = bool(terminated), bool(truncated)
                term_out[...], trunc_out[...], done_out[...] = term, trunc, term or trunc
                needs_reset[0] = term or trunc

        return step
