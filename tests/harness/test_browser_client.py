"""A real browser as the client: ``wslab bench --client chromium`` against wslab's server.

Two configs are what the recommender chose for ``--clients browser`` from a sweep run here
(different server windows); a third is hand-picked among those a browser can be held to,
asking the browser for ``client_no_context_takeover``, with the server batching. Each runs
live with headless Chromium (``/usr/bin/chromium`` through Playwright) and is checked on the
wire (the tap's frame headers: RSV1 both ways), in the handshake (Chromium's offer, the
agreed parameters), for integrity, and against the simulator's bytes per direction. Expected
values come from the configs the tests chose, and from alternatives simulated here that a
wrong model would match instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
from services import program

from wslab.config import TuningConfig
from wslab.harness import lifeline
from wslab.harness.bench import BenchOptions, BenchResult, run_bench, scaled_trace
from wslab.harness.browser_model import agreed_configs, browser_prediction
from wslab.harness.browser_tap import MessageFrames, _with_label
from wslab.harness.frametally import COUNTERS, FrameTally
from wslab.link import get_profile
from wslab.sim import simulate
from wslab.traces.io import write_trace
from wslab.traces.model import Trace
from wslab.tune.clients import client_exclusions, holdable_config
from wslab.tune.recommend import recommend
from wslab.tune.sweep import run_sweep

DATA = Path(__file__).resolve().parents[2] / "data"
CHROMIUM_OFFER = "permessage-deflate; client_max_window_bits"
OPTIONS = BenchOptions(connections=2, duration=4.0, speed=10.0, drain_timeout=2.0,
                       client="chromium")
RUNS = ("recommended", "recommended-55k", "sensor-nct-hybrid")
"""Two configs ``wslab recommend --clients browser`` chose on the mixed trace (JSON text;
the second under a 55 KiB memory limit, so a smaller server window), and a hand-picked one
a browser can be held to (short binary client messages, the client's context reset, the
server batching in the length-prefixed envelope, which the page speaks both ways)."""
SUBPROTOCOLS = {"recommended": None, "recommended-55k": None,
                "sensor-nct-hybrid": "wslab.v1.length-prefixed"}
TRACES = {"recommended": "mixed", "recommended-55k": "mixed", "sensor-nct-hybrid": "sensor"}


def _recommended(tmp: Path) -> tuple[TuningConfig, TuningConfig]:
    """Sweep server and client windows, deflate and zstd, on the replayed slice of mixed,
    from a base that compresses at level 1 (Chromium compresses at 6, which the model of
    its side must be the one to catch); recommend for browsers."""
    trace = tmp / "mixed.jsonl"
    write_trace(scaled_trace(DATA / "mixed.jsonl.zst", OPTIONS.speed, OPTIONS.duration), trace)
    points = [{"compression.algorithm": a, "compression.server_max_window_bits": s,
               "compression.client_max_window_bits": c}
              for a in ("permessage-deflate", "zstd-stream") for s in (9, 10, 11)
              for c in (12, 15)]
    base = holdable_config(TuningConfig().updated({"compression.level": 1}), "browser")
    table = run_sweep(trace, points, tmp / "sweep.parquet", base=base, workers=1)
    return (recommend(table, clients="browser", trace=trace).config,
            recommend(table, clients="browser", trace=trace, max_kib_per_conn=55).config)


def _holdable(changes: dict[str, Any]) -> TuningConfig:
    config = holdable_config(TuningConfig().updated(changes), "browser")
    row = {f"{section}.{k}": v for section, fields in config.model_dump().items()
           if isinstance(fields, dict) for k, v in fields.items()}
    assert client_exclusions(pd.DataFrame([row]), "browser").tolist() == [""]
    return config


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[TuningConfig,
                                                                       BenchResult]]:
    program("chromium", "chromium")
    first, limited = _recommended(tmp_path_factory.mktemp("sweep"))
    for chosen in (first, limited):  # what a browser population gets: deflate, 15-bit
        assert chosen.compression.algorithm == "permessage-deflate"
        assert chosen.compression.client_max_window_bits == 15
    assert limited.compression.server_max_window_bits < first.compression.server_max_window_bits
    configs = {"recommended": first, "recommended-55k": limited,
               "sensor-nct-hybrid": _holdable({
                   "compression.server_max_window_bits": 13,
                   "compression.client_no_context_takeover": True,
                   "batching.strategy": "hybrid"})}
    return {name: (config, run_bench(DATA / f"{TRACES[name]}.jsonl.zst", config, OPTIONS))
            for name, config in configs.items()}


@pytest.mark.parametrize("name", RUNS)
def test_the_browser_negotiates_what_the_server_was_configured_with(
        runs: dict[str, tuple[TuningConfig, BenchResult]], name: str) -> None:
    config, result = runs[name]
    s = result.summary
    assert s["client"] == "chromium" and s["browser"].startswith("Chromium ")
    assert s["offered"] == CHROMIUM_OFFER  # what Chromium puts in its request
    agreed = [p.strip() for p in s["negotiated"].split(";")]
    bits = config.compression.server_max_window_bits
    assert agreed[0] == "permessage-deflate"
    assert f"server_max_window_bits={bits}" in agreed
    assert not any(p.startswith("client_max_window_bits") for p in agreed)  # 15: absent
    assert ("client_no_context_takeover" in agreed) == \
        config.compression.client_no_context_takeover
    assert s["page_extensions"] == s["negotiated"]  # what the page's WebSocket reports
    assert s["subprotocol"] == SUBPROTOCOLS[name]


@pytest.mark.parametrize("name", RUNS)
def test_frames_are_compressed_both_ways_and_nothing_is_lost(
        runs: dict[str, tuple[TuningConfig, BenchResult]], name: str) -> None:
    _, result = runs[name]
    s, conns = result.summary, result.connections
    assert (s["lost"], s["duplicated"], s["reordered"]) == (0, 0, 0)
    assert s["connection_errors"] == 0 and len(conns) == 2
    assert s["messages"] == s["predicted"]["messages"]
    for _, row in conns.iterrows():
        # Chromium compresses every message it sends; the server (policy always) too.
        assert row["out_data_frames"] == row["out_compressed_frames"] > 20
        assert row["in_data_frames"] == row["in_compressed_frames"] > 10
        assert row["messages_received"] == s["by_dir"]["s2c"]["messages"] / 2


@pytest.mark.parametrize("name", RUNS)
def test_bytes_each_way_match_the_simulator_within_one_percent(
        runs: dict[str, tuple[TuningConfig, BenchResult]], name: str) -> None:
    _, result = runs[name]
    s, p = result.summary, result.summary["predicted"]
    for direction in ("s2c", "c2s"):
        measured = s["by_dir"][direction]["compressed_bytes"]
        assert measured == pytest.approx(p["by_dir"][direction]["compressed_bytes"], rel=0.01)
    assert s["ws_bytes"] == pytest.approx(p["ws_bytes"], rel=0.01)
    assert s["frames"] == pytest.approx(p["frames"], rel=0.01)  # the server's batches too


def _predicted(trace: str, config: TuningConfig, agreed: str,
               envelope: str | None = None) -> dict[str, Any]:
    sim = browser_prediction(scaled_trace(DATA / f"{trace}.jsonl.zst", OPTIONS.speed,
                                          OPTIONS.duration),
                             config, agreed, link=get_profile("loopback"), envelope=envelope)
    return {d: sim.summary["by_dir"][d]["compressed_bytes"] * OPTIONS.connections
            for d in ("s2c", "c2s")}


def test_the_configured_server_window_is_the_one_used(
        runs: dict[str, tuple[TuningConfig, BenchResult]]) -> None:
    # Had the server compressed with a 15-bit window, its bytes would differ by more than
    # the 1 % the measured ones stay within.
    config, result = runs["recommended-55k"]
    wide = _predicted("mixed", config, "permessage-deflate")
    measured = result.summary["by_dir"]["s2c"]["compressed_bytes"]
    assert abs(measured - wide["s2c"]) > 0.1 * measured


def test_the_model_of_chromiums_compressor_is_the_one_that_fits(
        runs: dict[str, tuple[TuningConfig, BenchResult]]) -> None:
    # Browser side compressed like the server (its level 1, as the simulator would for a
    # custom client): far from what Chromium sent at its level 6.
    config, result = runs["recommended"]
    server_cfg, _ = agreed_configs(config, result.summary["negotiated"])
    trace = scaled_trace(DATA / "mixed.jsonl.zst", OPTIONS.speed, OPTIONS.duration)
    up = Trace([m for m in trace.messages if m.dir == "c2s"])
    like_server = simulate(up, server_cfg).summary["compressed_bytes"] * OPTIONS.connections
    measured = result.summary["by_dir"]["c2s"]["compressed_bytes"]
    assert abs(measured - like_server) > 0.05 * measured
    # Browser side compressed as if its context were kept (ignoring the agreed
    # client_no_context_takeover): far from what Chromium sent.
    config, result = runs["sensor-nct-hybrid"]
    kept = _predicted("sensor", config, "permessage-deflate; server_max_window_bits=13",
                      "length-prefixed")
    by_dir = result.summary["by_dir"]["c2s"]
    measured = by_dir["compressed_bytes"]
    assert abs(measured - kept["c2s"]) > 0.05 * measured
    # Short binary messages from an empty window grow, and Chromium sends them compressed
    # all the same (its predictor always answers "deflate"): so does its model.
    assert measured > by_dir["payload_bytes"]
    assert result.summary["frames_plain"] == 0


def test_the_page_kept_its_schedule_and_its_clock(
        runs: dict[str, tuple[TuningConfig, BenchResult]]) -> None:
    s = runs["recommended"][1].summary
    assert s["cross_origin_isolated"] is True
    assert s["page_clock"]["outside_ms"] <= 0.2  # page stamps inside our brackets
    assert 0 <= s["schedule_late_ms"]["p50"] < 5
    assert 0 < s["latency_ms"]["p50"] < 50  # loopback, through a browser
    # Causality: on the one clock the page's stamps were mapped onto, nothing arrives
    # before it left, either way (a clock off by more than the fastest hop would).
    messages = runs["recommended"][1].messages
    for direction in ("s2c", "c2s"):
        assert messages.loc[messages["dir"] == direction, "latency_ms"].min() > 0


def test_what_a_browser_changes_is_said_before_anything_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wslab.cli import run

    config = tmp_path / "zstd.yaml"
    config.write_text("compression: {algorithm: zstd-stream}\n")
    assert run(["bench", str(DATA / "chat.jsonl.zst"), "--client", "chromium",
                "--config", str(config), "--chromium", str(tmp_path / "none")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert "Chromium cannot speak x-wslab-zstd (zstd-stream)" in lines[0]
    assert "no Chromium at" in lines[-1] and "install playwright and chromium" in lines[-1]
    assert not any("starting server" in line or "Traceback" in line for line in lines)


def _start_bench() -> tuple[subprocess.Popen[bytes], list[psutil.Process]]:
    """``wslab bench --client chromium`` on a long trace, once Chromium runs under it."""
    bench = lifeline.popen([sys.executable, "-m", "wslab", "bench",
                            str(DATA / "game.jsonl.zst"), "--client", "chromium",
                            "--duration", "60"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           start_new_session=True)
    family: list[psutil.Process] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        family = psutil.Process(bench.pid).children(recursive=True)
        if sum("chromium" in _name(p) for p in family) >= 2:  # browser and its children
            return bench, family
        time.sleep(0.2)
    bench.kill()
    raise AssertionError("Chromium never started under wslab bench")


def _all_gone(family: list[psutil.Process]) -> list[str]:
    _gone, alive = psutil.wait_procs(family, timeout=10)
    return [_name(p) for p in alive if _status(p) != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("victim", ["wslab", "driver"])
def test_the_browser_dies_with_wslab_however_it_is_stopped(victim: str) -> None:
    # SIGKILL of wslab bench itself, or of Playwright's driver under it (the browser's
    # parent): no Chromium process outlives it.
    program("chromium", "chromium")
    bench, family = _start_bench()
    try:
        if victim == "wslab":
            os.kill(bench.pid, signal.SIGKILL)
        else:
            driver = next(p for p in family if _name(p).startswith("node"))
            driver.kill()
        assert _all_gone([p for p in family if "chromium" in _name(p)]) == []
        if victim == "driver":  # the bench saw its client fail and says so in one line
            assert bench.wait(30) == 2
            assert bench.stderr is not None
            assert "the browser client failed" in bench.stderr.read().decode()
    finally:
        if bench.poll() is None:
            bench.kill()
        bench.wait(5)
        _all_gone(family)


def _status(proc: psutil.Process) -> str:
    try:
        return str(proc.status())
    except psutil.Error:
        return psutil.STATUS_ZOMBIE  # gone (and reaped) since the wait


def _name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return ""


def test_the_taps_frame_reader_agrees_with_frametally_on_any_chunking() -> None:
    def frame(op: int, size: int, rsv1: bool = False, fin: bool = True) -> bytes:
        b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
        code = size if size < 126 else 126 if size < 65536 else 127
        ext = b"" if size < 126 else size.to_bytes(2 if size < 65536 else 8, "big")
        return bytes([b0, 0x80 | code]) + ext + b"mask" + bytes(size)

    stream = (frame(1, 5, True) + frame(9, 4) + frame(2, 300, True, fin=False)
              + frame(0, 70_000) + frame(1, 126) + frame(1, 0, True))
    for chunk in (1, 3, 13, 4096, len(stream)):
        mine, tally = MessageFrames(), FrameTally()
        for i in range(0, len(stream), chunk):
            mine.feed(stream[i:i + chunk])
            tally.feed(stream[i:i + chunk])
        assert [getattr(mine, c) for c in COUNTERS] == [getattr(tally, c) for c in COUNTERS]
        assert list(mine.message_bytes) == [5, 70_300, 126, 0]
        assert list(mine.message_rsv1) == [1, 1, 0, 1]


def test_the_tap_labels_the_request_and_drops_its_own_query() -> None:
    head = (b"GET /?wslab-client=b-1 HTTP/1.1\r\nHost: x\r\nX-Wslab-Client: spoof\r\n"
            b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
    out = _with_label(head, "/", "b-1").decode()
    assert out.startswith("GET / HTTP/1.1\r\n") and out.endswith("\r\n\r\n")
    assert "X-Wslab-Client: b-1\r\n" in out and "spoof" not in out
    assert "Sec-WebSocket-Extensions: permessage-deflate\r\n" in out
