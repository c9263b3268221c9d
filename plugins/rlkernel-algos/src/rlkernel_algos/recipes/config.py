"""Recipe configs: ``key=value`` overrides typed by the dataclass, JSON round trips, field docs.

Every recipe config is a ``@dataclass`` whose fields carry a docstring (a string literal on
the line after the field, read here with :mod:`ast`)::

    @dataclass
    class PPOConfig:
        learning_rate: float = 3e-4
        \"\"\"Adam's step size.\"\"\"

>>> from dataclasses import dataclass
>>> @dataclass
... class Demo:
...     lr: float = 0.1
...     cells: tuple[int, ...] = (64, 64)
...     anneal: bool = False
>>> apply_overrides(Demo(), ["lr=3e-4", "cells=32,32", "anneal=yes"])
Demo(lr=0.0003, cells=(32, 32), anneal=True)
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import itertools
import json
import os
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from rlkernel.errors import RLKernelError

__all__ = [
    "ConfigError",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "field_docs",
    "parse_value",
    "read_config",
    "write_config",
]

C = TypeVar("C")
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


class ConfigError(RLKernelError, ValueError):
    """A config key is unknown, or a value does not fit the field's type."""


def _field_types(config_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(config_cls)}


def _unwrap_optional(kind: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        optional = len(args) != len(typing.get_args(kind))
        if len(args) == 1:
            return args[0], optional
    return kind, False


def parse_value(text: str, kind: Any, *, key: str = "value") -> Any:
    """Turn the string ``text`` into a value of type ``kind`` (bool, int, float, str,
    ``X | None``, ``tuple[int, ...]``/``list[float]``; ``Literal[...]`` checks membership)."""
    kind, optional = _unwrap_optional(kind)
    if optional and text.strip().lower() in ("none", "null", ""):
        return None
    origin = typing.get_origin(kind)
    try:
        if kind is bool:
            low = text.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("expected true/false, yes/no, on/off or 1/0")
        if kind is int:
            try:
                return int(text.replace("_", ""))
            except ValueError:
                number = float(text)  # 1e5
                if not number.is_integer():
                    raise ValueError("expected an integer") from None
                return int(number)
        if kind is float:
            return float(text)
        if kind is str or kind is Any:
            return text
        if origin is typing.Literal:
            allowed = typing.get_args(kind)
            if text not in allowed:
                raise ValueError(f"expected one of {', '.join(map(str, allowed))}")
            return text
        if origin in (tuple, list):
            args = typing.get_args(kind)
            item = args[0] if args else str
            parts = [p for p in text.replace("(", "").replace(")", "").split(",") if p.strip()]
            values = [parse_value(p.strip(), item, key=key) for p in parts]
            return tuple(values) if origin is tuple else values
    except ValueError as err:
        raise ConfigError(f"config key {key!r}: cannot read {text!r} as {_type_name(kind)}: {err}") from None
    raise ConfigError(f"config key {key!r}: fields of type {_type_name(kind)} cannot be set from the command line")


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


def _unknown_key(config_cls: type, key: str) -> ConfigError:
    names = [f.name for f in dataclasses.fields(config_cls)]
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; keys: {', '.join(names)}"
    return ConfigError(f"unknown config key {key!r} for {config_cls.__name__}{hint}")


def apply_overrides(config: C, overrides: list[str] | dict[str, Any]) -> C:
    """A copy of ``config`` with ``"key=value"`` strings (typed by the fields) or a dict applied."""
    config_cls = type(config)
    types_ = _field_types(config_cls)
    changes: dict[str, Any] = {}
    items: list[tuple[str, Any]]
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for text in overrides:
            key, sep, value = text.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"config override {text!r} must have the form key=value")
            items.append((key.strip(), value))
    for key, value in items:
        if key not in types_:
            raise _unknown_key(config_cls, key)
        changes[key] = parse_value(value, types_[key], key=key) if isinstance(value, str) else value
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as a JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(config_cls: type[C], data: dict[str, Any]) -> C:
    """Rebuild a config from :func:`config_to_dict`'s output (unknown keys are an error)."""
    types_ = _field_types(config_cls)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in types_:
            raise _unknown_key(config_cls, key)
        kind, _ = _unwrap_optional(types_[key])
        if isinstance(value, list) and typing.get_origin(kind) is tuple:
            value = tuple(value)
        values[key] = value
    return config_cls(**values)


def write_config(path: str | os.PathLike[str], algo: str, config: Any) -> None:
    """Write ``{"algo": algo, "config": {...}}`` as JSON."""
    Path(path).write_text(json.dumps({"algo": algo, "config": config_to_dict(config)}, indent=2) + "\n")


def read_config(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """``(algo, config dict)`` from a file written by :func:`write_config`."""
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"{source} does not exist: is {source.parent} a run directory made by 'rlkernel train'?")
    data = json.loads(source.read_text())
    if not isinstance(data, dict) or "algo" not in data or "config" not in data:
        raise ConfigError(f"{source} is not a run config (no 'algo' and 'config' entries)")
    return str(data["algo"]), dict(data["config"])


def field_docs(config_cls: type) -> dict[str, str]:
    """``{field: docstring}`` from the string literals written under each field."""
    try:
        source = textwrap.dedent(inspect.getsource(config_cls))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0]
    docs: dict[str, str] = {}
    statements = getattr(body, "body", [])
    for stmt, after in itertools.pairwise(statements):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[stmt.target.id] = " ".join(after.value.value.split())
    return docs
