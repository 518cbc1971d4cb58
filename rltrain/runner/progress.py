"""Progress display: a rich bar on a terminal, plain periodic lines otherwise (logs, CI, pipes).

Both show the same fields: the step, steps per second, the ETA, the mean of the recent training
returns, the last and the best evaluation, and a few numbers of the algorithm's family from the
latest log flush (epsilon; policy and value loss; KL). The bar is redrawn by time, about twice a
second, whatever the log interval (`tick` is called every iteration and costs a clock read), and
is drawn at the final step before it closes. Lines go out once per `LINE_SECONDS` and at the end.
Under a parallel launcher each line starts with the job's number (`#3 ppo/cartpole ...`), so the
jobs' interleaved lines can be told apart.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from rltrain import tags

REFRESH_SECONDS = 0.5
LINE_SECONDS = 5.0
# (tag, short name) of the per-family numbers shown when the algorithm logs them
FAMILY_FIELDS = (
    (tags.EPSILON, "eps"),
    (tags.POLICY_LOSS, "pi_loss"),
    (tags.VALUE_LOSS, "v_loss"),
    (tags.TD_LOSS, "td_loss"),
    (tags.APPROX_KL, "kl"),
)


class Progress:
    def __init__(self, mode: str, total: int, start: int, description: str) -> None:
        if mode == "auto":
            mode = "bar" if sys.stdout.isatty() else "lines"
        self.mode, self.total, self.description = mode, total, description
        self.start_step, self.start_time = start, time.perf_counter()
        self.step = start
        self.recent_return: float | None = None
        self.last_eval: float | None = None
        self.best_eval: float | None = None
        self.family: dict[str, float] = {}
        self._bar: Any = None
        self._last_draw = 0.0
        self._last_line = 0.0
        if mode == "bar":
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[fields]}"),
                auto_refresh=False,  # redrawn by `tick`, on this thread
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(description, total=total, completed=start, fields="")

    @property
    def sps(self) -> float:
        elapsed = time.perf_counter() - self.start_time
        return (self.step - self.start_step) / elapsed if elapsed > 0 else 0.0

    def tick(self, step: int, recent_returns: Sequence[float]) -> None:
        """Every iteration (tabular algorithms: every env step), so it only reads the clock
        unless a redraw is due after REFRESH_SECONDS."""
        self.step = step
        now = time.monotonic()
        if now - self._last_draw < REFRESH_SECONDS and now - self._last_line < LINE_SECONDS:
            return
        self.recent_return = sum(recent_returns) / len(recent_returns) if recent_returns else None
        if self.mode == "bar" and now - self._last_draw >= REFRESH_SECONDS:
            self._last_draw = now
            self._draw()
        elif self.mode == "lines" and now - self._last_line >= LINE_SECONDS:
            self._last_line = now
            self._line()

    def logged(self, means: dict[str, float]) -> None:
        """The scalars of a log flush: keeps the family's numbers for the next draw."""
        for tag, name in FAMILY_FIELDS:
            if tag in means:
                self.family[name] = means[tag]

    def evaluated(self, mean: float, best: float) -> None:
        self.last_eval, self.best_eval = mean, best

    def fields(self) -> str:
        """`sps | return | eval | best | family numbers | eta`, as both displays show them."""

        def number(value: float | None) -> str:
            return "-" if value is None else f"{value:.2f}"

        sps = self.sps
        eta = (self.total - self.step) / sps if sps > 0 else float("nan")
        parts = [
            f"{sps:,.0f} sps",
            f"return {number(self.recent_return)}",
            f"eval {number(self.last_eval)}",
            f"best {number(self.best_eval)}",
        ]
        if self.family:
            parts.append(" ".join(f"{name} {value:.3g}" for name, value in self.family.items()))
        parts.append(f"eta {max(eta, 0):,.0f}s" if eta == eta else "eta -")
        return " | ".join(parts)

    def _draw(self) -> None:
        self._bar.update(self._task, completed=min(self.step, self.total), fields=self.fields())
        self._bar.refresh()

    def _line(self) -> None:
        print(f"{self.description} step {self.step:,}/{self.total:,} | {self.fields()}", flush=True)

    def close(self) -> None:
        """The final state, drawn once more: a short run ends at its last step, not earlier."""
        if self._bar is not None:
            self._draw()
            self._bar.stop()
        elif self.mode == "lines":
            self._line()
