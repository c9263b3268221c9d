"""Rendered frames as part of gymnasium's observation.

:class:`PixelObservation` is a gymnasium wrapper, applied to each (sub-)environment, that adds
``env.render()`` to the observation under ``"pixels"``. Doing it inside the environment (rather
than calling ``render`` afterwards) keeps the frame of the *last* step of an episode intact in
vectorised environments and lets ``AsyncVectorEnv`` ship frames through its shared memory.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from rlkernel.errors import EnvError

PIXELS = "pixels"
STATE = "observation"


class PixelObservation(gymnasium.ObservationWrapper):
    """Observation ``{"pixels": frame, ...state}``; frames are uint8 ``(H, W, 3)``.

    The state goes under ``"observation"`` (or, for a ``Dict`` observation space, its entries
    stay root entries); ``pixels_only=True`` drops it. The environment must have been made
    with ``render_mode="rgb_array"``. Building the wrapper resets the environment once to
    learn the frame size.
    """

    def __init__(self, env: gymnasium.Env, pixels_only: bool = False) -> None:
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise EnvError(
                f"from_pixels needs an environment made with render_mode='rgb_array', got "
                f"render_mode={env.render_mode!r} for {env}"
            )
        self.pixels_only = pixels_only
        env.reset()
        frame = env.render()
        if not isinstance(frame, np.ndarray) or frame.ndim != 3:
            raise EnvError(
                f"from_pixels: {env}.render() must return an (H, W, C) array, got "
                f"{type(frame).__name__} {getattr(frame, 'shape', '')}"
            )
        entries: dict[str, gymnasium.Space] = {
            PIXELS: gymnasium.spaces.Box(0, 255, shape=frame.shape, dtype=np.uint8)
        }
        state = env.observation_space
        self._state_is_dict = isinstance(state, gymnasium.spaces.Dict)
        if not pixels_only:
            if self._state_is_dict:
                if PIXELS in state.spaces:
                    raise EnvError(f"from_pixels: the observation of {env} already has a {PIXELS!r} entry")
                entries.update(state.spaces)
            else:
                entries[STATE] = state
        self.observation_space = gymnasium.spaces.Dict(entries)

    def observation(self, observation: Any) -> dict[str, Any]:
        """Add the current frame to ``observation``."""
        out: dict[str, Any] = {PIXELS: self.env.render()}
        if not self.pixels_only:
            if self._state_is_dict:
                out.update(observation)
            else:
                out[STATE] = observation
        return out
