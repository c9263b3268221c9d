"""Small environments for tests and for plugin authors trying the contract.

Environments a user trains on come from plugins (``rlkernel-gym``, ``rlkernel-dmc``, ...);
these exist so the core can test itself without any backend installed.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.envs.common import EnvBase
from rlkernel.errors import EnvError
from rlkernel.specs import Bounded, Composite, Unbounded


class CountingEnv(EnvBase):
    """Adds the action (a float in ``[0, 1]``) to a counter; terminates at ``max_count``.

    Observation ``"observation"`` is the counter, shape ``(*batch_size, 1)``; the reward
    is the action; ``truncated`` is raised after ``max_steps`` steps when given.

    >>> env = CountingEnv(max_count=2, batch_size=(3,))
    >>> env.rollout(5, policy=lambda td: td.set("action", torch.ones(3, 1))).batch_size
    torch.Size([3, 2])

    ``num_envs=N`` is ``batch_size=(N,)``: it batches natively under :func:`rlkernel.make_env`.
    """

    batches_natively = True

    def __init__(
        self,
        max_count: float = 5.0,
        *,
        max_steps: int | None = None,
        batch_size: tuple[int, ...] = (),
        num_envs: int | None = None,
        device: str | torch.device | None = None,
        check_actions: bool = True,
    ) -> None:
        if num_envs is not None:
            if batch_size:
                raise EnvError(f"CountingEnv: give num_envs or batch_size, not both (got {num_envs}, {batch_size})")
            batch_size = (num_envs,)
        super().__init__(batch_size=batch_size, device=device, check_actions=check_actions)
        shape = (*self.batch_size, 1)
        self.max_count = float(max_count)
        self.max_steps = max_steps
        self.observation_spec = Composite(
            observation=Unbounded(shape=shape, device=self.device), shape=self.batch_size, device=self.device
        )
        self.action_spec = Bounded(0.0, 1.0, shape=shape, device=self.device)
        self.count = torch.zeros(shape, device=self.device)
        self.steps = torch.zeros(shape, dtype=torch.int64, device=self.device)
        self.seed: int | None = None

    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        mask = tensordict.get("_reset", None) if tensordict is not None else None
        if mask is None:
            self.count.zero_()
            self.steps.zero_()
        else:
            self.count[mask] = 0.0
            self.steps[mask] = 0
        return TensorDict({"observation": self.count.clone()}, self.batch_size, device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get("action")
        self.count += action
        self.steps += 1
        terminated = self.count >= self.max_count
        truncated = (
            self.steps >= self.max_steps if self.max_steps is not None else torch.zeros_like(terminated)
        )
        return TensorDict(
            {
                "observation": self.count.clone(),
                "reward": action.clone(),
                "terminated": terminated,
                "truncated": truncated & ~terminated,
                "done": terminated | truncated,
            },
            self.batch_size,
            device=self.device,
        )

    def _set_seed(self, seed: int | None) -> None:
        self.seed = seed
