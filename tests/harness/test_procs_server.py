"""The ``server`` role of ``procs.py`` keeps a row per message only when it will write them."""

from __future__ import annotations

import argparse
from pathlib import Path

from wslab.config import TuningConfig
from wslab.harness.procs import build_server


def _args(tmp_path: Path, log_dir: str | None) -> argparse.Namespace:
    config = tmp_path / "config.yaml"
    TuningConfig().save(config)
    return argparse.Namespace(config=str(config), trace=None, scenario="echo", speed=1.0,
                              host="127.0.0.1", port=0, expect_clients=1, rooms=4,
                              dictionaries=None, log_dir=log_dir)


def test_a_server_without_a_log_directory_keeps_counts_not_rows(tmp_path: Path) -> None:
    # a benchmark's echo server runs for minutes: rows nobody reads would grow all along
    server = build_server(_args(tmp_path, None))
    assert not server.recorder.keeps_frames
    server.recorder.on_received("c", "c2s", 0.0, b"hello", 0)
    assert server.recorder.received == []  # counted, not kept


def test_a_server_with_a_log_directory_keeps_every_row(tmp_path: Path) -> None:
    server = build_server(_args(tmp_path, str(tmp_path / "logs")))
    assert server.recorder.keeps_frames
    server.recorder.on_received("c", "c2s", 0.0, b"hello", 0)
    assert len(server.recorder.received) == 1
