"""The base class of every loss: declared keys, two calling conventions, target networks.

A loss is an ``nn.Module`` that owns its networks. Calling it returns a TensorDict of
scalars: the terms to minimise (``loss_*``, summed by the training loop) and
diagnostics (entropy, clip fraction, alpha, ...)::

    loss_td = loss(batch)                      # batch: a TensorDict
    sum(v for k, v in loss_td.items() if k.startswith("loss")).backward()

or, without a TensorDict, with one keyword per key the loss reads::

    loss_td = loss(observation=obs, action=act, next_observation=obs2,
                   reward=rew, done=done, terminated=term)

Keyword names: a key's parts joined by ``_``; an entry under ``"next"`` takes the prefix
``next_`` (``("next", "observation")`` is ``next_observation``); ``reward``, ``done``,
``terminated`` (read only under ``"next"``) may go without it. ``truncated`` /
``next_truncated`` are accepted and ignored (no loss needs them: only ``terminated`` stops
bootstrapping). Any other unknown keyword is an error listing the valid names. Both calls
return the same terms; only the TensorDict call writes per-sample priorities back
(``td_error``) into its input.

Keys. Each loss declares the keys it reads in a dataclass (``loss.tensor_keys``); rename
them with :meth:`LossModule.set_keys`. ``loss.in_keys`` lists every key it reads.

Target networks. :meth:`LossModule.make_target` stores a copy of a network whose
parameters are *buffers*: ``loss.parameters()`` never holds them (build optimizers from
``loss.parameters()`` or from the networks' own parameters), ``loss.target_parameters()``
lists them, and :class:`~rlkernel_algos.objectives.SoftUpdate` /
:class:`~rlkernel_algos.objectives.HardUpdate` move them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import nn

from rlkernel.errors import SpecError
from rlkernel_algos.objectives._copies import detached_view, target_copy, views_current
from rlkernel_algos.objectives._keys import LossKeyError, as_key, flat_names, next_key
from rlkernel_algos.objectives._runner import ModuleRunner

__all__ = ["LossModule"]

# Parts of a transition no loss reads (bootstrapping depends on ``terminated`` only): they
# are accepted and ignored, so that a whole transition can be passed as keywords.
_IGNORED_KEYWORDS = frozenset({"truncated", "next_truncated"})


class LossModule(nn.Module):
    """Base class of the losses. Subclasses define ``_AcceptedKeys`` and ``_loss``.

    Subclass contract:

    * ``_AcceptedKeys``: a dataclass whose fields are the key names and default keys;
    * ``_loss(source, batch_shape) -> dict[str, Tensor]``: the terms, reading inputs with
      ``self._get(source, key_name)`` (``source`` has ``get(key, default)``);
    * ``_build_in_keys() -> list``: every key read (networks' inputs included);
    * ``_keys_changed()``: called after :meth:`set_keys` (default: nothing).
    """

    @dataclasses.dataclass
    class _AcceptedKeys:
        """The keys a loss reads; each field can be renamed with ``set_keys``."""

    def __init__(self) -> None:
        super().__init__()
        self.tensor_keys = self._AcceptedKeys()
        self._target_names: list[tuple[str, str]] = []  # (online attribute, target attribute)
        self._views: dict[str, tuple[list, list]] = {}  # name -> (runners of the detached view, pairs)
        self._in_keys_cache: list[NestedKey] | None = None
        self._flat_cache: dict[str, NestedKey] | None = None
        self._moved = 0  # bumped by every .to()/.float()/...: updaters re-read their lists
        self.__dict__["_value_estimator"] = None

    # ---- keys ------------------------------------------------------------------------
    def set_keys(self, **renames: NestedKey) -> LossModule:
        """Rename the keys the loss reads, e.g. ``loss.set_keys(reward="r", action="act")``.

        Raises:
            LossKeyError: a name is not a key of this loss (the message lists the valid
                names), or a value is not a nested key.
        """
        valid = [f.name for f in dataclasses.fields(self.tensor_keys)]
        for name, key in renames.items():
            if name not in valid:
                raise LossKeyError(
                    f"{type(self).__name__}.set_keys: unknown key name {name!r}; valid names: {valid}"
                )
            setattr(self.tensor_keys, name, as_key(key, what=f"{type(self).__name__}.set_keys({name}=...)"))
        self._in_keys_cache = self._flat_cache = None
        self._keys_changed()
        return self

    def _keys_changed(self) -> None:
        """Hook: called after ``set_keys``."""

    @property
    def in_keys(self) -> list[NestedKey]:
        """Every key the loss reads (optional ones included), nested keys as tuples."""
        if self._in_keys_cache is None:
            keys: list[NestedKey] = []
            for key in self._build_in_keys():
                if key not in keys:
                    keys.append(key)
            self._in_keys_cache = keys
        return self._in_keys_cache

    def _build_in_keys(self) -> list[NestedKey]:
        raise NotImplementedError

    @staticmethod
    def _network_keys(runner: ModuleRunner, *, now: bool = True, nxt: bool = False, skip=()) -> list:
        keys = [k for k in runner.in_keys if k not in skip]
        return (keys if now else []) + ([next_key(k) for k in keys] if nxt else [])

    def _get(self, source, name: str, *, nxt: bool = False, required: bool = True) -> torch.Tensor | None:
        """The input at ``tensor_keys.<name>`` (under ``"next"`` with ``nxt``)."""
        key = getattr(self.tensor_keys, name)
        if nxt:
            key = next_key(key)
        value = source.get(key, None)
        if value is None and required:
            held = list(source.keys(True, True)) if isinstance(source, TensorDictBase) else list(source)
            raise LossKeyError(
                f"{type(self).__name__}: the input has no entry {key!r} (tensor_keys.{name}); "
                f"it holds {held}. Rename with set_keys({name}=...) if it is stored elsewhere."
            )
        return value

    # ---- calling -----------------------------------------------------------------------
    def forward(self, tensordict: TensorDictBase | None = None, /, **tensors: torch.Tensor) -> TensorDict:
        """Compute the loss terms from a TensorDict, or from keyword tensors (not both).

        Returns:
            A TensorDict of scalars with ``batch_size=[]``.
        """
        if tensordict is None:
            source, batch_shape = self._source_from_keywords(tensors)
        elif tensors:
            raise LossKeyError(
                f"{type(self).__name__}: pass either a TensorDict or keyword tensors, not both "
                f"(got the keywords {sorted(tensors)})"
            )
        elif not isinstance(tensordict, TensorDictBase):
            raise LossKeyError(
                f"{type(self).__name__}: expected a TensorDict (or keyword tensors), got {type(tensordict).__name__}"
            )
        else:
            source, batch_shape = tensordict, tensordict.batch_size
        return TensorDict(self._loss(source, batch_shape), batch_size=())

    def _source_from_keywords(self, tensors: Mapping[str, torch.Tensor]) -> tuple[dict, torch.Size]:
        if self._flat_cache is None:
            self._flat_cache = flat_names(self.in_keys)
        names = self._flat_cache
        source: dict[NestedKey, torch.Tensor] = {}
        for name, value in tensors.items():
            key = names.get(name)
            if key is None:
                if name in _IGNORED_KEYWORDS:
                    continue
                raise LossKeyError(
                    f"{type(self).__name__}: unknown keyword {name!r}; the loss reads {sorted(names)} "
                    f"(a key's parts joined by '_', 'next_' for the next step)"
                )
            if not isinstance(value, torch.Tensor):
                raise LossKeyError(
                    f"{type(self).__name__}: keyword {name!r} must be a tensor, got {type(value).__name__}"
                )
            source[key] = value
        return source, self._keyword_batch_shape(source)

    def _keyword_batch_shape(self, source: Mapping[NestedKey, torch.Tensor]) -> torch.Size:
        """The batch shape of keyword inputs: the shape of the reward (or done) minus its last dim."""
        for name in ("reward", "done", "terminated"):
            key = getattr(self.tensor_keys, name, None)
            if key is not None and next_key(key) in source:
                return source[next_key(key)].shape[:-1]
        first = next(iter(source.values()), None)
        return first.shape[:-1] if first is not None else torch.Size(())

    @staticmethod
    def _as_source(source, batch_shape: torch.Size) -> TensorDictBase:
        """A TensorDict for code that needs one (a value estimator); keyword inputs are wrapped."""
        if isinstance(source, TensorDictBase):
            return source
        return TensorDict(dict(source), batch_size=batch_shape)

    def _loss(self, source, batch_shape: torch.Size) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # ---- target networks and detached views ------------------------------------------------
    def make_target(self, name: str) -> nn.Module:
        """Store ``target_<name>``, a copy of ``self.<name>`` whose parameters are buffers."""
        module = getattr(self, name)
        if any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters()):
            raise SpecError(
                f"{type(self).__name__}: {name} has lazy (uninitialized) parameters; run it once on a batch "
                "(or give in_features) before building the loss, so that its target copy has weights"
            )
        target = target_copy(module)
        setattr(self, f"target_{name}", target)
        self._target_names.append((name, f"target_{name}"))
        return target

    def target_pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``(sources, targets)``: aligned lists of online parameters and their target buffers."""
        sources: list[torch.Tensor] = []
        targets: list[torch.Tensor] = []
        for online_name, target_name in self._target_names:
            online, target = getattr(self, online_name), getattr(self, target_name)
            for pname, param in online.named_parameters():
                sources.append(param)
                targets.append(target.get_buffer(pname))
        return sources, targets

    def target_parameters(self) -> Iterator[torch.Tensor]:
        """The target networks' values (buffers: never in ``loss.parameters()``)."""
        return iter(self.target_pairs()[1])

    def detached_runners(self, name: str) -> list[ModuleRunner]:
        """Runners of ``self.<name>`` (each member of a ModuleList) with detached parameters.

        The views share storage with the live parameters (an optimizer step is seen at
        once) and are rebuilt when the parameters move (``.to(device)``).
        """
        entry = self._views.get(name)
        if entry is None or not views_current(entry[1]):
            view, pairs = detached_view(getattr(self, name))
            members = list(view) if isinstance(view, nn.ModuleList) else [view]
            runners = [ModuleRunner(m, f"{type(self).__name__}.{name}") for m in members]
            entry = (runners, pairs)
            self._views[name] = entry
        return entry[0]

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        estimator = self.__dict__.get("_value_estimator")
        if isinstance(estimator, nn.Module):  # its networks are ours (moved above): move its own buffers
            for name, buffer in estimator._buffers.items():
                if buffer is not None:
                    estimator._buffers[name] = fn(buffer)
        self._views.clear()
        self._moved += 1
        return out

    # ---- value estimators -----------------------------------------------------------------
    # The estimator is kept out of the module tree (``self.__dict__``, not ``_modules``): it
    # holds this loss's own networks, and registering it would duplicate their weights in
    # ``state_dict`` under a prefix that exists only once an estimator was built.
    @property
    def value_estimator(self):
        """The estimator of returns/advantages (built with the default type on first use).

        Assign an estimator to replace it (``loss.value_estimator = GAE(...)``).
        """
        estimator = self.__dict__.get("_value_estimator")
        if estimator is None:
            estimator = self.make_value_estimator()
        return estimator

    @value_estimator.setter
    def value_estimator(self, estimator) -> None:
        self._set_value_estimator(estimator)

    def _set_value_estimator(self, estimator):
        self.__dict__["_value_estimator"] = estimator
        return estimator

    def make_value_estimator(self, value_type=None, **hyperparams):
        """Choose how returns/advantages are computed; subclasses that need them override it."""
        raise NotImplementedError(f"{type(self).__name__} computes no value target")
