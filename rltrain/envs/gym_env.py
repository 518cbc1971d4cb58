"""One gymnasium env from `env=gym` (and its presets): a registered id, your module's id, or your
unregistered class.

- `env.id=CartPole-v1`: a registered id.
- `env.id=my_pkg.envs:Corridor-v0`: imports `my_pkg.envs` (whose import registers the id), then
  makes the id, which is what `gymnasium.make("my_pkg.envs:Corridor-v0")` does; rltrain imports
  the module itself first so that a missing module or id is one line, not a traceback.
- `env.entry_point=my_pkg.envs:Corridor`: a class (or function) registered nowhere, built through
  an `EnvSpec`, so it gets gymnasium's usual wrappers (order enforcing, the env checker, and
  `TimeLimit` with env.max_episode_steps).

`env.kwargs` go to the env's constructor. `render_mode` is passed only when something renders (a
video): a plain `gymnasium.Env` subclass need not take it.
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from typing import Any

import gymnasium as gym

from rltrain.errors import UserError


def make_gym_env(cfg: Any, render_mode: str | None = None) -> gym.Env[Any, Any]:
    """The env of a `GymEnvConfig`; any failure to build it is a UserError naming the env."""
    kwargs = constructor_kwargs(cfg)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    target: str | gym.envs.registration.EnvSpec = cfg.id
    if cfg.entry_point is not None:
        named = f"env.entry_point={cfg.entry_point}"
        resolve_entry_point(cfg.entry_point)
    else:
        named = f"env.id={cfg.id}"
        check_gym_id(cfg.id)
    # gymnasium warns before building an env with a render mode it does not list; when that
    # build then fails, the one line below says it all, so the warning is shown only on success
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if cfg.entry_point is not None:  # named after the class, as gymnasium names ids
                target = gym.envs.registration.EnvSpec(
                    id=cfg.entry_point.rsplit(":", 1)[1], entry_point=cfg.entry_point
                )
            env = gym.make(target, **kwargs)
        except UserError:
            raise
        except gym.error.DependencyNotInstalled as error:
            # a registered id whose optional extra (Box2D, MuJoCo, ...) is missing: gymnasium's
            # own text says what to install
            if "mujoco" in str(error).lower():
                raise UserError(
                    f"{named} needs the MuJoCo simulator, which is not installed: "
                    "pip install 'rltrain[mujoco]' (the mujoco wheel ships its binaries)"
                ) from None
            raise UserError(
                f"{named} needs a package that is not installed: {one_line(error)}"
            ) from None
        except Exception as error:  # the user's env raised: their bug, said in one line
            for_video = f" with render_mode={render_mode!r} (for a video)" if render_mode else ""
            raise UserError(f"{named} failed to build{for_video}: {one_line(error)}") from error
    for warning in caught:
        warnings.showwarning(
            warning.message, warning.category, warning.filename, warning.lineno
        )
    return env


def constructor_kwargs(cfg: Any) -> dict[str, Any]:
    """`env.kwargs` as plain Python values (a DictConfig when the config is not yet typed)."""
    from omegaconf import DictConfig, OmegaConf

    kwargs = cfg.kwargs
    if isinstance(kwargs, DictConfig):
        plain = OmegaConf.to_container(kwargs, resolve=True)
        assert isinstance(plain, dict)
        return {str(key): value for key, value in plain.items()}
    return dict(kwargs)


def check_gym_id(env_id: str) -> None:
    """A registered id, or `module:id` whose module imports and registers the id."""
    module, _, name = env_id.rpartition(":")
    if module:
        import_user_module(module, f"env.id={env_id}")
    if name in gym.registry:
        return
    if name.startswith("ALE/"):
        raise UserError(f"env.id={env_id}: use env=atari env.game=<name> for Atari games")
    close = difflib.get_close_matches(name, list(gym.registry), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    where = f" (importing {module} did not register it)" if module else ""
    raise UserError(f"env.id={env_id} is not a registered gymnasium environment{where}{hint}")


def resolve_entry_point(entry_point: str) -> Any:
    """The object that `module:attr` names."""
    module_name, _, attribute = entry_point.partition(":")
    module = import_user_module(module_name, f"env.entry_point={entry_point}")
    if not hasattr(module, attribute):
        raise UserError(f"env.entry_point={entry_point}: module {module_name} has no {attribute}")
    return getattr(module, attribute)


def import_user_module(name: str, named: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        raise UserError(
            f"{named}: cannot import {name} ({error}); is it installed, or on PYTHONPATH?"
        ) from error
    except Exception as error:  # the module itself raised while importing
        raise UserError(f"{named}: importing {name} failed: {one_line(error)}") from error


def one_line(error: BaseException) -> str:
    first = str(error).strip().splitlines()
    return f"{type(error).__name__}: {first[0]}" if first else type(error).__name__
