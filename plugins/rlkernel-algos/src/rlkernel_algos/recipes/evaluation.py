"""Evaluate a policy: deterministic actions, N whole episodes, the mean and spread of the return."""

from __future__ import annotations

import math
from typing import Any

import torch

from rlkernel.envs import EnvBase
from rlkernel.exploration import ExplorationType, set_exploration_type

__all__ = ["evaluate", "summarize"]


@torch.no_grad()
def evaluate(
    policy: Any, env: EnvBase, episodes: int, *, seed: int | None = None, max_steps: int = 1_000_000
) -> list[float]:
    """Run ``episodes`` whole episodes of ``policy`` in ``env`` and return their returns.

    The policy acts under ``set_exploration_type(DETERMINISTIC)`` (the distribution's mode
    or mean; exploration noise off). ``env`` may be batched: with ``N`` sub-environments,
    episode ``k`` of the result is the ``k // N``-th episode of sub-environment ``k % N``, so
    the result does not depend on which episodes end first. Raises ``RuntimeError`` after
    ``max_steps`` steps rather than hang on a policy that never ends an episode.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"evaluate: episodes must be a positive int, got {episodes!r}")
    if seed is not None:
        env.set_seed(seed)
    n_envs = max(1, env.batch_size.numel())
    wanted = [len(range(i, episodes, n_envs)) for i in range(n_envs)]
    found: list[list[float]] = [[] for _ in range(n_envs)]
    running = torch.zeros(n_envs, dtype=torch.float64)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        td = env.reset()
        for _ in range(max_steps):
            td = policy(td)
            td, root = env.step_and_maybe_reset(td)
            nxt = td.get("next")
            running += nxt.get("reward").reshape(n_envs, -1).sum(-1).double()
            done = nxt.get("done").reshape(n_envs, -1).any(-1)
            for i in torch.nonzero(done).flatten().tolist():
                if len(found[i]) < wanted[i]:
                    found[i].append(float(running[i]))
            running[done] = 0.0
            td = root
            if all(len(f) >= w for f, w in zip(found, wanted)):
                break
        else:
            raise RuntimeError(f"evaluate: {episodes} episodes did not end within {max_steps} steps")
    return [found[k % n_envs][k // n_envs] for k in range(episodes)]


def summarize(returns: list[float]) -> dict[str, Any]:
    """``{"episodes", "mean", "std", "min", "max", "returns"}`` (population std)."""
    n = len(returns)
    mean = sum(returns) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / n)
    return {"episodes": n, "mean": mean, "std": std, "min": min(returns), "max": max(returns), "returns": returns}
