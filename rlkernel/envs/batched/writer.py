"""Checked writes of a sub-environment's output into its slice of the batched buffer.

A sub-environment must return exactly what its specs declare: the key set, every shape
and every dtype. Anything else is an :class:`~rlkernel.errors.EnvError` naming the key,
the spec and what came; nothing is cast, dropped or zero-filled.

The check is cheap enough for every step: the expected keys, shapes and dtypes are
cached, and extra keys are detected by counting the entries at each nesting level (a
slow, exact diagnosis runs only when something is wrong).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase

from rlkernel.envs.step import NestedKey
from rlkernel.errors import EnvError


def _show(key: NestedKey) -> str:
    return repr(key)


def describe(value: object) -> str:
    """A short description of what came: shape and dtype for a tensor, else the type."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


def _path(key: NestedKey) -> tuple[str, ...]:
    return key if isinstance(key, tuple) else (key,)


class OutputWriter:
    """Copies a sub-environment's output TensorDict into preallocated views.

    Args:
        what: how messages name the output, e.g. ``"GymEnv._step output"``.
        required: ``(key, destination, spec)`` for every key the output must hold.
        optional: ``(key, destination, spec)`` for keys it may hold; whether each came is
            written (1 or 0) into ``flags``.
        flags: a ``uint8`` tensor with one entry per optional key (``None`` without any).
    """

    def __init__(
        self,
        what: str,
        required: Sequence[tuple[NestedKey, torch.Tensor, object]],
        optional: Sequence[tuple[NestedKey, torch.Tensor, object]] = (),
        flags: torch.Tensor | None = None,
    ) -> None:
        self.what = what
        self._required = [(key, dst, dst.dtype, dst.shape) for key, dst, _ in required]
        self._optional = [(key, dst, dst.dtype, dst.shape) for key, dst, _ in optional]
        self._flags = flags
        self._specs = {_path(key): spec for key, _, spec in (*required, *optional)}
        children: dict[tuple[str, ...], set[str]] = {}
        for key, _, _ in required:
            path = _path(key)
            for depth in range(len(path)):
                children.setdefault(path[:depth], set()).add(path[depth])
        self._flat = not optional and all(isinstance(key, str) for key, _, _ in required)
        self._count = len(self._required)
        self._counts = [
            (None if not prefix else (prefix[0] if len(prefix) == 1 else prefix), len(names))
            for prefix, names in children.items()
        ]

    def try_write(self, out: TensorDictBase) -> bool:
        """The fast path: copy ``out`` if it fits exactly and return True; else return False
        (then call :meth:`write`, which says what is wrong)."""
        if self._flat:  # one dict of the entries, then plain dict lookups
            entries = dict(out.items())
            if len(entries) != self._count:
                return False
            for key, dst, dtype, shape in self._required:
                src = entries.get(key)
                if not isinstance(src, torch.Tensor) or src.dtype is not dtype or src.shape != shape:
                    return False
                dst.copy_(src)
            return True
        for key, dst, dtype, shape in self._required:
            try:
                src = out[key]
            except KeyError:
                return False
            if not isinstance(src, torch.Tensor) or src.dtype is not dtype or src.shape != shape:
                return False
            dst.copy_(src)
        return not self._optional and self._counts_match(out)

    def write(self, out: TensorDictBase) -> None:
        """Check ``out`` against the cached signature and copy it into the destinations."""
        for key, dst, dtype, shape in self._required:
            src = out.get(key, None)
            if not isinstance(src, torch.Tensor) or src.dtype is not dtype or src.shape != shape:
                raise self._mismatch(out, key, src)
            dst.copy_(src)
        if self._optional:
            self._write_optional(out)
        elif not self._counts_match(out):
            self._raise_extra(out)

    def _counts_match(self, out: TensorDictBase) -> bool:
        for prefix, count in self._counts:
            node = out if prefix is None else out.get(prefix)
            if not isinstance(node, TensorDictBase) or len(node.keys()) != count:
                return False
        return True

    def _write_optional(self, out: TensorDictBase) -> None:
        flags = self._flags
        assert flags is not None
        for j, (key, dst, dtype, shape) in enumerate(self._optional):
            src = out.get(key, None)
            if src is None:
                flags[j] = 0
                continue
            if not isinstance(src, torch.Tensor) or src.dtype is not dtype or src.shape != shape:
                raise self._mismatch(out, key, src)
            dst.copy_(src)
            flags[j] = 1
        self._raise_extra(out)

    def _mismatch(self, out: TensorDictBase, key: NestedKey, src: object) -> EnvError:
        spec = self._specs[_path(key)]
        if src is None:
            present = sorted(map(str, out.keys(include_nested=True, leaves_only=True)))
            return EnvError(
                f"{self.what} is missing {_show(key)}; expected a value of {spec!r} (keys present: {present})"
            )
        return EnvError(f"{self.what} {_show(key)} does not fit its spec: expected {spec!r}, got {describe(src)}")

    def _raise_extra(self, out: TensorDictBase) -> None:
        extra = [
            key for key in out.keys(include_nested=True, leaves_only=True) if _path(key) not in self._specs
        ]
        if extra:
            shown = ", ".join(f"{_show(k)} ({describe(out.get(k))})" for k in extra)
            raise EnvError(
                f"{self.what} has keys no spec declares: {shown}; declare them in the environment's "
                f"specs or drop them (expected only {sorted(map(str, self._specs))})"
            )
