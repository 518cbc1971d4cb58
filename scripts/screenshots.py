"""Retake the screenshots in docs/img/: TensorBoard and `mlflow ui` on runs this script trains.

    python scripts/screenshots.py [--out docs/img] [--work DIR]

It trains, through the installed `rltrain`:
- a Q-learning run on the 4x4 gridworld (its V / policy / |V - V*| pictures);
- a 2 x 2 sweep of PPO on CartPole (algo.lr x seed), logged to TensorBoard and MLflow.
Then it serves them with `rltrain board` and `mlflow ui`, and photographs four pages in headless
Chromium: the Custom Scalars chart of Q, V and A, the Images tab, the HParams tab and MLflow's
run list. Needs Chromium (Debian: `apt-get install chromium`) and Playwright's Python package
(`pip install playwright`; no browser download: it drives /usr/bin/chromium). Not part of the
test suite; the pictures are for the README.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# as the machine notes say: without these, Chromium keeps trying to reach Google's hosts
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
SWEEP = ["algo.lr=1e-3,3e-4", "seed=0,1"]
COMMON = ["total_steps=20000", "eval_episodes=5", "logger.progress=none", "device=cpu"]


def rltrain(args: list[str], cwd: Path) -> None:
    print("$ rltrain " + " ".join(args), flush=True)
    subprocess.run([str(BIN / "rltrain"), *args], cwd=cwd, check=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.5)


def train(work: Path) -> tuple[Path, str]:
    """(TensorBoard log dir, MLflow store URI) of the runs the screenshots show."""
    board, store = work / "board", f"sqlite:///{work / 'mlflow.db'}"
    rltrain(["algo=q_learning", "env=gridworld", "total_steps=20000", "logger.progress=none",
             f"hydra.run.dir={board / 'gridworld_q_learning'}"], work)  # fmt: skip
    rltrain(["-m", *SWEEP, *COMMON, "logger.backends=[tensorboard,mlflow]",
             f"logger.mlflow_uri={store}", "logger.mlflow_experiment=ppo_cartpole_sweep",
             f"hydra.sweep.dir={board / 'ppo_sweep'}"], work)  # fmt: skip
    return board, store


class Page(NamedTuple):
    url: str
    png: Path
    wait_for: str  # text the page shows once its data is drawn
    runs: str | None = None  # a regex for TensorBoard's run filter
    expand: bool = False  # enlarge the (first) chart
    width: int = 1400
    height: int = 1000  # TensorBoard scrolls inside the page: a full-page shot is this tall
    close: bool = False  # close MLflow's assistant panel


def photograph(pages: list[Page]) -> None:
    """Each page at its size, after it has drawn its data."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for shot in pages:
            page = browser.new_page(viewport={"width": shot.width, "height": shot.height})
            page.goto(shot.url)
            page.wait_for_load_state("load")  # (MLflow polls: never network-idle)
            if shot.runs is not None:
                page.locator("#names-regex input").fill(shot.runs)
            page.get_by_text(shot.wait_for).first.wait_for(state="attached", timeout=60_000)
            if shot.expand:
                page.locator("paper-icon-button[icon='fullscreen']").first.click()
                time.sleep(2)
                # the pointer on the chart, right of its title: the tooltip names each line
                title = page.get_by_text(shot.wait_for).first.bounding_box()
                assert title is not None
                page.mouse.move(title["x"] + 750, title["y"] + 150)
            if shot.close:
                page.get_by_role("button", name="Close").first.click()
            time.sleep(3)  # charts animate in
            page.screenshot(path=str(shot.png), full_page=True)
            print(f"wrote {shot.png}", flush=True)
            page.close()
        browser.close()


def compare_url(mlflow: str, experiment: str) -> str:
    """MLflow's page comparing every run of `experiment` (params and metrics side by side)."""
    api = f"{mlflow}/api/2.0/mlflow"
    query = urllib.parse.urlencode({"experiment_name": experiment})
    with urllib.request.urlopen(f"{api}/experiments/get-by-name?{query}", timeout=30) as reply:
        experiment_id = json.load(reply)["experiment"]["experiment_id"]
    search = urllib.request.Request(
        f"{api}/runs/search", method="POST", headers={"Content-Type": "application/json"},
        data=json.dumps({"experiment_ids": [experiment_id]}).encode(),
    )  # fmt: skip
    with urllib.request.urlopen(search, timeout=30) as reply:
        runs = [run["info"]["run_id"] for run in json.load(reply)["runs"]]
    return f"{mlflow}/#/compare-runs?" + urllib.parse.urlencode(
        {"runs": json.dumps(runs), "experiments": json.dumps([experiment_id])}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--work", type=Path, help="where to train (default: a temp dir)")
    parser.add_argument("--reuse", action="store_true", help="the runs already in --work")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="rltrain-shots-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.reuse:
        board, store = work / "board", f"sqlite:///{work / 'mlflow.db'}"
    else:
        board, store = train(work)

    # one TensorBoard on every run, one on the sweep alone (its HParams table)
    tb_port, sweep_port, mlflow_port = free_port(), free_port(), free_port()
    commands = [
        [str(BIN / "rltrain"), "board", str(board), "--port", str(tb_port), "--host", "127.0.0.1"],
        [str(BIN / "rltrain"), "board", str(board / "ppo_sweep"), "--port", str(sweep_port),
         "--host", "127.0.0.1"],
        [str(BIN / "mlflow"), "ui", "--backend-store-uri", store, "--port", str(mlflow_port),
         "--host", "127.0.0.1"],
    ]  # fmt: skip
    servers = [subprocess.Popen(command, cwd=work) for command in commands]
    try:
        tb, mlflow = f"http://127.0.0.1:{tb_port}", f"http://127.0.0.1:{mlflow_port}"
        sweep = f"http://127.0.0.1:{sweep_port}"
        wait_for(f"{tb}/data/runs")
        wait_for(f"{sweep}/data/runs")
        wait_for(mlflow)
        photograph([
            Page(f"{tb}/#custom_scalars", args.out / "tensorboard_custom_scalars.png",
                 "Q, V and A (means)", runs="algo.lr=0.001,seed=0", expand=True),
            Page(f"{tb}/#images", args.out / "tensorboard_images.png", "values/v_heatmap",
                 runs="gridworld", height=1250),
            Page(f"{sweep}/#hparams", args.out / "tensorboard_hparams.png", "algo.lr", width=1800),
            Page(compare_url(mlflow, "ppo_cartpole_sweep"), args.out / "mlflow_ui.png",
                 "final/eval_return_mean", close=True, width=1600),
        ])  # fmt: skip
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
