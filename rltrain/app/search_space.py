"""A sweep's search space checked against the schemas before any job trains.

Type errors in a sweep already fail at composition; range errors (`algo.lr=interval(-1, 1)`,
`algo.batch_size=choice(64, 4096)` when no rollout is that large) would otherwise surface one job
at a time. A value is a *range error* when no point of the search space that holds it is a valid
config. A value that is valid with some values of the other swept keys and not with others (PPO's
`batch_size` against `n_steps`) is not one: such points are trials that fail with their one-line
reason, and the Optuna presets' `max_failure_rate: 1.0` lets the study go on past them.

The points checked: every combination when there are at most `MAX_POINTS`, else `MAX_POINTS`
drawn at random (seeded, so the check is the same every time); an interval or range contributes
its two ends.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from rltrain.errors import UserError

MAX_POINTS = 200


def swept_values(overrides: Sequence[str], inclusive_range: bool) -> dict[str, list[Any]]:
    """{key: the values to check} of the sweep overrides among `overrides` (`key=a,b`,
    `choice(...)`, `range(...)`, `interval(...)`, `tag(log, ...)`); Optuna's ranges include
    their stop (`inclusive_range`), Hydra's basic sweeper's do not."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    parser = OverridesParser.create()
    space: dict[str, list[Any]] = {}
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except Exception:  # Hydra reports unparsable overrides itself, with a better message
            continue
        if not override.is_sweep_override():
            continue
        value = override.value()
        key = override.get_key_element().lstrip("+~")
        if isinstance(value, IntervalSweep):
            if value.start is None or value.end is None:
                continue
            ends: list[Any] = [value.start, value.end]
            if all(float(end).is_integer() for end in ends):  # interval(1, 8) of an int key
                ends = [int(end) for end in ends]
            space[key] = ends
        elif isinstance(value, RangeSweep):
            values = list(override.sweep_iterator())
            if inclusive_range and value.stop is not None:
                values.append(value.stop)
            space[key] = [values[0], values[-1]] if values else []
        elif isinstance(value, ChoiceSweep):
            space[key] = list(override.sweep_iterator())
    return space


def check_search_space(task: DictConfig, task_overrides: Sequence[str], space: dict[str, list[Any]]
                       ) -> None:  # fmt: skip
    """Raises a UserError naming the first swept value that no valid point holds, or saying that
    the space has no valid point at all. `task` is the composed config before the preset."""
    from rltrain.config.presets import apply_preset
    from rltrain.config.validate import typed_config

    if not space:
        return
    base = task.copy()
    with open_dict(base):
        base.pop("hydra", None)
    apply_preset(base, [item for item in task_overrides if "=" in item])
    # values of keys only: a swept config group (`algo=ppo,dqn`, `env=...`) composes a whole
    # different config per value, which Hydra checks itself when it composes each job
    space = {key: values for key, values in space.items() if _is_value_key(base, key)}
    if not space:
        return
    keys = list(space)
    valid: dict[str, set[int]] = {key: set() for key in keys}
    first_error: dict[tuple[str, int], str] = {}
    any_valid = False
    for point in _points([len(space[key]) for key in keys]):
        node = base.copy()
        try:
            for key, index in zip(keys, point, strict=True):
                OmegaConf.update(node, key, space[key][index], merge=False, force_add=False)
            typed_config(node)
        except UserError as error:
            for key, index in zip(keys, point, strict=True):
                first_error.setdefault((key, index), str(error))
            continue
        except Exception as error:  # OmegaConf: a value of the wrong type for its key
            for key, index in zip(keys, point, strict=True):
                first_error.setdefault((key, index), str(error).splitlines()[0])
            continue
        any_valid = True
        for key, index in zip(keys, point, strict=True):
            valid[key].add(index)
    if not any_valid:
        raise UserError(
            "no point of the sweep's search space is a valid config (the first one checked: "
            f"{next(iter(first_error.values()))})"
        )
    for key in keys:
        for index, value in enumerate(space[key]):
            if index not in valid[key] and (key, index) in first_error:
                raise UserError(
                    f"sweep {key}: the value {value} fails in every point of the search space "
                    f"that has it ({first_error[(key, index)]})"
                )


def _is_value_key(node: DictConfig, key: str) -> bool:
    """Whether `key` names a value (`algo.lr`), not a config group (`algo`, `hydra/launcher`)."""
    if "/" in key:
        return False
    value = OmegaConf.select(node, key, default=None, throw_on_missing=False)
    return not isinstance(value, (DictConfig, ListConfig))


def _points(sizes: list[int]) -> list[tuple[int, ...]]:
    """Index tuples into each key's values: all of them, or MAX_POINTS drawn at random."""
    import numpy as np

    if math.prod(sizes) <= MAX_POINTS:
        return list(itertools.product(*(range(size) for size in sizes)))
    rng = np.random.default_rng(0)
    draws = np.stack([rng.integers(0, size, MAX_POINTS) for size in sizes], axis=1)
    return [tuple(int(i) for i in row) for row in draws]
