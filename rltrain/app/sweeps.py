"""What Hydra's launcher and sweeper plugins leave to the application in a sweep.

- `train_seeds`: the seed-aware objective, `num_seeds=N` trains N seeds in one job and returns the
  mean of their final eval returns (what an Optuna trial then maximises).
- `SweepChecks`: a Hydra callback run before a multirun starts: a swept value that is never a
  valid config stops the sweep with one line (rltrain/app/search_space.py), an Optuna sweep without
  a search space stops with one line that says how to give one, and a sqlite storage gets its
  directory.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from rltrain.config.run_overrides import read_run_overrides
from rltrain.errors import UserError


def train_seeds(node: DictConfig, run_dir: Path) -> float:
    """Trains `node.num_seeds` seeds and returns the mean final eval return over them.

    objective = (1/N) * sum_{k=0}^{N-1} R(seed + k), R = the final deterministic eval return.
    With N = 1 this is one ordinary run in `run_dir`. With N > 1, seed `s` trains in
    `run_dir/seed_<s>`, a complete run directory of its own (.hydra/config.yaml with seed=s,
    num_seeds=1 and parallel_seeds=false, overrides.yaml with seed=s), so `rltrain summary` groups
    the seeds, and `rltrain eval` / `resume` work on each. Seeds run one after the other in this
    job, or with `parallel_seeds=true` all at once as one batched program (runner/population.py).
    """
    from rltrain.config.validate import typed_config

    count = int(node.get("num_seeds", 1))
    if count < 1:
        raise UserError(f"num_seeds={count} must be at least 1")
    # A config mistake (in any job of a sweep) ends here, before the runner imports torch and
    # the algorithms: a second or more of start-up a one-line error should not wait for.
    typed_config(node)
    from rltrain.runner.loop import train

    if count == 1:
        return train(node, run_dir)
    seeds = [seed_run(node, run_dir, int(node.seed) + offset) for offset in range(count)]
    if node.get("parallel_seeds", False):
        from rltrain.runner.population import train_population

        returns = train_population([c for c, _ in seeds], [d for _, d in seeds], run_dir)
    else:
        returns = [float(train(child, seed_dir)) for child, seed_dir in seeds]
    mean = sum(returns) / len(returns)
    listed = ", ".join(f"{value:.2f}" for value in returns)
    print(f"objective: mean eval return {mean:.2f} over {count} seeds ({listed})", flush=True)
    return mean


SEED_KEYS = ("seed", "num_seeds", "parallel_seeds")  # what a job's seed_<s> runs set themselves


def seed_run(node: DictConfig, run_dir: Path, seed: int) -> tuple[DictConfig, Path]:
    """(config, directory) of seed `seed` of a num_seeds job, both written: an ordinary one-seed
    run of the job's configuration."""
    overrides = [
        item for item in read_run_overrides(run_dir)
        if item.split("=", 1)[0].lstrip("+~") not in SEED_KEYS
    ]
    child = node.copy()
    child.seed, child.num_seeds, child.parallel_seeds = seed, 1, False
    seed_dir = run_dir / f"seed_{seed}"
    (seed_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(child, seed_dir / ".hydra" / "config.yaml")
    OmegaConf.save(ListConfig([*overrides, f"seed={seed}"]), seed_dir / ".hydra" / "overrides.yaml")
    return child, seed_dir


def _given_overrides(config: DictConfig, which: str) -> list[str]:
    """`hydra.overrides.task` or `.hydra` as typed: an override such as
    `hydra.sweep.subdir=${hydra.job.num}` is text here, not an interpolation to resolve."""
    items = OmegaConf.to_container(config.hydra.overrides[which], resolve=False)
    return [str(item) for item in items]  # type: ignore[union-attr]


def _is_sweep(override: str) -> bool:
    """Whether a command-line override is a sweep (a,b / range() / interval() / choice())."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        (parsed,) = OverridesParser.create().parse_overrides([override])
    except Exception:  # Hydra reports unparsable overrides itself, with a better message
        return False
    return bool(parsed.is_sweep_override())


def _name_runs_by_their_swept_keys(
    config: DictConfig, task: list[str], params: list[str], grid: bool
) -> None:
    """The default `hydra.sweep.subdir` is `${hydra.job.override_dirname}`, which names a job
    after every override it got: the keys the command line fixes for all jobs are left out of
    it (`multirun/<time>/algo.lr=0.001,seed=1`), and a multirun that sweeps nothing numbers its
    one job. Where two jobs could get the same name (a sampler that may draw a point twice, a
    grid that lists a value twice) the job's number leads it, so no run overwrites another.
    Each job's config is composed again from `hydra.overrides.hydra`, so an override appended
    there reaches every launcher. A subdir or exclusion the user set is kept."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweep = OmegaConf.to_container(config.hydra.sweep, resolve=False)
    hydra_overrides = [item.lstrip("+~") for item in _given_overrides(config, "hydra")]
    if sweep.get("subdir") != "${hydra.job.override_dirname}" or any(  # type: ignore[union-attr]
        item.startswith(("hydra.sweep.subdir=", "hydra.job.config.override_dirname."))
        for item in hydra_overrides
    ):
        return
    try:
        parsed = OverridesParser.create().parse_overrides(task)
    except Exception:  # Hydra reports unparsable overrides itself, with a better message
        return
    sweeps = [o for o in parsed if o.is_sweep_override()]
    swept = {o.key_or_group for o in sweeps} | set(params)
    fixed = sorted({o.key_or_group for o in parsed} - swept)
    naming = []
    if not swept:
        naming.append("hydra.sweep.subdir=${hydra.job.num}")
    else:
        if fixed:
            naming.append(f"hydra.job.config.override_dirname.exclude_keys=[{','.join(fixed)}]")
        if not grid or params or _lists_a_value_twice(sweeps):
            naming.append("hydra.sweep.subdir=${hydra.job.num}_${hydra.job.override_dirname}")
    with read_write(config.hydra.overrides), open_dict(config.hydra.overrides):
        config.hydra.overrides.hydra.extend(naming)


def _lists_a_value_twice(sweeps: list[Any]) -> bool:
    """Whether a grid's sweep overrides (choices, ranges) hold a value twice (`seed=0,0`)."""
    try:
        listed = [list(override.sweep_string_iterator()) for override in sweeps]
    except Exception:  # not a grid sweep (interval): the basic sweeper refuses it itself
        return False
    return any(len(set(values)) < len(values) for values in listed)


def _fail(message: str) -> None:
    """Hydra turns exceptions raised in callbacks into warnings and goes on; a sweep that must not
    start has to end the process: one line on stderr, exit status 2, as the CLI does for errors."""
    print(f"rltrain: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


# Composing one job's config takes tens of milliseconds: a grid larger than this is checked
# job by job as it runs (its type errors still up front, by Hydra).
MAX_CHECKED_JOBS = 2000


def _job_overrides(config: DictConfig) -> list[list[str]] | None:
    """Every job of a basic (grid) sweep as its list of overrides, in launch order, or None
    when the sweep cannot be expanded here (Hydra then reports the problem itself)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()]
    arguments += _given_overrides(config, "task")
    try:
        parsed = OverridesParser.create().parse_overrides(arguments)
        (jobs,) = BasicSweeper.split_arguments(parsed, None)
    except Exception:
        return None
    return [list(job) for job in jobs]


def check_every_job(config: DictConfig) -> None:
    """A grid sweep is validated whole before its first job: every job's config is composed as
    Hydra will compose it, its preset applied, and typed (ranges included), so that a bad value
    in job 5 does not surface after jobs 0-4 have trained."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from rltrain.config.errors import explain
    from rltrain.config.presets import apply_preset
    from rltrain.config.validate import typed_config

    jobs = _job_overrides(config)
    if jobs is None or len(jobs) > MAX_CHECKED_JOBS or not GlobalHydra.instance().is_initialized():
        return
    loader = GlobalHydra.instance().hydra.config_loader  # type: ignore[union-attr]
    for number, overrides in enumerate(jobs):
        try:
            job = loader.load_sweep_config(config, overrides)
        except (HydraException, OmegaConfBaseException) as error:
            # an unknown option or a type error: said here, before the sweeper writes its
            # directory (Hydra would refuse it too, but after that)
            _fail(explain(error))
        with read_write(job), open_dict(job):
            del job["hydra"]
        try:
            apply_preset(job, overrides)
            typed_config(job)
            count = int(job.get("num_seeds", 1))
            if count < 1:
                raise UserError(f"num_seeds={count} must be at least 1")
        except UserError as error:
            swept = [item for item in overrides if item not in _fixed(config)]
            _fail(
                f"sweep job {number} ({' '.join(swept) or 'no swept keys'}): {error}; "
                f"no job of the {len(jobs)} was started"
            )


def _fixed(config: DictConfig) -> set[str]:
    """The command line's overrides that are not sweeps (the same in every job)."""
    return {item for item in _given_overrides(config, "task") if not _is_sweep(item)}


class SweepChecks(Callback):
    """Checks before a multirun starts; enabled by
    `hydra.callbacks.rltrain_sweeps._target_: rltrain.app.sweeps.SweepChecks` in a config."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweeper = config.hydra.sweeper
        if "basic" in str(sweeper.get("_target_", "")).lower():
            check_every_job(config)  # every grid job composed and typed, before the first runs
        task = _given_overrides(config, "task")
        optuna = "optuna" in str(sweeper.get("_target_", "")).lower()
        params = (sweeper.get("params") or {}) if optuna else {}
        self._check_ranges(config, task, [f"{key}={value}" for key, value in params.items()])
        grid = "basic" in str(sweeper.get("_target_", "")).lower()
        _name_runs_by_their_swept_keys(config, task, [str(key) for key in params], grid)
        if not optuna:
            return
        if not params and not any(_is_sweep(item) for item in task):
            _fail(
                "hydra/sweeper=optuna has no search space: use a preset "
                "(`rltrain -m +search=ppo_cartpole`; `rltrain list search` lists them) or give "
                "ranges as overrides, e.g. `rltrain -m hydra/sweeper=optuna "
                "'algo.lr=tag(log,interval(1e-4,1e-2))' algo.gamma=0.98,0.99`"
            )
        direction = sweeper.get("direction")
        if getattr(direction, "name", direction) == "minimize" and not any(
            item.lstrip("+~").startswith("hydra.sweeper.direction=")
            for item in _given_overrides(config, "hydra")
        ):
            # The plugin's default is to minimise; the objective here is a return. An explicit
            # hydra.sweeper.direction=... on the command line is kept as given.
            with open_dict(sweeper), read_write(sweeper):
                sweeper.direction = "maximize"
        storage = sweeper.get("storage")
        if isinstance(storage, str) and storage.startswith("sqlite:///"):
            # sqlite creates the database file but not its directory, and the sweeper opens the
            # study before any job (and so the sweep directory) exists.
            Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self._offset_sampler_seed(sweeper, storage)

    @staticmethod
    def _offset_sampler_seed(sweeper: DictConfig, storage: Any) -> None:
        """A seeded sampler draws the same start-up trials every time it is built: rerunning a
        command to add trials to a stored study would repeat the first launch's points. So the
        seed is offset by the trials the study already holds: a fresh study gets the seed as
        given (the same command, the same trials), a continued one new points."""
        sampler = sweeper.get("sampler")
        seed = sampler.get("seed") if sampler is not None else None
        if seed is None or not isinstance(storage, str) or not storage.startswith("sqlite:///"):
            return
        if not Path(storage.removeprefix("sqlite:///")).is_file():
            return
        import optuna

        try:
            study = optuna.load_study(study_name=str(sweeper.study_name), storage=storage)
        except KeyError:  # the database holds other studies, not this one
            return
        if study.trials:
            with open_dict(sampler), read_write(sampler):
                sampler.seed = int(seed) + len(study.trials)

    @staticmethod
    def _check_ranges(config: DictConfig, task: list[str], params: list[str]) -> None:
        """Range errors of the search space (rltrain/app/search_space.py) before any job."""
        from rltrain.app.search_space import check_search_space, swept_values

        optuna = bool(params) or "optuna" in str(config.hydra.sweeper.get("_target_", ""))
        # a key fixed on the command line leaves the search space (as the Optuna plugin does)
        fixed = {item.split("=", 1)[0].lstrip("+~") for item in task if not _is_sweep(item)}
        params = [item for item in params if item.split("=", 1)[0] not in fixed]
        # the command line after the preset's params: the Optuna plugin lets it win the same way
        space = swept_values([*params, *task], inclusive_range=optuna)
        try:
            check_search_space(config, [item for item in task if not _is_sweep(item)], space)
        except UserError as error:
            _fail(str(error))


def optuna_failure(error: BaseException) -> str | None:
    """The one line for an exception that Optuna raised at the end of a study the user's way of
    running it made impossible; None for any other exception."""
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    if traceback is None or "/optuna/" not in traceback.tb_frame.f_code.co_filename:
        return None
    text = str(error)
    if text in ("Record does not exist.", "No trials are completed yet."):
        return (
            "every trial of the Optuna study failed (each reason is on a `Failed experiment:` "
            "line above), so it has no best trial"
        )
    if "does not support dynamic value space" in text:
        return (
            "the stored Optuna study (hydra.sweeper.storage) was searched with another range for "
            "a key: give a new hydra.sweeper.study_name, or delete the study's optuna.db"
        )
    return None
