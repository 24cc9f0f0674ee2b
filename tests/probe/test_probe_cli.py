"""``wslab probe URL --trace T --json``: the user's messages replayed, the simulator beside
them, and have against recommended, on a websockets server whose config the test hides.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from probe.probe_support import python_stack

from wslab.cli import run
from wslab.config import TuningConfig
from wslab.tune.sweep import memory_estimate_kib, run_sweep

HIDDEN = {"deflate": {"server_max_window_bits": 10, "client_max_window_bits": 12},
          "max_size": 50_000, "ping_interval": None, "ping_timeout": None}
MESSAGES = 60


@pytest.fixture(scope="module")
def cli_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("probe-cli")
    trace = tmp / "chat.jsonl"
    assert run(["trace", "generate", "chat", "-n", "600", "--seed", "5", "-o", str(trace)]) == 0
    with python_stack("websockets", HIDDEN) as port:
        code = run(["probe", f"ws://127.0.0.1:{port}/", "--trace", str(trace), "--messages",
                    str(MESSAGES), "--timeout", "2", "--idle-wait", "0.5", "--size-cap",
                    "200000", "--json", "-o", str(tmp / "report.json")])
    assert code == 0
    report = json.loads((tmp / "report.json").read_text())
    report["_files"] = {"dir": str(tmp), "trace": str(trace)}
    yield report


def test_trace_replay_beside_the_simulator(cli_report: dict[str, Any]) -> None:
    trace = cli_report["behaviour"]["trace"]
    assert trace["observed"] and trace["messages"] == MESSAGES
    assert trace["not_echoed"] == 0
    lat = trace["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
    # The server compresses with zlib's defaults (the factory's own), which the prediction
    # assumes: the same window and context rules give the same bytes, give or take the
    # few frames a library flushes differently.
    assert trace["predicted"]["assumed"] == {"level": 6, "mem_level": 8}
    assert trace["compression_ratio"] == pytest.approx(
        trace["predicted"]["compression_ratio"], rel=0.02)
    assert trace["compression_ratio"] < 0.9


def test_have_against_recommended(cli_report: dict[str, Any]) -> None:
    advice = cli_report["advice"]
    assert advice["stack"] == "websockets" and advice["export_target"] == "websockets"
    diff = {row["field"]: row for row in advice["diff"]}
    bits = HIDDEN["deflate"]["server_max_window_bits"]
    assert diff["compression.server_max_window_bits"]["have"] == bits
    assert diff["compression.client_max_window_bits"]["have"] == \
        HIDDEN["deflate"]["client_max_window_bits"]
    assert diff["scaling.max_size"]["have"] == HIDDEN["max_size"]
    assert diff["scaling.heartbeat_interval_s"]["have"] is None  # no pings were sent
    rec = TuningConfig.model_validate(advice["recommended_config"])
    assert diff["compression.server_max_window_bits"]["recommended"] == \
        rec.compression.server_max_window_bits
    for row in advice["diff"]:
        assert row["differs"] == (row["have"] != row["recommended"])
        assert (f"-{row['field']}:" in advice["diff_text"]) == row["differs"]
    # Memory: zlib's formula for the window found and websockets' memLevel 5 (assumed).
    have = TuningConfig().updated({
        "compression.server_max_window_bits": bits, "compression.mem_level": 5,
        "compression.client_max_window_bits": HIDDEN["deflate"]["client_max_window_bits"]})
    assert advice["memory_kib_per_conn"]["have"] == pytest.approx(memory_estimate_kib(have))
    assert advice["memory_kib_per_conn"]["recommended"] == pytest.approx(
        memory_estimate_kib(rec))


def test_report_page_has_the_probe_section(cli_report: dict[str, Any]) -> None:
    tmp = Path(cli_report["_files"]["dir"])
    run_sweep(cli_report["_files"]["trace"], [{"compression.server_max_window_bits": b}
                                              for b in (9, 12)],
              tmp / "results.parquet", workers=1)
    page = tmp / "report.html"
    assert run(["report", str(tmp / "results.parquet"), "--probe", str(tmp / "report.json"),
                "-o", str(page)]) == 0
    text = html.unescape(page.read_text())
    assert f"Probe: {cli_report['target']}" in text
    assert "Probe: have vs recommended" in text and "Probe: config diff" in text
    assert "trace" in text and f"{MESSAGES} messages" in text
    bits = HIDDEN["deflate"]["server_max_window_bits"]
    assert f"<td>s_bits={bits}</td>" in text  # the matrix: the window the server answered
    assert "<td>scaling.max_size</td>" in text and f"<td>{HIDDEN['max_size']}</td>" in text
    bad = tmp / "not-a-report.json"
    bad.write_text("[1, 2]")
    assert run(["report", str(tmp / "results.parquet"), "--probe", str(bad),
                "-o", str(tmp / "x.html")]) == 2
