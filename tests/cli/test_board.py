"""`rltrain board` serves TensorBoard on the host and port it is given, and a SIGTERM to the PID
it started as leaves nothing serving (TensorBoard runs in place of it, not as its child)."""

from __future__ import annotations

import signal
import socket
import time
import urllib.request


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def test_board_serves_on_its_host_and_port_and_stops_on_sigterm(trained_run, start_cli, workdir):
    port = _free_port()
    board = start_cli(["board", str(trained_run.parent), "--port", str(port), "--host",
                       "127.0.0.1"], workdir)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not _serving(port):
            assert board.poll() is None, (workdir / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "TensorBoard did not answer within 120 s"
            time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=10) as reply:
            assert trained_run.name in reply.read().decode()  # it reads the runs it was given
        board.send_signal(signal.SIGTERM)
        board.wait(timeout=60)
    finally:
        if board.poll() is None:
            board.kill()
    assert not _serving(port)  # no TensorBoard left behind
    assert f"TensorBoard on http://localhost:{port}" in (workdir / "stdout.txt").read_text()
