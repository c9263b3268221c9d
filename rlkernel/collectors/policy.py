"""How a collector calls its policy: adaptation, the fast path, devices and weights.

A policy is any callable ``td -> td`` that writes the action(s) into the TensorDict it is
given (a ``tensordict.nn.TensorDictModule`` is the usual one). A plain ``nn.Module`` that
maps a tensor to a tensor is accepted too, as in TorchRL: it is wrapped in a
``TensorDictModule`` reading the environment's single observation key and writing its
action key(s) -- unless its ``forward`` takes a parameter named ``tensordict`` or ``td``, in
which case it is called with the TensorDict.

A ``tensordict.nn`` policy that :class:`rlkernel.tensor_call.TensorCall` takes apart whole
(``TensorDictModule``, ``ProbabilisticTensorDictSequential``, rlkernel-algos' actors, ...)
is called as a function of tensors: the collector reads its in-keys, calls it and writes
its out-keys itself, the same values without the per-call TensorDict overhead. Any other
policy (and any call while tensordict's ``skip_existing`` is set) goes through the
TensorDict call.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase, skip_existing
from torch import nn

from rlkernel.collectors.access import as_path, gather, put
from rlkernel.collectors.errors import CollectorError
from rlkernel.envs.common import EnvBase
from rlkernel.envs.step import NestedKey
from rlkernel.tensor_call import TensorCall

__all__ = ["PolicyCaller", "adapt_policy"]


def _takes_tensordict(module: nn.Module) -> bool:
    try:
        params = list(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0] in ("tensordict", "td")


def adapt_policy(policy: Any, env: EnvBase, *, owner: str) -> Callable[[TensorDictBase], Any] | None:
    """Return ``policy`` as a callable ``td -> td`` (``None`` stays ``None``: random actions)."""
    if policy is None or isinstance(policy, TensorDictModuleBase):
        return policy
    if isinstance(policy, nn.Module) and not _takes_tensordict(policy):
        obs_keys = env.observation_keys
        if len(obs_keys) != 1:
            raise CollectorError(
                f"{owner}: a plain nn.Module policy ({type(policy).__name__}) needs an environment with "
                f"one observation key, this one has {obs_keys}; wrap it in a TensorDictModule "
                f"with in_keys=... and out_keys={env.action_keys}"
            )
        return TensorDictModule(policy, in_keys=list(obs_keys), out_keys=list(env.action_keys))
    if not callable(policy):
        raise CollectorError(f"{owner}: policy must be callable (td -> td) or None, got {type(policy).__name__}")
    return policy


def _tensor_call(policy: Any) -> TensorCall | None:
    """The policy as a tensor function, when it can be taken apart whole (else ``None``)."""
    if not isinstance(policy, TensorDictModuleBase):
        return None
    call = TensorCall(policy)
    return call if call.exact else None


def _params_device(module: Any) -> torch.device | None:
    if not isinstance(module, nn.Module):
        return None
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return None


class PolicyCaller:
    """Calls the policy on the collector's TensorDict, on ``policy_device``.

    Args:
        policy: the user's policy (already adapted by :func:`adapt_policy`), or ``None``.
        env_device: the device of the environment's TensorDicts.
        policy_device: where the policy runs (default: where its parameters are).

    When the policy's parameters are not on ``policy_device``, the caller keeps a copy
    there and :meth:`update_weights` (no argument) copies the original's weights into it.
    """

    def __init__(
        self, policy: Callable[[TensorDictBase], Any] | None, env_device: torch.device, policy_device: Any
    ) -> None:
        self.source = policy
        self.env_device = env_device
        own_device = _params_device(policy)
        self.device = torch.device(policy_device) if policy_device is not None else (own_device or env_device)
        self.policy = policy
        if own_device is not None and own_device != self.device:
            self.policy = copy.deepcopy(policy).to(self.device)  # type: ignore[union-attr]
        self.moves = self.device != env_device
        self.fast = _tensor_call(self.policy)
        self._in_paths = [as_path(key) for key in self.fast.in_keys] if self.fast is not None else []
        self._out_paths = [as_path(key) for key in self.fast.out_keys] if self.fast is not None else []
        self.written_keys: list[NestedKey] = []

    def discover(self, td: TensorDictBase, action_keys: list[NestedKey], *, owner: str) -> TensorDictBase:
        """Run the policy once on a copy of ``td``; check it writes ``action_keys``.

        Returns the policy's output (a TensorDict of the environment's batch size) and
        records the keys it added in :attr:`written_keys`.
        """
        if self.policy is None:
            return td.clone()
        probe = td.clone()
        before = set(probe.keys(include_nested=True, leaves_only=True))
        with torch.no_grad():
            out = self._call_slow(probe)
        after = list(out.keys(include_nested=True, leaves_only=True))
        self.written_keys = [k for k in after if k not in before]
        missing = [k for k in action_keys if k not in after]
        if missing:
            raise CollectorError(
                f"{owner}: the policy {type(self.source).__name__} did not write the action key(s) "
                f"{missing} that the environment reads; it wrote {self.written_keys or 'nothing'}. "
                f"Give the policy out_keys={list(action_keys)}"
            )
        return out

    def _call_slow(self, td: TensorDictBase) -> TensorDictBase:
        policy = self.policy
        assert policy is not None
        if not self.moves:
            out = policy(td)
            if out is None:
                return td
            if out is not td:
                td.update(out)
            return td
        moved = td.to(self.device)
        out = policy(moved)
        out = moved if out is None else out
        for key in out.keys(include_nested=True, leaves_only=True):
            td.set(key, out.get(key).to(self.env_device, non_blocking=True))
        return td

    def __call__(self, td: TensorDictBase) -> None:
        """Write the policy's outputs into ``td`` (in place)."""
        fast = self.fast
        if fast is None or self.moves or skip_existing():
            self._call_slow(td)
            return
        out = fast.run(gather(td, self._in_paths))  # exact: no step needs a batch size
        batch_size = td.batch_size
        batch_dims = len(batch_size)
        for path, value in zip(self._out_paths, out):
            if type(value) is torch.Tensor and value.shape[:batch_dims] == batch_size:
                put(td, path, value)
            else:
                td.set(path, value)  # validates, and says what is wrong

    def output_paths(self) -> set[tuple[str, ...]] | None:
        """The keys the policy may write (``None`` when it is an opaque callable)."""
        if self.policy is None:
            return set()
        if self.fast is None or self.moves:
            return None
        return set(self._out_paths)

    # ------------------------------------------------------------------ weights
    def state_dict(self) -> dict[str, torch.Tensor] | None:
        """The collecting policy's ``state_dict`` (``None`` if it is not an ``nn.Module``)."""
        policy = self.policy
        return policy.state_dict() if isinstance(policy, nn.Module) else None

    def update_weights(self, weights: Any = None, *, owner: str) -> None:
        """Load ``weights`` (a TensorDict from ``TensorDict.from_module`` or a state dict).

        With ``weights=None`` the copy on ``policy_device`` (if any) takes the original's
        weights; a policy used directly already has them, so nothing happens.
        """
        policy = self.policy
        if weights is None:
            if policy is not self.source and isinstance(self.source, nn.Module):
                TensorDict.from_module(policy).data.update_(TensorDict.from_module(self.source).data)
            return
        if not isinstance(policy, nn.Module):
            raise CollectorError(f"{owner}: update_policy_weights_ needs an nn.Module policy to load weights into")
        try:
            if isinstance(weights, TensorDictBase):
                TensorDict.from_module(policy).data.update_(weights)
            elif isinstance(weights, Mapping):
                policy.load_state_dict(weights)
            else:
                raise TypeError(f"expected a TensorDict or a state dict, got {type(weights).__name__}")
        except (KeyError, RuntimeError, TypeError, ValueError) as err:
            raise CollectorError(f"{owner}: the weights do not fit the policy: {err}") from err
