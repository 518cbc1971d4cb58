"""Progress display: a rich bar on a terminal, plain periodic lines otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    def __init__(self, mode: str, total: int, start: int, description: str) -> None:
        if mode == "auto":
            mode = "bar" if sys.stdout.isatty() else "lines"
        self.mode, self.total, self.description = mode, total, description
        self._bar: Any = None
        self._last_line = 0.0
        if mode == "bar":
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[sps]:>7} sps  return {task.fields[ret]:>8}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                description, total=total, completed=start, sps="-", ret="-"
            )

    def update(
        self, step: int, sps: float, recent_return: float | None, force: bool = False
    ) -> None:
        ret = "-" if recent_return is None else f"{recent_return:.2f}"
        if self.mode == "bar":
            self._bar.update(
                self._task, completed=min(step, self.total), sps=f"{sps:,.0f}", ret=ret
            )
        elif self.mode == "lines":
            now = time.monotonic()
            if force or now - self._last_line >= 5.0:
                self._last_line = now
                eta = (self.total - step) / sps if sps > 0 else float("nan")
                print(
                    f"{self.description} step {step:,}/{self.total:,} | {sps:,.0f} sps | "
                    f"return {ret} | eta {eta:,.0f}s",
                    flush=True,
                )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
