"""Your own env through the installed console script: `env.id=module:Id` (the module registers the
id), `env.entry_point=module:Class` with `env.kwargs`, no `render_mode` unless a video asks for it,
and one line naming the env for every way it can fail to build. The env is the README's example,
docs/examples/corridor.py, imported from PYTHONPATH as a user's module is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "corridor.py"
BUDGET = ["total_steps=1024", "env.num_envs=2", "eval_episodes=2", "device=cpu",
          "logger.log_interval=256"]  # fmt: skip


@pytest.fixture
def user_env(workdir: Path, cli_environment) -> dict[str, str]:
    """The CLI's environment with the example module (and a broken one) on PYTHONPATH."""
    modules = workdir / "user_modules"
    modules.mkdir()
    shutil.copy(EXAMPLE, modules / "corridor.py")
    (modules / "broken_env.py").write_text("raise RuntimeError('no licence file found')\n")
    return cli_environment(PYTHONPATH=str(modules))


def only_run(root: Path) -> Path:
    (run_dir,) = [path.parent.parent for path in root.rglob(".hydra/config.yaml")]
    return run_dir


def test_module_colon_id_imports_the_module_and_trains_on_its_id(
    run_cli, workdir, user_env, summary_of, one_error_line
):
    args = ["env=gym", "env.id=corridor:Corridor-v0", "algo.n_steps=64", "algo.batch_size=64",
            "seed=0", *BUDGET]  # fmt: skip
    result = run_cli(args, workdir, env=user_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no tuned preset for algo=ppo on Corridor-v0" in result.stdout
    run_dir = only_run(workdir / "runs" / "gym" / "ppo")
    summary = summary_of(run_dir)
    # 5 cells: the best return is 1 - 3 x 0.01 (four steps right); a tiny PPO run gets there
    assert summary["eval_return_mean"] == pytest.approx(0.97)
    # a new process (rltrain eval) imports the module again from the saved env.id
    result = run_cli(["eval", str(run_dir), "--episodes", "2"], workdir, env=user_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mean 0.97" in result.stdout
    # videos need render_mode, which this env does not take: one line that names it
    message = one_error_line(
        run_cli(["eval", str(run_dir), "--episodes", "1", "--video"], workdir, env=user_env)
    )
    assert message.startswith(
        "env.id=corridor:Corridor-v0 failed to build with render_mode='rgb_array' (for a video): "
        "TypeError: "
    )


def test_entry_point_builds_an_unregistered_class_with_kwargs(
    run_cli, workdir, user_env, summary_of, tb_scalars, monkeypatch
):
    args = ["algo=dqn", "env=gym", "env.entry_point=corridor:Corridor", "env.kwargs={length:3}",
            "env.max_episode_steps=7", "algo.learning_starts=200", *BUDGET]  # fmt: skip
    result = run_cli(args, workdir, env=user_env)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = only_run(workdir / "runs" / "gym" / "dqn")
    lengths = [value for _, value in tb_scalars(run_dir)["charts/episodic_length"]]
    assert lengths and max(lengths) <= 7  # env.max_episode_steps is the TimeLimit
    # length=3 reached the env: its best return is 1 - 0.01 (two steps), 5 cells' is 0.97
    assert summary_of(run_dir)["eval_return_mean"] == pytest.approx(0.99, abs=1e-6)

    # the Python API loads it too, with the module importable in this process
    import rltrain

    monkeypatch.syspath_prepend(user_env["PYTHONPATH"])
    agent = rltrain.load(run_dir, checkpoint="last")
    assert agent.observation_space.shape == (1,)
    obs = np.array([[0.0], [0.5], [1.0]], dtype=np.float32)
    assert (agent.predict(obs) == agent.q_values(obs).argmax(axis=1)).all()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("env.id=no_such_pkg.envs:Corridor-v0",
         "env.id=no_such_pkg.envs:Corridor-v0: cannot import no_such_pkg.envs (No module named "
         "'no_such_pkg'); is it installed, or on PYTHONPATH?"),
        ("env.id=corridor:Coridor-v0",
         "env.id=corridor:Coridor-v0 is not a registered gymnasium environment (importing "
         "corridor did not register it); did you mean Corridor-v0?"),
        ("env.id=broken_env:Thing-v0",
         "env.id=broken_env:Thing-v0: importing broken_env failed: RuntimeError: no licence file "
         "found"),
        ("env.entry_point=no_such_module:MyEnv",
         "env.entry_point=no_such_module:MyEnv: cannot import no_such_module (No module named "
         "'no_such_module'); is it installed, or on PYTHONPATH?"),
        ("env.entry_point=corridor:Coridor",
         "env.entry_point=corridor:Coridor: module corridor has no Coridor"),
        ("env.entry_point=corridor",
         "env.entry_point=corridor must be module:Class, e.g. env.entry_point=my_pkg.envs:MyEnv"),
    ],
)  # fmt: skip
def test_an_env_that_cannot_be_built_is_one_line(
    run_cli, workdir, user_env, one_error_line, override, expected
):
    result = run_cli(["env=gym", override, *BUDGET], workdir, env=user_env)
    assert one_error_line(result) == expected
    assert not list(workdir.rglob("*.pt"))  # nothing trained


def test_wrong_kwargs_name_the_env_and_the_error(run_cli, workdir, user_env, one_error_line):
    result = run_cli(
        ["env=gym", "env.entry_point=corridor:Corridor", "env.kwargs={lenght:3}", *BUDGET],
        workdir, env=user_env,
    )  # fmt: skip
    message = one_error_line(result)
    assert message.startswith("env.entry_point=corridor:Corridor failed to build: TypeError: ")
    assert "unexpected keyword argument 'lenght'" in message
