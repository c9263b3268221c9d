""":class:`Recipe`: what ``rlkernel.registry.algos[name]`` returns for a training recipe.

A recipe module defines a config dataclass, ``train(config, run_dir) -> dict`` and
``load_policy(run_dir) -> TrainedPolicy``, and ends with::

    RECIPE = Recipe("ppo", PPOConfig, train, load_policy, presets=PRESETS, summary="...")

``presets`` maps an environment name to the config values that suit it (like the tuned
hyper-parameters of rl-zoo); :meth:`Recipe.make_config` applies the preset of the chosen
environment first and the user's overrides last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlkernel_algos.recipes.config import apply_overrides, field_docs

__all__ = ["Recipe", "round_frames"]


def round_frames(total_frames: int, frames_per_batch: int) -> int:
    """``total_frames`` rounded up to a multiple of ``frames_per_batch`` (collectors need one)."""
    return -(-int(total_frames) // int(frames_per_batch)) * int(frames_per_batch)


@dataclass(frozen=True)
class Recipe:
    """A registered training recipe.

    Attributes:
        name: the name it is registered under (``"ppo"``).
        config_class: its ``@dataclass`` config (every field documented; an ``env``,
            ``total_frames`` and ``seed`` field at least).
        train: ``train(config, run_dir) -> dict`` of final metrics.
        load_policy: ``load_policy(run_dir) -> TrainedPolicy``.
        presets: ``{env name: {field: value}}`` applied by :meth:`make_config`.
        summary: one line saying what the recipe does.
    """

    name: str
    config_class: type
    train: Callable[[Any, Path], dict[str, float]]
    load_policy: Callable[[Path], Any]
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    summary: str = ""

    def make_config(self, env: str | None = None, overrides: list[str] | Mapping[str, Any] = (), **fields: Any) -> Any:
        """The default config, for ``env`` with its preset, then ``overrides`` (``"key=value"``
        strings or a dict) and ``fields`` applied."""
        config = self.config_class()
        if env is None:  # the environment may come with the overrides: its preset goes first
            given = dict(overrides) if not isinstance(overrides, list) else dict(
                text.partition("=")[::2] for text in overrides if text.partition("=")[0].strip() == "env"
            )
            env = given.get("env")
        if env is not None:
            config = dataclasses.replace(config, env=env)
        preset = self.presets.get(config.env)
        if preset:
            config = apply_overrides(config, dict(preset))
        if overrides:
            config = apply_overrides(config, overrides if isinstance(overrides, list) else dict(overrides))
        if fields:
            config = apply_overrides(config, fields)
        return config

    def describe(self) -> str:
        """The fields, their defaults and their documentation, one per line."""
        docs = field_docs(self.config_class)
        lines = [f"{self.name}: {self.summary}"]
        for f in dataclasses.fields(self.config_class):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            lines.append(f"  {f.name} = {default!r}  -- {docs.get(f.name, '')}")
        if self.presets:
            lines.append("  presets: " + ", ".join(sorted(self.presets)))
        return "\n".join(lines)
