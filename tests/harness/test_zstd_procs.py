"""``python -m wslab.harness.procs`` with ``--dictionaries``: zstd-dict across processes.

The server and client roles run as real processes on loopback, each loading the same
DictionarySet file; a missing or damaged file is one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from wslab.codecs.zstd_dict import DictionarySet, train_dictionary_set
from wslab.config import TuningConfig
from wslab.traces.io import write_trace
from wslab.traces.model import Message, Trace

pytestmark = pytest.mark.timeout(120)
PROCS = [sys.executable, "-m", "wslab.harness.procs"]


def setup_files(tmp: Path) -> tuple[Path, Path, Path, DictionarySet]:
    msgs = [Message(i * 0.002, "c2s", "chat", "normal",
                    json.dumps({"type": "chat", "i": i, "text": "hello " * (i % 9)}).encode(),
                    True) for i in range(60)]
    trace_path = tmp / "t.jsonl"
    write_trace(Trace(msgs), trace_path)
    dset = train_dictionary_set({"chat": [m.payload for m in msgs]}, 1024)
    dict_path = tmp / "dictionaries.json"
    dset.save(dict_path)
    config_path = tmp / "c.yaml"
    TuningConfig().updated({"compression.algorithm": "zstd-dict"}).save(config_path)
    return trace_path, dict_path, config_path, dset


def test_server_and_client_processes_agree_on_the_dictionary_set(tmp_path: Path) -> None:
    trace_path, dict_path, config_path, dset = setup_files(tmp_path)
    server = subprocess.Popen([*PROCS, "server", "--config", str(config_path), "--scenario",
                               "echo", "--dictionaries", str(dict_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        client = subprocess.run(
            [*PROCS, "client", "--url", f"ws://127.0.0.1:{port}/", "--config",
             str(config_path), "--trace", str(trace_path), "--speed", "8",
             "--drain-timeout", "1", "--dictionaries", str(dict_path),
             "--log-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=60, check=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
    summary = json.loads(client.stdout.splitlines()[-1])
    assert summary["errors"] == 0
    assert summary["messages_sent"] == summary["messages_received"] == 60
    import pandas as pd

    rows = pd.read_parquet(tmp_path / "client-connections.parquet")
    assert rows["extensions"].iloc[0].startswith(f"x-wslab-zstd; mode=message; dict={dset.id}")


@pytest.mark.parametrize("role", ["server", "client"])
def test_a_bad_dictionary_file_is_one_line_and_exit_2(tmp_path: Path, role: str) -> None:
    _, dict_path, config_path, _ = setup_files(tmp_path)
    dict_path.write_text(dict_path.read_text().replace('"id": "', '"id": "0'))
    args = ["--config", str(config_path), "--dictionaries", str(dict_path)]
    args += ["--url", "ws://127.0.0.1:9/"] if role == "client" else ["--scenario", "echo"]
    done = subprocess.run([*PROCS, role, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "does not match its id" in done.stderr and "Traceback" not in done.stderr
    missing = subprocess.run([*PROCS, role, *args[:2], *args[4:]], capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 2 and "dictionary set" in missing.stderr
