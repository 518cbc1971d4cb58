"""`rltrain eval`, `rltrain summary` and a joblib multirun through the installed console script."""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest


def test_eval_prints_each_episode_and_the_mean(trained_run, run_cli, workdir):
    result = run_cli(["eval", str(trained_run), "--episodes", "3", "--seed", "5"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    episodes = re.findall(r"^episode\s+(\d+): return ([\d.]+)$", result.stdout, flags=re.M)
    assert [int(index) for index, _ in episodes] == [1, 2, 3]
    returns = [float(value) for _, value in episodes]
    assert all(8 <= value <= 500 for value in returns)  # CartPole: 1 per step, at most 500
    mean = re.search(
        r"ppo on cartpole, step 512: mean ([\d.]+) ± ([\d.]+) over 3 episodes", result.stdout
    )
    assert mean, result.stdout
    assert float(mean.group(1)) == pytest.approx(sum(returns) / 3, abs=0.006)
    assert not (workdir / "runs").exists()


def test_multirun_joblib_with_flags_after_overrides_then_summary(
    run_cli, workdir, tiny, find_run_dirs, summary_of, tb_scalars
):
    """`-m` after the overrides and a launcher override: two jobs under multirun/<time>/seed=0
    and /seed=1, then `rltrain summary --csv` over the sweep gives one row per job."""
    result = run_cli(["seed=0,1", "hydra/launcher=joblib", *tiny, "-m"], workdir, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Joblib" in result.stdout  # the joblib launcher ran the jobs, not the basic one
    # the parallel jobs' progress lines interleave: each carries its job's number
    for job in ("0", "1"):
        assert re.search(rf"^#{job} ppo/cartpole step 512/512 \| ", result.stdout, flags=re.M)
    (sweep,) = (workdir / "multirun").iterdir()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6}", sweep.name)
    runs = find_run_dirs(sweep)
    assert [run.name for run in runs] == ["seed=0", "seed=1"]  # named by what the sweep varies
    assert [summary_of(run)["seed"] for run in runs] == [0, 1]
    assert all(summary_of(run)["steps"] == 512 for run in runs)
    assert not (workdir / "runs").exists()
    # different seeds: different learning curves
    assert tb_scalars(runs[0])["losses/policy_loss"] != tb_scalars(runs[1])["losses/policy_loss"]

    # --no-group: one row per run, in run-directory order
    per_run_csv = workdir / "runs.csv"
    result = run_cli(["summary", str(sweep), "--no-group", "--csv", str(per_run_csv)], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 runs in" in result.stdout
    for seed in ("0", "1"):
        assert re.search(
            rf"^│ seed={seed}\s+│ ppo\s+│ cartpole\s+│ seed={seed} ", result.stdout, flags=re.M
        ), result.stdout
    with open(per_run_csv) as handle:
        rows = list(csv.DictReader(handle))
    assert [row["run"] for row in rows] == ["seed=0", "seed=1"]
    for row, run in zip(rows, runs, strict=True):
        summary = summary_of(run)
        assert row["algo"] == "ppo" and row["env"] == "cartpole" and row["steps"] == "512"
        assert float(row["eval_return"]) == summary["eval_return_mean"]
        assert float(row["wall_time_s"]) == summary["wall_time"] > 0
        assert row["overrides"].split() == summary["overrides"]

    # the default groups the seeds of one configuration into one row
    grouped_csv = workdir / "grouped.csv"
    result = run_cli(["summary", str(sweep), "--csv", str(grouped_csv)], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 runs in" in result.stdout and "1 configurations" in result.stdout
    with open(grouped_csv) as handle:
        (row,) = list(csv.DictReader(handle))
    returns = [summary_of(run)["eval_return_mean"] for run in runs]
    assert row["seeds"] == "0,1" and row["n_runs"] == "2"
    assert float(row["eval_return_mean"]) == pytest.approx(sum(returns) / 2)
    assert float(row["eval_return_min"]) == min(returns)
    assert float(row["eval_return_max"]) == max(returns)
    assert "seed=" not in row["overrides"]


def test_summary_of_one_run_directory(trained_run, run_cli, workdir):
    copy = workdir / "one_run"
    shutil.copytree(trained_run, copy)
    result = run_cli(["summary", str(copy), "--no-group"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 runs in" in result.stdout
    assert re.search(r"^│ \.\s+│ ppo\s+│ cartpole\s+│ seed=0 ", result.stdout, flags=re.M)


def test_summary_ignores_unfinished_runs(trained_run, run_cli, workdir):
    """A run without summary.json (interrupted, or failed before training) is not a table row."""
    root = workdir / "runs"
    shutil.copytree(trained_run, root / "finished")
    unfinished = root / "unfinished"
    shutil.copytree(trained_run, unfinished)
    (unfinished / "summary.json").unlink()
    result = run_cli(["summary", str(root), "--no-group"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 runs in" in result.stdout and "finished" in result.stdout
    assert "unfinished" not in result.stdout


def test_eval_video_scores_the_recorded_episodes(run_cli, workdir, find_run_dirs):
    """`eval --video` on a grid world: one MP4 per episode, and the printed returns are those of
    the recorded episodes (here the exact optimum: value iteration on the deterministic 4x4)."""
    pytest.importorskip("av")
    from rltrain.envs.video import read_video_frames

    train = run_cli(
        ["algo=value_iteration", "env=gridworld", "env.slip=0", "total_steps=50"], workdir
    )
    assert train.returncode == 0, train.stdout + train.stderr
    (run,) = find_run_dirs(workdir / "runs")
    result = run_cli(["eval", str(run), "--episodes", "2", "--video"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    returns = [float(v) for v in re.findall(r"^episode\s+\d+: return (-?[\d.]+)$", result.stdout,
                                             flags=re.M)]
    assert len(returns) == 2
    # the optimal path of the default 4x4 reaches the goal (+1) and nothing else pays
    assert returns[0] == returns[1] > 0
    videos = re.findall(r"^video: (.+\.mp4)$", result.stdout, flags=re.M)
    assert len(videos) == 2
    for path in videos:
        frames = read_video_frames(path)
        assert frames.ndim == 4 and frames.shape[0] >= 2 and frames.shape[-1] == 3


def test_logger_video_writes_mp4s_and_a_tensorboard_clip(run_cli, workdir, find_run_dirs):
    """`logger.video=true`: one MP4 per evaluation in <run>/videos and an animated clip under
    eval/video in TensorBoard (a GIF in the Images tab)."""
    pytest.importorskip("av")
    import io

    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train = run_cli(
        ["algo=q_learning", "env=gridworld", "total_steps=400", "eval_interval=200",
         "eval_episodes=1", "logger.video=true"],
        workdir,
    )
    assert train.returncode == 0, train.stdout + train.stderr
    (run,) = find_run_dirs(workdir / "runs")
    videos = sorted(p.name for p in (run / "videos").glob("*.mp4"))
    assert videos == ["step200-episode-1.mp4", "step400-episode-1.mp4"]
    acc = EventAccumulator(str(run), size_guidance={"images": 0})
    acc.Reload()
    clips = acc.Images("eval/video")
    assert [clip.step for clip in clips] == [200, 400]
    gif = Image.open(io.BytesIO(clips[-1].encoded_image_string))
    assert gif.format == "GIF" and gif.n_frames >= 2  # the start frame and at least one move
    assert (gif.width, gif.height) == (clips[-1].width, clips[-1].height)


def test_hydra_mode_override_still_sweeps(run_cli, workdir, tiny, find_run_dirs, summary_of):
    """rltrain skips Hydra's mode probe unless the command line can set hydra.mode; with the
    override, the probe runs and a sweep without `-m` is still a multirun."""
    result = run_cli(["hydra.mode=MULTIRUN", "seed=0,1", *tiny], workdir, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (sweep,) = (workdir / "multirun").iterdir()
    runs = find_run_dirs(sweep)
    assert [summary_of(run)["seed"] for run in runs] == [0, 1]
    assert not (workdir / "runs").exists()


def test_summary_csv_writes_means_without_float_noise(trained_run, run_cli, workdir):
    """Two seeds returning 3.117 and 3.121: the grouped CSV says 3.119, as a person would, not
    the 3.1189999999999998 that summing them in binary gives."""
    root = workdir / "runs"
    for seed, value in ((0, 3.117), (1, 3.121)):
        run = root / f"seed={seed}"
        shutil.copytree(trained_run, run)
        summary = json.loads((run / "summary.json").read_text())
        overrides = [f"seed={seed}", *summary["overrides"][1:]]
        summary.update(seed=seed, eval_return_mean=value, overrides=overrides)
        (run / "summary.json").write_text(json.dumps(summary))
        (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    assert (3.117 + 3.121) / 2 == 3.1189999999999998  # the noise this is about
    table = workdir / "groups.csv"
    result = run_cli(["summary", str(root), "--csv", str(table)], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = csv.DictReader(table.read_text().splitlines())
    assert row["n_runs"] == "2" and row["eval_return_mean"] == "3.119", row
    assert row["eval_return_std"] == "0.002"
