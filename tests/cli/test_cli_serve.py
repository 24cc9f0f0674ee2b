"""``wslab serve --processing``: inbound messages handled by type, batched or one by one.

A real ``wslab serve`` process (echo, with the trace that names the message types) takes
the trace's messages from a real ``wslab load``; its ``/metrics`` show the processing queue
at work, and on Ctrl-C it says how many messages it handled in how many handler calls.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from wslab.cli import run
from wslab.traces.io import write_trace
from wslab.traces.model import Message, Trace

EXE = [sys.executable, "-m", "wslab.cli"]
N = 60


def _metrics(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {k: float(v) for k, v in (ln.rsplit(" ", 1) for ln in text.splitlines()
                                     if ln and not ln.startswith("#"))}


@pytest.mark.parametrize("mode", ["batched", "per-message"])
def test_serve_processes_what_clients_send(tmp_path: Path, mode: str) -> None:
    trace = tmp_path / "in.jsonl"
    write_trace(Trace([Message(i * 0.001, "c2s", "quote" if i % 2 else "order", "normal",
                               json.dumps({"i": i, "qty": i % 5}).encode(), True)
                       for i in range(N)]), trace)
    server = subprocess.Popen([*EXE, "serve", "--port", "0", "--trace", str(trace),
                               "--processing", mode, "--batch-linger-ms", "300"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = line.split(" on ", 1)[1].split()[0]
        metrics = f"http://{url.removeprefix('ws://').rstrip('/')}/metrics"
        before = _metrics(metrics)
        done = subprocess.run([*EXE, "load", url, "--trace", str(trace), "--speed", "20",
                               "--json"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["messages_received"] == N
        deadline = time.monotonic() + 10
        while (after := _metrics(metrics))["wslab_processing_items"] < N:
            assert time.monotonic() < deadline, after
            time.sleep(0.05)
        server.send_signal(signal.SIGINT)
        out, _err = server.communicate(timeout=15)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert before["wslab_processing_items"] == 0
    calls = after["wslab_processing_batches"]
    if mode == "per-message":
        assert calls == N
    else:  # both types' messages arrive within the linger: a few calls per type at most
        assert 2 <= calls <= N / 5
    assert after["wslab_processing_handler_s"] > 0 and after["wslab_processing_waiting"] == 0
    assert f"processed {N} messages ({mode}) in {calls:.0f} handler calls" in out


def test_serve_refuses_an_unknown_processing_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["serve", "--processing", "sometimes"]) == 2
    assert "--processing 'sometimes'" in capsys.readouterr().err
