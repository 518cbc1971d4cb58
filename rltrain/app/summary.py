"""`rltrain summary DIR`: the runs under a directory, one row per configuration.

A run is a directory with `summary.json` (written when training finishes) and, from Hydra,
`.hydra/overrides.yaml`. Runs whose overrides are equal except for `seed=` are one configuration:
its row shows the mean ± std over seeds of the final eval return (`eval_return_mean` of each run),
beside their interquartile mean with a bootstrap 95% confidence interval (Agarwal et al. 2021:
the IQM is robust to a seed or two that fail, and the interval says how far K seeds pin it down),
the mean steps and wall time, and its runs; rows are sorted by that mean, best first. Override keys
whose values differ between runs (the swept keys) get a column each.

`--plot FILE.png` draws one learning curve per configuration from the TensorBoard event files:
`charts/episodic_return` (every finished training episode, logged from the first step on;
`eval/return_mean` exists only at eval points, by default only at the end), smoothed per run over
its last 10 episodes and held between episode ends, then the mean over seeds with a min-max band.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rltrain.errors import UserError

CURVE_TAG = "charts/episodic_return"
SMOOTH_EPISODES = 10  # the same window as train_return_last10 in summary.json
MAX_PLOTTED = 10  # more curves than this are unreadable in one figure: the best ones are drawn
FIGURE_INCHES, FIGURE_DPI = (8.0, 5.0), 100  # an 800 x 500 PNG


@dataclass(frozen=True)
class Run:
    path: Path
    name: str  # relative to the summarized directory; "." for the directory itself
    overrides: tuple[str, ...]
    summary: dict[str, Any]

    @property
    def eval_return(self) -> float:
        return float(self.summary.get("eval_return_mean", float("nan")))


@dataclass(frozen=True)
class Group:
    """Runs that differ only in their seed."""

    config: tuple[str, ...]  # the overrides without seed=
    runs: tuple[Run, ...]

    @property
    def returns(self) -> np.ndarray:
        return np.array([run.eval_return for run in self.runs], dtype=np.float64)

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        """Standard deviation over seeds, sqrt(mean((R_k - mean R)^2)) (ddof = 0)."""
        return float(self.returns.std())

    @property
    def iqm(self) -> float:
        return interquartile_mean(self.returns)

    @property
    def iqm_interval(self) -> tuple[float, float]:
        return bootstrap_interval(self.returns, interquartile_mean)

    def mean_of(self, field: str) -> float:
        values = [float(run.summary.get(field) or 0.0) for run in self.runs]
        return sum(values) / len(values)


def interquartile_mean(values: np.ndarray) -> float:
    """IQM = mean of x_(i) for floor(n/4) <= i < n - floor(n/4), x_(i) the values sorted: the mean
    of the middle half, 25% trimmed at each end (Agarwal et al. 2021; scipy.stats.trim_mean(x,
    0.25), what rliable's `aggregate_iqm` computes). Over the last axis, so a [reps, n] array of
    bootstrap samples gives one IQM each."""
    x = np.sort(np.asarray(values, dtype=np.float64), axis=-1)
    cut = x.shape[-1] // 4
    return x[..., cut : x.shape[-1] - cut].mean(axis=-1)  # type: ignore[no-any-return]


BOOTSTRAP_SAMPLES = 2000


def bootstrap_interval(
    values: np.ndarray, statistic: Any, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of `statistic` (a function over the last axis):
    draw B = BOOTSTRAP_SAMPLES resamples of the n values with replacement, compute the statistic
    of each, and return its (1 - c)/2 and (1 + c)/2 quantiles (Efron & Tibshirani 1993; with one
    score per run of one task, rliable's stratified bootstrap is this one). Seeded: the same runs
    print the same interval."""
    x = np.asarray(values, dtype=np.float64)
    draws = np.random.default_rng(seed).integers(0, len(x), size=(BOOTSTRAP_SAMPLES, len(x)))
    stats = statistic(x[draws])
    low, high = np.quantile(stats, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def override_key(override: str) -> str:
    """`+search=x` -> `search`, `algo.lr=1e-3` -> `algo.lr` (the key without Hydra's prefixes)."""
    return override.split("=", 1)[0].lstrip("+~")


def is_seed(override: str) -> bool:
    return override_key(override) == "seed"


def natural_key(text: str) -> list[Any]:
    """Sort key that puts job 2 before job 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _read_overrides(run_dir: Path, summary: dict[str, Any]) -> tuple[str, ...]:
    """The saved overrides, else those summary.json recorded (a run dir copied without .hydra)."""
    from rltrain.config.run_overrides import read_run_overrides

    saved = read_run_overrides(run_dir)
    return tuple(saved or (str(item) for item in summary.get("overrides") or ()))


def find_runs(directory: Path) -> list[Run]:
    """Finished runs (with summary.json) at or under `directory`, in natural path order."""
    if not directory.is_dir():
        raise UserError(f"{directory} does not exist; give a sweep or runs directory")
    runs = []
    for path in directory.rglob("summary.json"):
        run_dir = path.parent
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being written, or not ours
        if not isinstance(summary, dict) or "eval_return_mean" not in summary:
            continue
        name = "." if run_dir == directory else run_dir.relative_to(directory).as_posix()
        runs.append(Run(run_dir, name, _read_overrides(run_dir, summary), summary))
    if not runs:
        raise UserError(
            f"no finished runs under {directory} (a run writes summary.json when it finishes); "
            "train with `rltrain` or sweep with `rltrain -m ...` first"
        )
    return sorted(runs, key=lambda run: natural_key(run.name))


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """Runs with equal overrides except `seed=`, best mean eval return first."""
    groups: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        config = tuple(sorted(item for item in run.overrides if not is_seed(item)))
        # runs of different algorithms/envs with equal overrides (e.g. defaults) stay apart
        identity = (str(run.summary.get("algo")), str(run.summary.get("env")), *config)
        groups.setdefault(identity, []).append(run)
    result = [
        Group(tuple(item for item in members[0].overrides if not is_seed(item)), tuple(members))
        for members in groups.values()
    ]
    return sorted(result, key=lambda item: (-_sortable(item.mean), natural_key(item.runs[0].name)))


def _sortable(value: float) -> float:
    return -float("inf") if np.isnan(value) else value


def override_values(overrides: Sequence[str]) -> dict[str, str]:
    return {override_key(item): item.split("=", 1)[1] if "=" in item else "" for item in overrides}


def swept_keys(runs: Sequence[Run]) -> list[str]:
    """Override keys whose value differs between runs (seed, algo and env have columns of their
    own), in the order they first appear."""
    values = [override_values(run.overrides) for run in runs]
    keys: list[str] = []
    for mapping in values:
        keys.extend(key for key in mapping if key not in keys)
    return [
        key
        for key in keys
        if key not in ("seed", "algo", "env") and len({v.get(key) for v in values}) > 1
    ]


def _seeds(runs: Sequence[Run]) -> str:
    return ",".join(str(run.summary.get("seed", "?")) for run in runs)


def summarize(
    directory: Path, csv_path: Path | None = None, plot_path: Path | None = None, group: bool = True
) -> list[Group]:
    """Prints the table (grouped by configuration, or one row per run), optionally writes it as
    CSV and the learning curves as a PNG; returns the configurations, best first."""
    runs = find_runs(directory)
    groups = group_runs(runs)
    keys = swept_keys(runs)
    if group:
        header, rows = _group_rows(groups, keys)
        title = f"{len(runs)} runs in {directory}, {len(groups)} configurations"
        caption = (
            "eval return: final eval return, mean ± std over seeds; IQM: its interquartile mean "
            "[bootstrap 95% CI]; best first"
        )
    else:
        header, rows = _run_rows(runs, keys)
        title, caption = f"{len(runs)} runs in {directory}", None
    _print_table(title, header, rows, caption)
    fixed = sorted(set.intersection(*(set(run.overrides) for run in runs)) - set(keys))
    fixed = [item for item in fixed if not is_seed(item)]
    if group and keys and fixed:
        print(f"in every run: {' '.join(fixed)}")
    if csv_path is not None:
        _write_csv(csv_path, groups, runs, keys, group)
        print(f"wrote {csv_path}")
    if plot_path is not None:
        drawn = plot_groups(groups, keys, plot_path)
        shown = f"the best {drawn} of {len(groups)}" if drawn < len(groups) else f"{drawn}"
        print(f"wrote {plot_path} ({shown} configurations, {CURVE_TAG})")
    return groups


def _group_rows(groups: Sequence[Group], keys: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    header = ["runs", "algo", "env", *keys] + ([] if keys else ["overrides"])
    header += ["seeds", "eval return", "IQM [95% CI]", "min..max", "steps", "wall time"]
    rows = []
    for item in groups:
        first = item.runs[0]
        values = override_values(item.config)
        swept = [values.get(key, "-") for key in keys] if keys else [" ".join(item.config) or "-"]
        returns = item.returns
        rows.append([
            " ".join(run.name for run in item.runs),
            str(first.summary.get("algo")),
            str(first.summary.get("env")),
            *swept,
            _seeds(item.runs),
            f"{item.mean:.2f} ± {item.std:.2f}",
            "{:.2f} [{:.2f}, {:.2f}]".format(item.iqm, *item.iqm_interval),
            f"{returns.min():.1f}..{returns.max():.1f}",
            f"{item.mean_of('steps'):,.0f}",
            f"{item.mean_of('wall_time'):.1f}s",
        ])
    return header, rows


def _run_rows(runs: Sequence[Run], keys: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "algo", "env", "overrides", "steps", "eval return", "wall time"]
    rows = []
    for run in runs:
        data = run.summary
        rows.append([
            run.name,
            str(data.get("algo")),
            str(data.get("env")),
            " ".join(run.overrides) or "-",
            f"{int(data.get('steps') or 0):,}",
            f"{run.eval_return:.2f} ± {float(data.get('eval_return_std') or 0.0):.2f}",
            f"{float(data.get('wall_time') or 0.0):.1f}s",
        ])
    return header, rows


def _print_table(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], caption: str | None
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=caption)
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)


def _tidy(value: float | None) -> float | None:
    """A mean or a std to 10 significant digits: the mean of 3.117 and 3.121 is written as 3.119,
    not 3.1189999999999998 (the sum's rounding error, far below what a return can resolve)."""
    return None if value is None else float(f"{value:.10g}")


def _write_csv(
    path: Path, groups: Sequence[Group], runs: Sequence[Run], keys: Sequence[str], group: bool
) -> None:
    records: list[dict[str, Any]] = []
    if group:
        for item in groups:
            values = override_values(item.config)
            returns = item.returns
            records.append({
                "runs": " ".join(run.name for run in item.runs),
                "algo": item.runs[0].summary.get("algo"),
                "env": item.runs[0].summary.get("env"),
                **{key: values.get(key, "") for key in keys},
                "overrides": " ".join(item.config),
                "seeds": _seeds(item.runs),
                "n_runs": len(item.runs),
                "eval_return_mean": _tidy(item.mean),
                "eval_return_std": _tidy(item.std),
                "eval_return_iqm": _tidy(item.iqm),
                "eval_return_iqm_ci_low": _tidy(item.iqm_interval[0]),
                "eval_return_iqm_ci_high": _tidy(item.iqm_interval[1]),
                "eval_return_min": float(returns.min()),
                "eval_return_max": float(returns.max()),
                "steps": _tidy(item.mean_of("steps")),
                "wall_time_s": _tidy(item.mean_of("wall_time")),
            })
    else:
        for run in runs:
            values = override_values(run.overrides)
            records.append({
                "run": run.name,
                "algo": run.summary.get("algo"),
                "env": run.summary.get("env"),
                "overrides": " ".join(run.overrides),
                **{key: values.get(key, "") for key in keys},
                "seed": run.summary.get("seed"),
                "steps": run.summary.get("steps"),
                "eval_return": run.summary.get("eval_return_mean"),
                "eval_std": run.summary.get("eval_return_std"),
                "wall_time_s": run.summary.get("wall_time"),
            })
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)


def read_curve(run_dir: Path, tag: str = CURVE_TAG) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one scalar tag over every event file of a run (empty when absent)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # keep every scalar event (the default samples 10,000) and skip the heavy kinds
    guidance = {"scalars": 0, "histograms": 1, "images": 1, "tensors": 1, "audio": 1,
                "compressedHistograms": 1}
    accumulator = EventAccumulator(str(run_dir), size_guidance=guidance)
    accumulator.Reload()
    if tag not in accumulator.Tags().get("scalars", []):
        return np.zeros(0), np.zeros(0)
    events = accumulator.Scalars(tag)
    steps = np.array([event.step for event in events], dtype=np.float64)
    values = np.array([event.value for event in events], dtype=np.float64)
    return steps, values


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """y_i = mean(x_{max(0, i-window+1)}, ..., x_i): the mean of the last `window` points."""
    if len(values) == 0:
        return values
    sums = np.cumsum(np.concatenate([[0.0], values]))
    index = np.arange(1, len(values) + 1)
    start = np.maximum(0, index - window)
    return (sums[index] - sums[start]) / (index - start)


def band(
    curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over runs, on `grid`, of step curves: a run's value at step g is the
    value of its last point at or before g (a running mean holds until the next episode ends);
    a run counts only between its first and last point (NaN where no run has data)."""
    stacked = np.full((len(curves), len(grid)), np.nan)
    for row, (steps, values) in enumerate(curves):
        if len(steps) == 0:
            continue
        inside = (grid >= steps[0]) & (grid <= steps[-1])
        stacked[row, inside] = values[np.searchsorted(steps, grid[inside], side="right") - 1]
    counts = np.sum(~np.isnan(stacked), axis=0)
    filled = np.where(np.isnan(stacked), 0.0, stacked)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, filled.sum(axis=0) / counts, np.nan)
    low = np.where(counts > 0, np.where(np.isnan(stacked), np.inf, stacked).min(axis=0), np.nan)
    high = np.where(counts > 0, np.where(np.isnan(stacked), -np.inf, stacked).max(axis=0), np.nan)
    return mean, low, high


def curve_label(item: Group, keys: Sequence[str]) -> str:
    values = override_values(item.config)
    if keys:
        text = " ".join(f"{key}={values.get(key, '-')}" for key in keys)
    else:
        text = " ".join(item.config) or f"{item.runs[0].summary.get('algo')}"
    seeds = f" ({len(item.runs)} seeds)" if len(item.runs) > 1 else ""
    return f"{text}{seeds}"


def plot_groups(groups: Sequence[Group], keys: Sequence[str], path: Path) -> int:
    """Draws the learning curve of each configuration (best MAX_PLOTTED) into an 800 x 500 PNG;
    returns how many curves it drew."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install 'rltrain[plot]'") from None

    curves = []
    for item in groups:
        runs = []
        for run in item.runs:
            steps, values = read_curve(run.path)
            if len(steps):
                smooth = trailing_mean(values, SMOOTH_EPISODES)
                # the last value holds until the run ended, not only until its last episode did:
                # otherwise runs with long episodes drop out of the mean before the end
                end = float(run.summary.get("steps") or steps[-1])
                if end > steps[-1]:
                    steps, smooth = np.append(steps, end), np.append(smooth, smooth[-1])
                runs.append((steps, smooth))
        if runs:
            curves.append((item, runs))
    if not curves:
        raise UserError(
            f"no {CURVE_TAG} in the TensorBoard event files of these runs "
            "(runs trained with logger=none write none)"
        )
    curves = curves[:MAX_PLOTTED]  # groups come best first
    figure = Figure(figsize=FIGURE_INCHES, dpi=FIGURE_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    end = max(float(steps[-1]) for _, runs in curves for steps, _ in runs)
    grid = np.linspace(0.0, end, 200)
    for index, (item, runs) in enumerate(curves):
        mean, low, high = band(runs, grid)
        color = f"C{index % 10}"
        # every band below every line: a later configuration's band would tint earlier lines
        axes.plot(grid, mean, color=color, linewidth=1.6, label=curve_label(item, keys), zorder=3)
        if len(runs) > 1:
            axes.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0, zorder=2)
    axes.set_xlabel("environment steps")
    axes.set_ylabel(f"episodic return (mean of last {SMOOTH_EPISODES})")
    axes.set_title("training return per configuration: mean over seeds, min-max band", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=FIGURE_DPI)
    return len(curves)
