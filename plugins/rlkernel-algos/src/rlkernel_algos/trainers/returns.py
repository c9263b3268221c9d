"""Episode returns from collected batches: :class:`EpisodeReturnTracker`.

The tracker reads the return of every episode that ends in a batch. When the batch holds
``("next", "episode_reward")`` (written by a ``RewardSum`` transform) it takes that entry
at the done steps; otherwise it sums ``("next", "reward")`` itself, carrying the partial
sums of unfinished episodes over to the next batch (vectorised over sub-environments:
no Python loop over steps).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch
from tensordict import TensorDictBase

__all__ = ["EpisodeReturnTracker"]

EPISODE_REWARD = ("next", "episode_reward")
REWARD = ("next", "reward")
DONE = ("next", "done")


def _per_step(value: torch.Tensor, batch_size: torch.Size) -> torch.Tensor:
    """``value`` of shape ``(*batch, *event)`` as ``(*batch,)`` (summed over the event dims)."""
    return value.reshape(*batch_size, -1).sum(-1) if value.ndim > len(batch_size) else value


class EpisodeReturnTracker:
    """Returns and lengths of the most recent ``window`` finished episodes.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> batch = TensorDict({"next": {"reward": torch.ones(1, 4, 1),
    ...                              "done": torch.tensor([[[False], [True], [False], [True]]])}}, [1, 4])
    >>> tracker = EpisodeReturnTracker()
    >>> tracker.update(batch)
    [2.0, 2.0]
    >>> tracker.mean_return, tracker.episodes
    (2.0, 2)
    """

    def __init__(self, window: int = 20) -> None:
        self.window = int(window)
        self.returns: deque[float] = deque(maxlen=self.window)
        self.lengths: deque[int] = deque(maxlen=self.window)
        self.episodes = 0
        self._carry_return: torch.Tensor | None = None  # running sums of unfinished episodes
        self._carry_length: torch.Tensor | None = None

    @property
    def mean_return(self) -> float | None:
        """Mean return of the last ``window`` episodes (``None`` before the first one ends)."""
        return sum(self.returns) / len(self.returns) if self.returns else None

    @property
    def mean_length(self) -> float | None:
        """Mean length of the last ``window`` episodes (only known when rewards are summed here)."""
        return sum(self.lengths) / len(self.lengths) if self.lengths else None

    def update(self, batch: TensorDictBase) -> list[float]:
        """Record the episodes that end in ``batch`` (time is the last batch dim); return their returns."""
        done = batch.get(DONE, None)
        if done is None or batch.batch_dims == 0:
            return []
        size = batch.batch_size
        done = _per_step(done, size).bool()
        summed = batch.get(EPISODE_REWARD, None)
        if summed is not None:
            steps = size[-1]
            flat_done = done.reshape(-1, steps)
            ended = _per_step(summed, size).reshape(-1, steps)[flat_done]
            # in the order the episodes ended, across sub-environments
            found = ended[torch.nonzero(flat_done)[:, 1].argsort(stable=True)].tolist()
        else:
            reward = batch.get(REWARD, None)
            if reward is None:
                return []
            found = self._sum_rewards(_per_step(reward, size).double(), done)
        self.returns.extend(found)
        self.episodes += len(found)
        return found

    def _sum_rewards(self, reward: torch.Tensor, done: torch.Tensor) -> list[float]:
        steps = reward.shape[-1]
        reward, done = reward.reshape(-1, steps), done.reshape(-1, steps)
        envs = reward.shape[0]
        if self._carry_return is None or self._carry_return.shape[0] != envs:
            self._carry_return = torch.zeros(envs, dtype=torch.float64)
            self._carry_length = torch.zeros(envs, dtype=torch.int64)
        assert self._carry_length is not None
        total = reward.cumsum(-1) + self._carry_return.unsqueeze(-1)
        count = torch.arange(1, steps + 1).expand(envs, steps) + self._carry_length.unsqueeze(-1)
        # the last done at or before each step (-1: none in this batch)
        last_done = torch.where(done, torch.arange(steps), torch.full_like(count, -1)).cummax(-1).values
        before = torch.cat([torch.full((envs, 1), -1, dtype=torch.int64), last_done[:, :-1]], -1)
        has_before = before >= 0
        at_before = before.clamp_min(0)
        base_return = torch.where(has_before, total.gather(-1, at_before), torch.zeros_like(total))
        base_length = torch.where(has_before, count.gather(-1, at_before), torch.zeros_like(count))
        returns = (total - base_return)[done]
        lengths = (count - base_length)[done]
        end = last_done[:, -1]
        ended = end >= 0
        at_end = end.clamp_min(0).unsqueeze(-1)
        self._carry_return = torch.where(ended, total[:, -1] - total.gather(-1, at_end).squeeze(-1), total[:, -1])
        self._carry_length = torch.where(ended, count[:, -1] - count.gather(-1, at_end).squeeze(-1), count[:, -1])
        # order the episodes by the step at which they ended, across sub-environments
        order = torch.nonzero(done)[:, 1].argsort(stable=True)
        self.lengths.extend(lengths[order].tolist())
        return returns[order].tolist()

    def drop_unfinished(self) -> None:
        """Forget the sums of the episodes in progress (their environments were reset)."""
        self._carry_return = self._carry_length = None

    def state_dict(self) -> dict[str, Any]:
        """The window and the unfinished sums (``torch.load(weights_only=True)`` reads it)."""
        return {
            "returns": list(self.returns),
            "lengths": list(self.lengths),
            "episodes": self.episodes,
            "carry_return": self._carry_return,
            "carry_length": self._carry_length,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.returns = deque(state["returns"], maxlen=self.window)
        self.lengths = deque(state["lengths"], maxlen=self.window)
        self.episodes = int(state["episodes"])
        self._carry_return = state["carry_return"]
        self._carry_length = state["carry_length"]
