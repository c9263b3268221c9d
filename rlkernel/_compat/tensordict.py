"""tensordict's private API, in one place: the only module of rlkernel that touches it.

rlkernel's hot paths (the step, the collectors, the buffers, the losses) use a few
private names of tensordict to skip checks that the data have already passed, or to
take a ``tensordict.nn`` module apart into tensor calls. Each one is wrapped here in a
small typed function that says what it does and what it falls back to when the private
name is absent (a slower public call, or ``None`` for "unknown", on which the caller
takes its general path). Public names that moved between the known versions are here too
(:func:`interaction_type`, exported by ``tensordict.nn`` from 0.15.2 on).

:data:`KNOWN_VERSIONS` lists the tensordict versions these functions were checked
against, :data:`SUPPORTED` the declared range (the one in ``pyproject.toml``). Importing
this module with a tensordict outside that range warns (:class:`TensorDictVersionWarning`)
and keeps working; :data:`MISSING` names the private attributes not found, whose
fallbacks are in use. ``tests/test_compat_tensordict.py`` checks every function against
tensordict's public behaviour, so an upgrade that changes a private name fails a test.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tensordict
import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import InteractionType, ProbabilisticTensorDictModule, TensorDictModule
from tensordict.nn import probabilistic as _probabilistic
from torch import distributions as D

try:
    from tensordict.nn import interaction_type
except ImportError:  # tensordict 0.15.0 and 0.15.1 have it in tensordict.nn.probabilistic only
    from tensordict.nn.probabilistic import interaction_type

__all__ = [
    "KNOWN_VERSIONS",
    "MISSING",
    "SUPPORTED",
    "TensorDictVersionWarning",
    "call_signature",
    "check_version",
    "dist_sample",
    "entries",
    "get_paths",
    "has_generator",
    "has_names",
    "interaction_type",
    "joint_sample_and_log_prob",
    "new_unsafe",
    "requires_sample",
    "selects_out_keys",
    "set_many_validated",
    "set_validated",
]

#: The tensordict versions every function of this module was checked against (the pinned
#: 0.15.3 with the whole suite; 0.15.0 to 0.15.2 with the compatibility and tensor-call tests
#: and the core's env, storage and spec tests).
KNOWN_VERSIONS: tuple[str, ...] = ("0.15.0", "0.15.1", "0.15.2", "0.15.3")
#: The declared range, ``(lowest, first excluded)`` as ``(major, minor)`` pairs: ``>=0.15,<0.16``.
SUPPORTED: tuple[tuple[int, int], tuple[int, int]] = ((0, 15), (0, 16))


class TensorDictVersionWarning(UserWarning):
    """The installed tensordict is outside the range rlkernel was checked against."""


def _minor(version: str) -> tuple[int, int] | None:
    parts = version.split("+", 1)[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def check_version(version: str) -> bool:
    """Whether ``version`` is in :data:`SUPPORTED`; warns (:class:`TensorDictVersionWarning`) if not."""
    minor = _minor(version)
    if minor is not None and SUPPORTED[0] <= minor < SUPPORTED[1]:
        return True
    low, high = (".".join(map(str, v)) for v in SUPPORTED)
    warnings.warn(
        f"rlkernel was checked against tensordict {', '.join(KNOWN_VERSIONS)} (supported: >={low},<{high}); "
        f"tensordict {version} is installed. rlkernel uses slower public fallbacks where tensordict's "
        f"private API changed (rlkernel._compat.tensordict.MISSING lists them); please report problems",
        TensorDictVersionWarning,
        stacklevel=2,
    )
    return False


check_version(getattr(tensordict, "__version__", "unknown"))

# -------------------------------------------------------------------------- what exists
_NEW_UNSAFE = getattr(TensorDict, "_new_unsafe", None)
_GET_TUPLE = getattr(TensorDict, "_get_tuple", None)
_SET_TUPLE = getattr(TensorDict, "_set_tuple", None)
_JOINT = getattr(_probabilistic, "_get_joint_sample_and_log_prob", None)
_PROBE_TD = TensorDict({}, batch_size=[])
_HAS_ENTRIES = isinstance(getattr(_PROBE_TD, "_tensordict", None), dict)
_HAS_NAMES = callable(getattr(_PROBE_TD, "_has_names", None))
_DIST_SAMPLE = getattr(ProbabilisticTensorDictModule, "_dist_sample", None)

#: The private names of tensordict this module looked for and did not find (their
#: fallbacks are in use). Empty on every version of :data:`KNOWN_VERSIONS`.
MISSING: tuple[str, ...] = tuple(
    name
    for name, found in (
        ("TensorDict._new_unsafe", _NEW_UNSAFE is not None),
        ("TensorDict._get_tuple", _GET_TUPLE is not None),
        ("TensorDict._set_tuple", _SET_TUPLE is not None),
        ("TensorDict._tensordict", _HAS_ENTRIES),
        ("TensorDict._has_names", _HAS_NAMES),
        ("ProbabilisticTensorDictModule._dist_sample", _DIST_SAMPLE is not None),
        ("tensordict.nn.probabilistic._get_joint_sample_and_log_prob", _JOINT is not None),
    )
    if not found
)


# ------------------------------------------------------------------------- TensorDicts
def new_unsafe(
    source: dict[str, Any],
    batch_size: torch.Size | Sequence[int],
    device: torch.device | None = None,
    *,
    names: Sequence[str | None] | None = None,
    nested: bool = True,
) -> TensorDict:
    """``TensorDict(source, batch_size=..., device=..., names=...)`` without the per-entry checks.

    For entries that already fit (taken from a TensorDict of this batch size, or built
    with the spec's shapes). ``nested=False`` says no value of ``source`` is a dict to
    turn into a sub-TensorDict. Falls back to the checked constructor.
    """
    if _NEW_UNSAFE is not None:
        return _NEW_UNSAFE(source, batch_size=batch_size, device=device, names=names, nested=nested)
    return TensorDict(source, batch_size=batch_size, device=device, names=names)


def entries(td: TensorDict) -> Mapping[str, Any]:
    """The root entries of a plain ``TensorDict`` as a mapping ``name -> tensor or sub-TensorDict``.

    With tensordict's private dict this is the TensorDict's own storage, read without a
    copy: do not write into it. Falls back to ``dict(td.items())``.
    """
    if _HAS_ENTRIES and type(td) is TensorDict:
        return td._tensordict
    return dict(td.items())


def has_names(td: TensorDictBase) -> bool:
    """Whether ``td`` has dimension names (``td.names`` is not all ``None``)."""
    if _HAS_NAMES:
        return td._has_names()
    return any(name is not None for name in td.names)


def get_paths(td: TensorDictBase, paths: Sequence[tuple[str, ...]]) -> list[Any]:
    """``[td.get(path, None) for path in paths]``, faster on a plain ``TensorDict``
    (no key parsing; ``paths`` are tuples of strings)."""
    if _GET_TUPLE is not None and type(td) is TensorDict:
        get = td._get_tuple
        return [get(path, None) for path in paths]
    return [td.get(path, None) for path in paths]


def set_validated(td: TensorDictBase, path: tuple[str, ...], value: Any) -> None:
    """``td.set(path, value)`` without validating ``value``: only for a value that fits
    ``td``'s batch size and device already (taken from a TensorDict of the same batch)."""
    if _SET_TUPLE is not None and type(td) is TensorDict:
        td._set_tuple(path, value, validated=True, inplace=False)
    else:
        td.set(path, value)


def set_many_validated(
    td: TensorDictBase, pairs: Sequence[tuple[tuple[str, ...], int]], values: Sequence[Any]
) -> None:
    """:func:`set_validated` of ``values[index]`` at ``path`` for each ``(path, index)`` of ``pairs``."""
    if _SET_TUPLE is not None and type(td) is TensorDict:
        set_tuple = td._set_tuple
        for path, index in pairs:
            set_tuple(path, values[index], validated=True, inplace=False)
    else:
        for path, index in pairs:
            td.set(path, values[index])


# ---------------------------------------------------------------------- tensordict.nn
def call_signature(module: TensorDictModule) -> tuple[list[str] | None, dict[str, Any]] | None:
    """How a ``TensorDictModule`` passes its inputs: ``(keyword names, get kwargs)``.

    The keyword names are ``None`` when the inputs are passed by position (``in_keys`` a
    list), else the argument names, in the order of ``in_keys`` (``in_keys`` a dict). The
    get kwargs are the extra arguments given to ``TensorDict.get`` when reading inputs
    (empty unless the module was built with ``get_kwargs``). ``None`` when this
    tensordict does not say (the caller then uses the TensorDict call).
    """
    if not (hasattr(module, "_kwargs") and hasattr(module, "_get_kwargs")):
        return None
    names = module._kwargs
    return (None if names is None else list(names)), dict(module._get_kwargs or {})


def selects_out_keys(module: Any) -> bool | None:
    """Whether a ``TensorDictSequential`` returns only selected out-keys
    (``select_out_keys`` was called); ``None`` when this tensordict does not say."""
    value = getattr(module, "_select_before_return", None)
    return None if value is None else bool(value)


def requires_sample(module: Any) -> bool | None:
    """Whether a ``ProbabilisticTensorDictSequential`` samples its last module's keys
    (``False`` when an earlier module writes them); ``None`` when this tensordict does not say."""
    value = getattr(module, "_requires_sample", None)
    return None if value is None else bool(value)


def has_generator(module: ProbabilisticTensorDictModule) -> bool | None:
    """Whether a ``ProbabilisticTensorDictModule`` draws with its own random generator
    (``generator=`` at construction); ``None`` when this tensordict does not say."""
    if not (hasattr(module, "_generator") and hasattr(module, "_generator_key")):
        return None
    return module._generator is not None or module._generator_key is not None


def _public_sample(module: ProbabilisticTensorDictModule, dist: D.Distribution, kind: InteractionType) -> Any:
    """What tensordict 0.15's ``_dist_sample`` does for a one-sample draw, by public means."""
    if kind is InteractionType.DETERMINISTIC:
        value = getattr(dist, "deterministic_sample", None)
        if value is not None:
            return value
        kind = InteractionType.MODE if dist.support.is_discrete else InteractionType.MEAN
    if kind is InteractionType.MODE:
        return dist.mode
    if kind is InteractionType.MEDIAN:
        return dist.median
    if kind is InteractionType.MEAN:
        return dist.mean
    if kind is InteractionType.RANDOM:
        shape = module.num_samples or torch.Size(())
        return dist.rsample(shape) if dist.has_rsample else dist.sample(shape)
    raise NotImplementedError(f"unknown interaction type {kind}")


def dist_sample(
    module: ProbabilisticTensorDictModule, dist: D.Distribution, interaction_type: InteractionType | None
) -> Any:
    """The value ``module`` writes from ``dist`` under ``interaction_type``.

    A draw (``RANDOM``), ``deterministic_sample``, ``mode``, ``mean`` or ``median``;
    ``None`` means the module's ``default_interaction_type``. Without a generator.
    """
    if _DIST_SAMPLE is not None:
        return _DIST_SAMPLE(module, dist, interaction_type=interaction_type)
    return _public_sample(module, dist, interaction_type or module.default_interaction_type)


def joint_sample_and_log_prob(dist: D.Distribution) -> Callable[[torch.Size], tuple[Any, Any]] | None:
    """The distribution's method drawing a sample and scoring that same draw
    (``rsample_and_log_prob`` or ``sample_and_log_prob``), or ``None`` when it has none.

    tensordict's probabilistic modules use it, with ``return_log_prob`` and a ``RANDOM``
    draw, instead of ``sample`` then ``log_prob``.
    """
    if _JOINT is not None:
        return _JOINT(dist)
    if not isinstance(dist, D.Distribution):
        return None
    name = "rsample_and_log_prob" if dist.has_rsample else "sample_and_log_prob"
    return getattr(dist, name) if callable(getattr(type(dist), name, None)) else None
