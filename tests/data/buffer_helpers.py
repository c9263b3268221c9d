"""Data builders shared by the replay-buffer tests."""

from __future__ import annotations

import torch
from tensordict import TensorDict


def transitions(n: int, start: int = 0) -> TensorDict:
    """``n`` transitions whose every leaf encodes its row number ``start + i``.

    ``observation[i] == start + i`` (all 3 entries), so a row read back can be checked
    against the number written into it.
    """
    ids = torch.arange(start, start + n)
    value = ids.float().unsqueeze(-1)
    return TensorDict(
        {
            "observation": value.expand(n, 3).clone(),
            "action": (value * 10).expand(n, 2).clone(),
            "id": ids,
            "done": (ids % 5 == 4).unsqueeze(-1),
            "next": {
                "observation": (value + 0.5).expand(n, 3).clone(),
                "reward": value.clone(),
                "done": (ids % 5 == 4).unsqueeze(-1),
            },
        },
        [n],
    )


def row_ids(batch: TensorDict) -> list[int]:
    """The row numbers written into a batch made by :func:`transitions`."""
    return batch["id"].tolist()


def assert_consistent(batch: TensorDict) -> None:
    """Every leaf of every row agrees with the row's id."""
    ids = batch["id"].float()
    torch.testing.assert_close(batch["observation"][:, 0], ids)
    torch.testing.assert_close(batch["action"][:, 1], ids * 10)
    torch.testing.assert_close(batch["next", "observation"][:, 2], ids + 0.5)
    torch.testing.assert_close(batch["next", "reward"][:, 0], ids)
