"""The key conventions of a step and :func:`step_mdp`.

A step is one TensorDict. Before ``env.step`` it holds the observation and the action at
the root; after it, ``"next"`` holds what the environment returned::

    {observation, action, done, terminated, truncated,
     next: {observation, reward, done, terminated, truncated}}

Multi-agent groups use nested keys (``("agents", "observation")``, ``("agents", "reward")``)
with their own ``done``/``terminated``/``truncated``.
"""

from __future__ import annotations

from collections.abc import Sequence

from tensordict import TensorDictBase

from rlkernel.errors import EnvError

NestedKey = str | tuple[str, ...]

OBSERVATION = "observation"
ACTION = "action"
REWARD = "reward"
DONE = "done"
TERMINATED = "terminated"
TRUNCATED = "truncated"
NEXT = "next"
RESET = "_reset"
DONE_NAMES = (DONE, TERMINATED, TRUNCATED)


def _as_list(keys: NestedKey | Sequence[NestedKey] | None) -> list[NestedKey]:
    if keys is None:
        return []
    if isinstance(keys, str) or (isinstance(keys, tuple) and all(isinstance(k, str) for k in keys)):
        return [keys]
    return list(keys)


def step_mdp(
    tensordict: TensorDictBase,
    *,
    keep_other: bool = True,
    exclude_reward: bool = True,
    exclude_done: bool = False,
    exclude_action: bool = True,
    reward_keys: NestedKey | Sequence[NestedKey] = REWARD,
    done_keys: NestedKey | Sequence[NestedKey] = DONE_NAMES,
    action_keys: NestedKey | Sequence[NestedKey] = ACTION,
) -> TensorDictBase:
    """Move time forward: return the root TensorDict of the next step.

    The entries under ``"next"`` become the root entries; with ``keep_other`` the root
    entries that ``"next"`` does not overwrite (other than the action) are carried over,
    so that, for instance, a recurrent state written by the policy survives. The result
    shares storage with the input (no copy).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"observation": torch.zeros(1), "action": torch.ones(1),
    ...                  "next": {"observation": torch.ones(1), "reward": torch.ones(1)}}, [])
    >>> sorted(step_mdp(td).keys())
    ['observation']
    """
    nxt = tensordict.get(NEXT, None)
    if nxt is None:
        raise EnvError(f"step_mdp: the TensorDict has no 'next' entry (keys: {list(tensordict.keys())})")
    drop: list[NestedKey] = []
    if exclude_reward:
        drop += _as_list(reward_keys)
    if exclude_done:
        drop += _as_list(done_keys)
    out = nxt.exclude(*drop) if drop else nxt.copy()
    if keep_other:
        root_drop: list[NestedKey] = [NEXT, RESET, *drop]
        if exclude_action:
            root_drop += _as_list(action_keys)
        copied = False
        for key, value in tensordict.exclude(*root_drop).items(include_nested=True, leaves_only=True):
            if key not in out.keys(include_nested=True):
                if isinstance(key, tuple) and not copied:
                    out = out.copy()  # never write into the sub-TensorDicts shared with "next"
                    copied = True
                out.set(key, value)
    elif not exclude_action:
        for key in _as_list(action_keys):
            if key in tensordict.keys(include_nested=True):
                out.set(key, tensordict.get(key))
    return out
