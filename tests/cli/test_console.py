"""The console through the installed console script: off a terminal, lines with the step, sps,
recent return, last and best eval, the family's numbers and the ETA; on a terminal (a pty), a bar
redrawn by time even when no log flush comes, drawn to the last step."""

from __future__ import annotations

import os
import pty
import re
import subprocess
from pathlib import Path

FIELDS = r"[\d,]+ sps \| return [\d.-]+ \| eval ([\d.-]+) \| best ([\d.-]+) \| {family} \| eta \d+s"


def test_lines_show_eval_best_and_the_actor_critic_numbers(run_cli, workdir, tiny):
    result = run_cli([*tiny, "eval_interval=256"], workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    last = [line for line in result.stdout.splitlines() if " step " in line][-1]
    family = r"pi_loss \S+ v_loss \S+ kl \S+"
    match = re.fullmatch(r"ppo/cartpole step 512/512 \| " + FIELDS.format(family=family), last)
    assert match, last
    assert float(match.group(2)) >= float(match.group(1))  # best >= last


def test_lines_show_epsilon_for_dqn(run_cli, workdir):
    args = ["algo=dqn", "total_steps=400", "algo.learning_starts=100", "env.num_envs=1",
            "eval_episodes=1", "device=cpu", "logger.log_interval=100"]  # fmt: skip
    result = run_cli(args, workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    last = [line for line in result.stdout.splitlines() if " step " in line][-1]
    assert re.fullmatch(
        r"dqn/cartpole step 400/400 \| " + FIELDS.format(family=r"eps \S+ td_loss \S+"), last
    ), last


def test_the_bar_is_redrawn_by_time_and_ends_at_the_last_step(rltrain_bin: Path, workdir):
    """No log flush until the end (log_interval > total_steps): the old bar stayed frozen at its
    first value; now it moves about twice a second and shows the final step."""
    args = [str(rltrain_bin), "total_steps=16384", "logger.log_interval=1000000", "device=cpu",
            "eval_episodes=1", "env.num_envs=1", "env.vectorization=sync", "algo.n_steps=256",
            "logger.progress=bar"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TERM": "xterm", "COLUMNS": "200"}
    env.pop("NO_COLOR", None)
    leader, follower = pty.openpty()
    process = subprocess.Popen(args, cwd=workdir, env=env, stdin=follower, stdout=follower,
                               stderr=follower, close_fds=True)  # fmt: skip
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=300) == 0, output.decode(errors="replace")
    os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))
    counts = {int(done) for done in re.findall(r"(\d+)/16384", text)}
    assert 16384 in counts, text[-2000:]
    assert len(counts - {0, 16384}) >= 2, counts  # redrawn in between, with no flush
    assert re.search(r"16384/16384 [\d,]+ sps \| return [\d.]+ \| eval - \| best - \| eta 0s", text)
