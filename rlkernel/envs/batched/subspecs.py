"""The specs of one sub-environment: reported by each worker, compared, then expanded.

A batched environment of ``N`` workers whose sub-environment has batch size ``S`` has
batch size ``(N, *S)`` and the sub-environment's specs expanded along the new leading dim.
Every worker must report equal specs; the first difference is an error naming the worker
and the key.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlkernel.envs.step import NestedKey
from rlkernel.errors import EnvError, SpecError
from rlkernel.specs import Composite

SPEC_KINDS = ("observation", "action", "reward", "done", "state")


@dataclass
class SubEnvSpecs:
    """The batch size, device and five composite specs of one sub-environment."""

    env_type: str
    batch_size: torch.Size
    device: torch.device
    observation: Composite
    action: Composite
    reward: Composite
    done: Composite
    state: Composite

    @classmethod
    def of(cls, env: object) -> SubEnvSpecs:
        """Read the specs of ``env`` (an :class:`~rlkernel.envs.EnvBase`)."""
        from rlkernel.envs.common import EnvBase

        if not isinstance(env, EnvBase):
            raise EnvError(
                f"create_env_fn must return an rlkernel EnvBase, got {type(env).__module__}."
                f"{type(env).__qualname__}"
            )
        return cls(
            env_type=type(env).__name__,
            batch_size=torch.Size(env.batch_size),
            device=env.device,
            observation=env.full_observation_spec,
            action=env.full_action_spec,
            reward=env.full_reward_spec,
            done=env.full_done_spec,
            state=env.full_state_spec,
        )

    def composite(self, kind: str) -> Composite:
        """The composite spec of ``kind`` (one of :data:`SPEC_KINDS`)."""
        return getattr(self, kind)

    def leaves(self, *kinds: str) -> list[tuple[tuple[str, ...], object]]:
        """``(key_as_tuple, leaf_spec)`` of the given kinds, in order, without duplicates."""
        seen: set[tuple[str, ...]] = set()
        out = []
        for kind in kinds:
            for key, leaf in self.composite(kind).items(include_nested=True, leaves_only=True):
                path = key if isinstance(key, tuple) else (key,)
                if path not in seen:
                    seen.add(path)
                    out.append((path, leaf))
        return out

    def expanded(self, num_workers: int, device: torch.device | None) -> dict[str, Composite]:
        """The five specs with a leading dim of ``num_workers`` (moved to ``device``)."""
        out = {}
        for kind in SPEC_KINDS:
            spec = self.composite(kind).expand(num_workers, *self.batch_size)
            out[kind] = spec.to(device) if device is not None else spec
        return out


def _show(key: NestedKey) -> str:
    return repr(key[0]) if isinstance(key, tuple) and len(key) == 1 else repr(key)


def spec_difference(owner: str, reference: SubEnvSpecs, other: SubEnvSpecs, index: int) -> str | None:
    """A sentence naming the first difference between worker 0's specs and worker ``index``'s."""
    head = f"{owner}: worker {index} ({other.env_type}) and worker 0 ({reference.env_type})"
    if other.batch_size != reference.batch_size:
        return (
            f"{head} have different batch sizes: {tuple(other.batch_size)} vs "
            f"{tuple(reference.batch_size)}; every worker must build the same environment"
        )
    for kind in SPEC_KINDS:
        mine, theirs = reference.composite(kind), other.composite(kind)
        if mine == theirs:
            continue
        mine_keys = mine.keys(include_nested=True, leaves_only=True)
        their_keys = theirs.keys(include_nested=True, leaves_only=True)
        for key in mine_keys:
            if key not in their_keys:
                return f"{head}: worker {index}'s {kind} spec lacks key {_show(key)} ({mine[key]!r} in worker 0)"
        for key in their_keys:
            if key not in mine_keys:
                return (
                    f"{head}: worker {index}'s {kind} spec has key {_show(key)} ({theirs[key]!r}) "
                    "that worker 0's does not"
                )
            if mine[key] != theirs[key]:
                return (
                    f"{head}: the {kind} spec differs at key {_show(key)}: worker 0 has "
                    f"{mine[key]!r}, worker {index} has {theirs[key]!r}"
                )
        return f"{head}: the {kind} specs differ: {mine!r} vs {theirs!r}"
    return None


def check_same_specs(owner: str, specs: list[SubEnvSpecs]) -> None:
    """Raise :class:`~rlkernel.errors.SpecError` unless every worker reported equal specs."""
    for index in range(1, len(specs)):
        why = spec_difference(owner, specs[0], specs[index], index)
        if why is not None:
            raise SpecError(why)
