"""How a collector calls its policy: adaptation, the fast path, devices and weights.

A policy is any callable ``td -> td`` that writes the action(s) into the TensorDict it is
given (a ``tensordict.nn.TensorDictModule`` is the usual one). A plain ``nn.Module`` that
maps a tensor to a tensor is accepted too, as in TorchRL: it is wrapped in a
``TensorDictModule`` reading the environment's single observation key and writing its
action key(s) -- unless its ``forward`` takes a parameter named ``tensordict`` or ``td``, in
which case it is called with the TensorDict.

For a plain ``TensorDictModule`` (no hooks, no ``method``/``method_kwargs``, in-place) the
collector reads the in-keys, calls the wrapped module and writes the out-keys itself: the
same result without the wrapper's per-call dispatch overhead.

Any other policy can offer the same fast path with a method ``collector_tensor_call()``
returning ``(fn, in_keys, out_keys)`` -- ``fn(*tensors at in_keys)`` returns the tensors
to write at ``out_keys`` (a tuple, in order), exactly what calling the policy on a
TensorDict would write -- or ``None`` when it cannot. ``fn`` may return ``NotImplemented``
for a call that needs the TensorDict path. ``rlkernel_algos.modules.ProbabilisticActor``
has one.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase
from torch import nn

from rlkernel._compat import tensordict as td_compat
from rlkernel.collectors.access import as_path, gather, put
from rlkernel.collectors.errors import CollectorError
from rlkernel.envs.common import EnvBase
from rlkernel.envs.step import NestedKey

__all__ = ["PolicyCaller", "adapt_policy", "tensor_call_parts"]


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


FastCall = tuple[Callable[..., Any], list[tuple[str, ...]], list[NestedKey], list[tuple[str, ...] | None]]


def _fast_module(policy: Any) -> FastCall | None:
    """``(fn, in_paths, out_keys, out_paths)`` of :func:`tensor_call_parts`, or of the
    policy's own ``collector_tensor_call()`` (see the module docstring)."""
    parts = tensor_call_parts(policy)
    if parts is not None:
        return parts
    # looked up on the class: a wrapper forwarding attributes (torch.compile's OptimizedModule)
    # must not lend the inner module's fast path, which would bypass the wrapper
    offer = getattr(type(policy), "collector_tensor_call", None)
    found = offer(policy) if callable(offer) else None
    if found is None:
        return None
    fn, in_keys, out_keys = found
    out_keys = list(out_keys)
    return fn, [as_path(key) for key in in_keys], out_keys, [as_path(key) for key in out_keys]


def tensor_call_parts(policy: Any) -> FastCall | None:
    """``(module, in_paths, out_keys, out_paths)`` when ``policy`` is a plain in-place
    ``TensorDictModule`` (exactly that class, no hooks, no ``method``): calling ``module``
    on the tensors at ``in_paths`` and writing its outputs at ``out_paths`` is what the
    policy does (``None`` out-paths are the ``"_"`` placeholder, not written). ``None``
    for any other policy."""
    if type(policy) is not TensorDictModule:
        return None
    signature = td_compat.call_signature(policy)
    if signature is None or signature != (None, {}) or policy.method is not None or policy.method_kwargs:
        return None
    if policy.inplace is not True or isinstance(policy.module, TensorDictModuleBase):
        return None
    if policy._forward_hooks or policy._forward_pre_hooks:
        return None
    out_keys = list(policy.out_keys_source)
    out_paths = [None if key == "_" else as_path(key) for key in out_keys]
    return policy.module, [as_path(key) for key in policy.in_keys], out_keys, out_paths


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
        self.fast = _fast_module(self.policy)
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
        if fast is None or self.moves:
            self._call_slow(td)
            return
        module, in_paths, out_keys, out_paths = fast
        out = module(*gather(td, in_paths))
        if out is NotImplemented:  # this call needs the TensorDict path
            self._call_slow(td)
            return
        if type(out) is torch.Tensor:
            out = (out,)
        elif type(out) is not tuple:
            out = tuple(out.get(key) for key in out_keys) if isinstance(out, (Mapping, TensorDictBase)) else (out,)
        batch_size = td.batch_size
        batch_dims = len(batch_size)
        for path, value in zip(out_paths, out):
            if path is None:  # the "_" placeholder: not written
                continue
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
        return {path for path in self.fast[3] if path is not None}

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
