"""``DMControlWrapper`` and ``DMControlEnv``: DeepMind Control Suite tasks behind ``EnvBase``.

The TensorDict of a step (batch size ``()``)::

    <each observation by its own name> (or "observation" with concat_observations=True),
    [pixels], action, done, terminated, truncated,
    next: {observations..., reward (float32, (1,)), done, terminated, truncated}

**dtypes.** dm_control's observations are float64 and stay float64 (as in TorchRL; add the
core's ``DoubleToFloat`` transform to cast); ``concat_observations=True`` builds one new
float32 vector (the cast is free there). The action spec is float32 (what policies emit);
actions are widened to float64, exactly, for dm_control.

**Episode ends.** dm_control ends an episode with a ``LAST`` time step; its ``discount``
tells why: ``0`` for a terminal state (``terminated``), non-zero for the time limit
(``truncated``, e.g. every suite task after 1000 steps).

**Seeding.** ``set_seed(seed)`` reseeds the task's ``RandomState`` in place, exactly as
``task_kwargs={"random": seed}`` would have created it, so two envs seeded alike replay the
same episodes from their next ``reset``.

**Pixels.** ``from_pixels=True`` adds ``physics.render(**render_kwargs)`` as ``"pixels"``
(uint8 ``(H, W, 3)``; ``render_kwargs`` default to dm_control's ``height=240, width=320,
camera_id=0``). Headless machines need ``MUJOCO_GL=egl`` set before dm_control is imported.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from dm_control import suite
from tensordict import TensorDict, TensorDictBase

from rlkernel.envs import EnvBase
from rlkernel.envs.step import ACTION, DONE, REWARD, TERMINATED, TRUNCATED
from rlkernel.errors import EnvError, SpecError
from rlkernel.specs import Bounded, Composite, TensorSpec, Unbounded

PIXELS = "pixels"
OBSERVATION = "observation"
RESERVED = {ACTION, DONE, REWARD, TERMINATED, TRUNCATED, PIXELS, "next", "_reset"}
DEFAULT_RENDER = {"height": 240, "width": 320, "camera_id": 0}


def _torch_dtype(dtype: Any) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=np.dtype(dtype))).dtype


def action_spec_of(spec: Any) -> TensorSpec:
    """The rlkernel spec (float32) of a dm_env action spec (``BoundedArray`` or ``Array``)."""
    shape = tuple(getattr(spec, "shape", ()) or ())
    if not hasattr(spec, "dtype") or not np.issubdtype(spec.dtype, np.floating):
        raise SpecError(f"rlkernel-dmc: only a float Array/BoundedArray action spec converts, got {spec!r}")
    if hasattr(spec, "minimum") and hasattr(spec, "maximum"):
        low = np.broadcast_to(np.asarray(spec.minimum, dtype=np.float64), shape)
        high = np.broadcast_to(np.asarray(spec.maximum, dtype=np.float64), shape)
        if np.isfinite(low).all() and np.isfinite(high).all():
            return Bounded(torch.as_tensor(low.copy()), torch.as_tensor(high.copy()), shape=shape)
    return Unbounded(shape)


class DMControlWrapper(EnvBase):
    """An rlkernel environment around a dm_control (``dm_env``) environment.

    Args:
        env: a ``dm_control.rl.control.Environment`` (what ``suite.load`` returns).
        from_pixels: add rendered frames as ``"pixels"`` (uint8 ``(H, W, 3)``).
        pixels_only: keep only ``"pixels"`` (with ``from_pixels``).
        render_kwargs: ``height``, ``width``, ``camera_id`` (and any other argument of
            ``physics.render``).
        concat_observations: one float32 ``"observation"`` vector instead of one entry per
            observation name.
        device: where the TensorDicts live.
        check_actions: validate actions against the action spec in ``step``.
    """

    def __init__(
        self,
        env: Any,
        *,
        from_pixels: bool = False,
        pixels_only: bool = False,
        render_kwargs: Mapping[str, Any] | None = None,
        concat_observations: bool = False,
        device: torch.device | str | None = None,
        check_actions: bool = True,
    ) -> None:
        if not all(hasattr(env, name) for name in ("reset", "step", "observation_spec", "action_spec")):
            raise EnvError(f"DMControlWrapper needs a dm_env environment, got {type(env).__name__}")
        if pixels_only and not from_pixels:
            raise EnvError("pixels_only=True needs from_pixels=True")
        super().__init__(device=device, check_actions=check_actions)
        self.dm_env = env
        self.from_pixels = from_pixels
        self.pixels_only = pixels_only
        self.concat_observations = concat_observations
        self.render_kwargs = {**DEFAULT_RENDER, **(render_kwargs or {})}
        obs_spec = env.observation_spec()
        self._names = list(obs_spec)
        self._dtypes = {name: np.dtype(obs_spec[name].dtype) for name in self._names}
        specs: dict[str, TensorSpec] = {}
        if not pixels_only:
            if concat_observations:
                size = sum(int(np.prod(obs_spec[name].shape)) for name in self._names)
                specs[OBSERVATION] = Unbounded((size,), dtype=torch.float32)
            else:
                for name in self._names:
                    if name in RESERVED:
                        raise SpecError(f"rlkernel-dmc: the observation name {name!r} clashes with a reserved key")
                    specs[name] = Unbounded(tuple(obs_spec[name].shape), dtype=_torch_dtype(obs_spec[name].dtype))
        if from_pixels:
            env.reset()
            frame = self._render()
            specs[PIXELS] = Bounded(0, 255, shape=frame.shape, dtype=torch.uint8)
        self.observation_spec = Composite(specs, device=self.device)
        self.action_spec = action_spec_of(env.action_spec()).to(self.device)
        self._needs_reset = True

    # ------------------------------------------------------------------ helpers
    def _render(self) -> np.ndarray:
        try:
            frame = self.dm_env.physics.render(**self.render_kwargs)
        except Exception as err:
            backend = os.environ.get("MUJOCO_GL")
            raise EnvError(
                f"rlkernel-dmc: rendering failed ({type(err).__name__}: {err}) with MUJOCO_GL={backend!r}; "
                "on a machine without a display set MUJOCO_GL=egl (or osmesa) before dm_control is imported"
            ) from err
        return np.asarray(frame, dtype=np.uint8)

    def _observation(self, observation: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if not self.pixels_only:
            if self.concat_observations:
                parts = [np.asarray(observation[name], dtype=np.float32).reshape(-1) for name in self._names]
                out[OBSERVATION] = torch.from_numpy(np.concatenate(parts))
            else:
                for name in self._names:
                    out[name] = torch.from_numpy(np.array(observation[name], dtype=self._dtypes[name]))
        if self.from_pixels:
            out[PIXELS] = torch.from_numpy(self._render().copy())
        return out

    # ------------------------------------------------------------------ the contract
    def _set_seed(self, seed: int | None) -> None:
        task = getattr(self.dm_env, "task", None)
        random = getattr(task, "random", None)
        if not isinstance(random, np.random.RandomState):
            raise EnvError(f"{type(self).__name__}.set_seed: the environment has no task.random RandomState to seed")
        random.seed(seed)

    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        time_step = self.dm_env.reset()
        self._needs_reset = False
        return TensorDict(self._observation(time_step.observation), batch_size=(), device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self._needs_reset:
            raise EnvError(f"{type(self).__name__}.step: the episode has ended (or never started); call reset() first")
        action = tensordict.get(ACTION)
        time_step = self.dm_env.step(action.detach().cpu().numpy().astype(np.float64))
        last = bool(time_step.last())
        discount = 1.0 if time_step.discount is None else float(time_step.discount)
        terminated = last and discount == 0.0
        self._needs_reset = last
        out = self._observation(time_step.observation)
        out[REWARD] = torch.tensor([0.0 if time_step.reward is None else time_step.reward], dtype=torch.float32)
        out[TERMINATED] = torch.tensor([terminated])
        out[TRUNCATED] = torch.tensor([last and not terminated])
        out[DONE] = torch.tensor([last])
        return TensorDict(out, batch_size=(), device=self.device)

    def close(self) -> None:
        """Close the dm_control environment (frees its physics)."""
        if not self.is_closed:
            self.dm_env.close()
        super().close()


class DMControlEnv(DMControlWrapper):
    """A suite task by name: ``DMControlEnv("walker", "walk", from_pixels=True)``.

    Args:
        domain, task: a pair of ``dm_control.suite.ALL_TASKS``.
        environment_kwargs: passed to ``suite.load`` (``flat_observation``,
            ``control_timestep``, ...).
        **task_kwargs: passed to the task (``random=seed``, ``time_limit=...``).
        The other arguments are those of :class:`DMControlWrapper`.

    >>> env = DMControlEnv("cartpole", "swingup", concat_observations=True)
    >>> env.observation_spec["observation"].shape
    torch.Size([5])
    """

    def __init__(
        self,
        domain: str,
        task: str,
        *,
        from_pixels: bool = False,
        pixels_only: bool = False,
        render_kwargs: Mapping[str, Any] | None = None,
        concat_observations: bool = False,
        device: torch.device | str | None = None,
        check_actions: bool = True,
        environment_kwargs: Mapping[str, Any] | None = None,
        **task_kwargs: Any,
    ) -> None:
        if (domain, task) not in suite.ALL_TASKS:
            known = [f"{d}/{t}" for d, t in suite.ALL_TASKS]
            close = difflib.get_close_matches(f"{domain}/{task}", known, n=5, cutoff=0.5)
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise EnvError(f"DMControlEnv: dm_control's suite has no task {domain!r}/{task!r}{hint}")
        self.domain, self.task = domain, task
        env = suite.load(
            domain,
            task,
            task_kwargs=dict(task_kwargs) or None,
            environment_kwargs=dict(environment_kwargs) if environment_kwargs else None,
        )
        super().__init__(
            env,
            from_pixels=from_pixels,
            pixels_only=pixels_only,
            render_kwargs=render_kwargs,
            concat_observations=concat_observations,
            device=device,
            check_actions=check_actions,
        )

    def __repr__(self) -> str:
        return f"DMControlEnv({self.domain!r}, {self.task!r}, from_pixels={self.from_pixels}, device={self.device})"
