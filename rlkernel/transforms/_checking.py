"""The ``check_specs=True`` debug mode of :class:`~rlkernel.transforms.TransformedEnv`.

After the base environment and after every transform, the TensorDict produced so far is
compared with the specs declared at that point of the chain, so that a wrong transform is
named instead of surfacing later as a shape error deep inside a training loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDictBase

from rlkernel.envs.step import NestedKey
from rlkernel.errors import EnvError
from rlkernel.specs import Composite, TensorSpec
from rlkernel.transforms._utils import spec_keys


@dataclass
class Stage:
    """The specs declared after one transform (or by the base env, ``who`` says which)."""

    who: str
    step_specs: dict[NestedKey, TensorSpec]  # what a step's "next" holds
    reset_specs: dict[NestedKey, TensorSpec]  # what reset returns
    known: frozenset[NestedKey]  # every declared key (undeclared ones are errors)


def make_stage(who: str, output_spec: Composite, input_spec: Composite) -> Stage:
    obs = output_spec["full_observation_spec"]
    reward = output_spec["full_reward_spec"]
    done = output_spec["full_done_spec"]
    state = input_spec["full_state_spec"]
    step = {k: obs[k] for k in spec_keys(obs)}
    step.update({k: reward[k] for k in spec_keys(reward)})
    step.update({k: done[k] for k in spec_keys(done)})
    reset = {k: obs[k] for k in spec_keys(obs)}
    reset.update({k: done[k] for k in spec_keys(done)})
    reset.update({k: state[k] for k in spec_keys(state)})
    known = frozenset(step) | frozenset(reset)
    return Stage(who, step, reset, known)


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {list(value.shape)} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


def check_stage(stage: Stage, td: TensorDictBase, where: str) -> None:
    """Raise :class:`EnvError` naming ``stage.who`` if ``td`` does not match its specs."""
    specs = stage.step_specs if where == "step" else stage.reset_specs
    prefix = f"TransformedEnv(check_specs=True): {where}() output after {stage.who}"
    for key, spec in specs.items():
        value = td.get(key, None)
        if value is None:
            raise EnvError(f"{prefix} is missing {key!r}; its spec declares {spec!r}")
        if not isinstance(value, torch.Tensor) or value.shape != spec.shape or value.dtype != spec.dtype:
            raise EnvError(f"{prefix}: {key!r} is {_describe(value)}, but its spec is {spec!r}")
        reason = spec.why_not_in(value)
        if reason is not None:
            raise EnvError(f"{prefix}: {key!r} is outside its spec {spec!r}: {reason}")
    extra = [k for k in td.keys(include_nested=True, leaves_only=True) if k not in stage.known]
    if extra:
        raise EnvError(
            f"{prefix}: keys {sorted(map(str, extra))} are not declared by any spec; the transform "
            "must add them in transform_observation_spec (or another transform_*_spec)"
        )
