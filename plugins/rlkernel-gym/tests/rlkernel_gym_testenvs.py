"""Two tiny gymnasium environments with structured spaces, registered with gymnasium.

* ``RlkernelTest/DictObs-v0``: a nested ``Dict`` observation (a float64 ``Box`` and a
  ``Discrete`` with ``start=1`` inside), a ``Discrete(3, start=-1)`` action, an ``info`` with
  ``"distance"`` (every step and reset) and ``"steps"`` (steps only); it terminates when the
  walker leaves ``[-1, 1]`` and is truncated after 12 steps.
* ``RlkernelTest/TupleObs-v0``: a ``Tuple`` observation (``Box``, ``MultiBinary``,
  ``MultiDiscrete`` with a ``start``) and a ``Tuple`` action (``MultiDiscrete``,
  ``MultiBinary``); it terminates at a random step in ``[4, 7]`` and is truncated after 6.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

DICT_ID = "RlkernelTest/DictObs-v0"
TUPLE_ID = "RlkernelTest/TupleObs-v0"


class DictObsEnv(gymnasium.Env):
    """A walker on a line; observation ``{"position", "sensors": {"velocity", "mode"}}``."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = spaces.Dict(
            {
                "position": spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32),
                "sensors": spaces.Dict(
                    {
                        "velocity": spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64),
                        "mode": spaces.Discrete(3, start=1),
                    }
                ),
            }
        )
        self.action_space = spaces.Discrete(3, start=-1)
        self.position = np.zeros(2)
        self.velocity = np.zeros(2)
        self.steps = 0

    def _obs(self) -> dict[str, Any]:
        return {
            "position": np.clip(self.position, -1.0, 1.0).astype(np.float32),
            "sensors": {"velocity": self.velocity.copy(), "mode": 1 + self.steps % 3},
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-0.5, 0.5, size=2)
        self.velocity = np.zeros(2)
        self.steps = 0
        return self._obs(), {"distance": float(np.abs(self.position).sum())}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        assert self.action_space.contains(action), action
        self.steps += 1
        self.velocity = np.array([0.2 * int(action), self.np_random.normal(0.0, 0.1)])
        self.position = self.position + self.velocity
        terminated = bool(np.abs(self.position).max() > 1.0)
        reward = -float(np.abs(self.position).sum())
        return self._obs(), reward, terminated, False, {"distance": -reward, "steps": self.steps}


class TupleObsEnv(gymnasium.Env):
    """Tuple observations and actions; ends at a random step."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = spaces.Tuple(
            (
                spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32),
                spaces.MultiBinary(4),
                spaces.MultiDiscrete([3, 5], start=[1, -2]),
            )
        )
        self.action_space = spaces.Tuple((spaces.MultiDiscrete([2, 3], start=[0, 1]), spaces.MultiBinary(2)))
        self.steps = 0
        self.horizon = 5
        self.bits = np.zeros(4, dtype=np.int8)

    def _obs(self) -> tuple[Any, ...]:
        box = self.np_random.uniform(0.0, 1.0, size=3).astype(np.float32)
        return box, self.bits.copy(), np.array([1 + self.steps % 3, -2 + self.steps % 5])

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.steps = 0
        self.horizon = int(self.np_random.integers(4, 8))
        self.bits = np.zeros(4, dtype=np.int8)
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        assert self.action_space.contains(action), action
        choice, bits = action
        self.steps += 1
        self.bits = np.concatenate([bits, np.asarray(choice) % 2]).astype(np.int8)
        reward = float(choice[0] + choice[1] + bits.sum())
        return self._obs(), reward, self.steps >= self.horizon, False, {}


def register() -> None:
    """Register both environments with gymnasium (idempotent)."""
    if DICT_ID not in gymnasium.registry:
        gymnasium.register(DICT_ID, entry_point=DictObsEnv, max_episode_steps=12)
    if TUPLE_ID not in gymnasium.registry:
        gymnasium.register(TUPLE_ID, entry_point=TupleObsEnv, max_episode_steps=6)


register()
