"""``check_env_specs``: does what an environment produces match what it declares?

Plugin authors run it on their environments (and rlkernel's conformance tests do); its
messages name the key, the spec that was expected and what came instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from tensordict import TensorDictBase

from rlkernel.envs.step import NEXT, NestedKey
from rlkernel.errors import EnvError

if TYPE_CHECKING:
    from rlkernel.envs.common import EnvBase
    from rlkernel.specs import Composite


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


def _check_against(
    td: TensorDictBase, spec: Composite, where: str, time_dims: int, prefix: tuple[str, ...] = ()
) -> None:
    """Check every leaf of ``spec`` is present in ``td`` and fits, over leading time dims."""
    for key in spec.keys(include_nested=True, leaves_only=True):
        key_t: tuple[str, ...] = key if isinstance(key, tuple) else (key,)
        full: NestedKey = (*prefix, *key_t)
        leaf = spec[key]
        value = td.get(full, None)
        shown = full if len(full) > 1 else full[0]
        if value is None:
            raise EnvError(
                f"check_env_specs: {where} is missing {shown!r}; expected a value of {leaf!r}"
            )
        if not isinstance(value, torch.Tensor):
            raise EnvError(f"check_env_specs: {where} {shown!r}: expected {leaf!r}, got {_describe(value)}")
        batch = value.shape[: len(spec.shape)]
        event = value.shape[len(spec.shape) + time_dims :]
        observed = torch.Size((*batch, *event))
        if observed != leaf.shape or value.dtype != leaf.dtype:
            per_step = f"a tensor of shape {tuple(observed)} and dtype {value.dtype}"
            raise EnvError(f"check_env_specs: {where} {shown!r}: expected {leaf!r}, got {per_step}")
        flat = value.movedim(len(spec.shape), 0) if time_dims else value.unsqueeze(0)
        for t, step_value in enumerate(flat):
            reason = leaf.why_not_in(step_value)
            if reason is not None:
                raise EnvError(
                    f"check_env_specs: {where} {shown!r} at step {t} is outside {leaf!r}: {reason}"
                )


def _check_no_extra(td: TensorDictBase, expected: set[NestedKey], where: str) -> None:
    extra = [
        k for k in td.keys(include_nested=True, leaves_only=True)
        if (k if isinstance(k, tuple) else (k,))[0] != NEXT and k not in expected
    ]
    if extra:
        raise EnvError(
            f"check_env_specs: {where} has keys no spec declares: {sorted(map(str, extra))}; "
            "add them to the observation (or state) spec"
        )


def check_env_specs(env: EnvBase, *, num_steps: int = 3, seed: int | None = 0) -> None:
    """Run a short random rollout and check every entry against the env's specs.

    Raises :class:`~rlkernel.errors.EnvError` naming the key, the expected spec and what
    came instead: a missing or undeclared key, a wrong shape or dtype, or a value outside
    its spec (such as an observation beyond a ``Bounded`` spec's bounds).

    >>> from rlkernel.testing import CountingEnv
    >>> check_env_specs(CountingEnv(max_count=5))
    """
    if seed is not None:
        env.set_seed(seed)
    reset = env.reset()
    root_specs = [env.full_observation_spec, env.full_done_spec, env.full_state_spec]
    for spec in root_specs:
        _check_against(reset, spec, "reset() output", 0)
    declared = {
        k for spec in root_specs for k in spec.keys(include_nested=True, leaves_only=True)
    }
    _check_no_extra(reset, declared, "reset() output")

    rollout = env.rollout(num_steps, break_when_any_done=False)
    time_dims = 1
    expected_len = num_steps
    if rollout.batch_size[len(env.batch_size)] != expected_len:
        raise EnvError(
            f"check_env_specs: rollout({num_steps}) returned {rollout.batch_size[len(env.batch_size)]} steps"
        )
    for spec in (env.full_observation_spec, env.full_reward_spec, env.full_done_spec):
        _check_against(rollout, spec, "rollout", time_dims, prefix=(NEXT,))
    for spec in (*root_specs, env.full_action_spec):
        _check_against(rollout, spec, "rollout", time_dims)
    declared |= set(env.full_action_spec.keys(include_nested=True, leaves_only=True))
    _check_no_extra(rollout, declared, "rollout")
    nxt = rollout.get(NEXT)
    next_declared = {
        k for spec in (env.full_observation_spec, env.full_reward_spec, env.full_done_spec, env.full_state_spec)
        for k in spec.keys(include_nested=True, leaves_only=True)
    }
    extra = [k for k in nxt.keys(include_nested=True, leaves_only=True) if k not in next_declared]
    if extra:
        raise EnvError(
            f"check_env_specs: rollout ('next', ...) has keys no spec declares: {sorted(map(str, extra))}"
        )
