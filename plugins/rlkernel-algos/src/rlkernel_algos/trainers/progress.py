"""The training progress bar: frames done, frames per second, recent return (tqdm)."""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["ProgressBar"]


class ProgressBar:
    """A tqdm bar counted in frames; its text is refreshed at most every ``refresh_s`` seconds.

    ``enabled=False`` (or tqdm missing) makes every method a no-op.
    """

    def __init__(self, total: int | None, *, initial: int = 0, enabled: bool = True, refresh_s: float = 0.5,
                 desc: str = "train") -> None:
        self._bar: Any = None
        self.refresh_s = refresh_s
        self._last = 0.0
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm is a dependency
            return
        self._bar = tqdm(
            total=total, initial=initial, unit="frame", unit_scale=True, dynamic_ncols=True, desc=desc,
            file=sys.stderr, smoothing=0.1,
        )

    def update(self, frames: int, fps: float, recent_return: float | None) -> None:
        """Advance by ``frames``; show ``fps`` and ``recent_return``."""
        bar = self._bar
        if bar is None:
            return
        bar.update(frames)
        now = time.perf_counter()
        if now - self._last >= self.refresh_s:
            self._last = now
            shown = {"fps": f"{fps:,.0f}"}
            if recent_return is not None:
                shown["return"] = f"{recent_return:.1f}"
            bar.set_postfix(shown, refresh=False)

    def close(self) -> None:
        """Close the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
