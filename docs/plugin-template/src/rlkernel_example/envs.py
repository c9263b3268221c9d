"""The environment itself, imported only when ``example:RandomWalk-v0`` is built."""

import torch
from tensordict import TensorDict

from rlkernel.envs import EnvBase
from rlkernel.specs import Categorical, Composite, Unbounded


class RandomWalkEnv(EnvBase):
    """Walk left (action 0) or right (action 1); the episode ends at +-``size``."""

    def __init__(self, size: int = 3):
        super().__init__()
        self.size = size
        self.observation_spec = Composite(observation=Unbounded(shape=(1,)))
        self.action_spec = Categorical(2, shape=(1,))
        self.position = torch.zeros(1)
        self.generator = torch.Generator()

    def _reset(self, tensordict):
        self.position = torch.zeros(1)
        return TensorDict({"observation": self.position.clone()}, [])

    def _step(self, tensordict):
        move = tensordict["action"].float() * 2 - 1
        self.position = self.position + move
        terminated = self.position.abs() >= self.size
        return TensorDict(
            {
                "observation": self.position.clone(),
                "reward": (self.position >= self.size).float(),
                "terminated": terminated,
            },
            [],
        )

    def _set_seed(self, seed):
        self.generator.manual_seed(seed if seed is not None else 0)
