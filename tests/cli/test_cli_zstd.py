"""zstd-dict from the command line: export trains and ships the set; serve and load use it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wslab.cli import run
from wslab.codecs.zstd_dict import DictionarySet
from wslab.sim.dictionaries import dictionary_plan
from wslab.traces.io import read_trace, write_trace

DATA = Path(__file__).resolve().parents[2] / "data"


def test_export_trains_the_set_the_simulator_measured(tmp_path: Path) -> None:
    config = tmp_path / "zd.yaml"
    config.write_text("compression: {algorithm: zstd-dict}\n")
    trace = DATA / "chat.jsonl.zst"
    code = run(["export", str(config), "--target", "websockets", "-o", str(tmp_path / "x"),
                "--trace", str(trace)])
    assert code == 0
    shipped = DictionarySet.load(tmp_path / "x" / "dictionaries.json")
    from wslab.config import TuningConfig

    want = dictionary_plan(read_trace(trace), TuningConfig.load(config).compression)
    assert shipped.id == want.dictionaries.id
    assert shipped.id in (tmp_path / "x" / "server.py").read_text() + \
        (tmp_path / "x" / "zstd_extension.py").read_text() + shipped.to_json()


def test_export_refuses_both_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "zd.yaml"
    config.write_text("compression: {algorithm: zstd-dict}\n")
    code = run(["export", str(config), "-o", str(tmp_path / "x"), "--trace", "a.jsonl",
                "--dictionaries", "d.json"])
    assert code == 2
    assert "not both" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_serve_and_load_speak_zstd_dict_with_a_shipped_set(tmp_path: Path) -> None:
    config = tmp_path / "zd.yaml"
    config.write_text("compression: {algorithm: zstd-dict}\nscaling: {heartbeat_interval_s: 5}\n")
    trace = read_trace(DATA / "chat.jsonl.zst")[:400]
    small = tmp_path / "chat.jsonl"
    write_trace(trace, small)
    assert run(["export", str(config), "--target", "websockets", "-o", str(tmp_path / "x"),
                "--trace", str(small)]) == 0
    dictionaries = tmp_path / "x" / "dictionaries.json"
    exe = [sys.executable, "-m", "wslab.cli"]
    server = subprocess.Popen([*exe, "serve", "-c", str(config), "--port", "0",
                               "--dictionaries", str(dictionaries)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = line.split(" on ", 1)[1].split()[0]
        done = subprocess.run([*exe, "load", url, "--trace", str(small), "-c", str(config),
                               "--dictionaries", str(dictionaries), "--speed", "200",
                               "--json"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["negotiated"].startswith("x-wslab-zstd; mode=message; dict=")
        assert DictionarySet.load(dictionaries).id in summary["negotiated"]
        assert summary["lost"] == 0 and summary["messages_received"] == summary["messages_sent"]
    finally:
        server.terminate()
        server.wait(10)

