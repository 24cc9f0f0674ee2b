"""Live runs agree with the simulator: bytes and frames to 1 %, shaped latency to 25 %."""

from __future__ import annotations

from pathlib import Path

import pytest
from mixed_blobs import BLOB_TYPES, blob_trace

from wslab.cli import run
from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness.bench import BenchOptions, run_bench
from wslab.traces.io import write_trace
from wslab.traces.model import Trace

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.parametrize(
    "changes",
    [
        {"batching.strategy": "none"},
        {"batching.strategy": "hybrid", "batching.interval_ms": 10},
        {"batching.strategy": "priority", "compression.server_no_context_takeover": True},
        {"batching.strategy": "none", "compression.policy": "adaptive"},
    ],
    ids=["plain", "hybrid", "priority-nct", "adaptive"],
)
def test_frames_and_ws_bytes_match_the_simulator(changes: dict[str, object]) -> None:
    config = TuningConfig().updated(changes)
    result = run_bench(DATA / "mixed.jsonl.zst", config,
                       BenchOptions(connections=2, duration=4.0, speed=25.0, drain_timeout=2.0))
    s, p = result.summary, result.summary["predicted"]
    assert (s["lost"], s["duplicated"], s["reordered"]) == (0, 0, 0)
    assert s["messages"] > 200 and s["messages"] % 2 == 0  # both connections replay it all
    assert s["frames"] == pytest.approx(p["frames"], rel=0.01)
    assert s["ws_bytes"] == pytest.approx(p["ws_bytes"], rel=0.01)
    assert s["compressed_bytes"] == pytest.approx(p["compressed_bytes"], rel=0.01)
    assert s["negotiated"].startswith("permessage-deflate")
    assert (s["subprotocol"] is None) == (changes["batching.strategy"] == "none")
    assert s["connection_errors"] == 0


def test_shaped_latency_matches_the_simulator(tmp_path: Path) -> None:
    link = tmp_path / "ten.yaml"
    link.write_text("name: ten\ndown_kbps: 10000\nup_kbps: 10000\nrtt_ms: 40\n")
    result = run_bench(DATA / "chat.jsonl.zst", TuningConfig(),
                       BenchOptions(link=str(link), connections=1, duration=5.0, speed=20.0,
                                    drain_timeout=2.0))
    s = result.summary
    measured, predicted = s["latency_ms"]["p50"], s["predicted"]["latency_ms"]["p50"]
    assert predicted > 20  # the link's one-way delay is in it
    assert measured == pytest.approx(predicted, rel=0.25)
    assert s["link"] == "ten"


def test_adaptive_takes_the_simulators_decisions_live(tmp_path: Path) -> None:
    path = tmp_path / "blobs.jsonl"
    write_trace(blob_trace(4.0), path)
    runs = {}
    for policy in ("adaptive", "always"):
        config = TuningConfig().updated({"compression.policy": policy})
        runs[policy] = run_bench(path, config, BenchOptions(
            connections=1, duration=None, speed=2.0, drain_timeout=2.0)).summary
    s, p = runs["adaptive"], runs["adaptive"]["predicted"]
    assert (s["lost"], s["duplicated"], s["reordered"]) == (0, 0, 0)
    assert s["messages"] == p["messages"]
    # Frame by frame, live compressed exactly what the simulator compressed.
    assert s["decisions"]["compared"] == s["frames"] == p["frames"]
    assert s["decisions"]["differ"] == 0
    assert s["frames_plain"] > 0
    assert set(s["plain_by_key"]) == set(BLOB_TYPES) == set(p["plain_by_key"])
    assert s["frames_compressed"] == pytest.approx(p["frames_compressed"], rel=0.005)
    assert s["compressed_bytes"] == pytest.approx(p["compressed_bytes"], rel=0.005)
    always = runs["always"]
    assert always["frames_plain"] == 0
    assert s["compressed_bytes"] < always["compressed_bytes"]
    assert s["cpu_us_per_msg"] < always["cpu_us_per_msg"]


def test_measured_and_predicted_cover_the_same_messages(tmp_path: Path) -> None:
    # A trace with no client messages: the client must not send the server's side too.
    only_down = Trace([m for m in blob_trace(2.0) if m.dir == "s2c"])
    path = tmp_path / "down.jsonl"
    write_trace(only_down, path)
    result = run_bench(path, TuningConfig(),
                       BenchOptions(connections=2, duration=60.0, speed=2.0, drain_timeout=2.0))
    s = result.summary
    assert s["messages"] == s["predicted"]["messages"] == 2 * len(only_down)
    assert s["by_dir"]["c2s"]["messages"] == 0


@pytest.mark.parametrize("algorithm", ["zstd-stream", "zstd-dict"])
@pytest.mark.parametrize("trace", ["chat", "market"])
def test_zstd_live_agrees_with_its_prediction(algorithm: str, trace: str) -> None:
    config = TuningConfig().updated({"compression.algorithm": algorithm})
    result = run_bench(DATA / f"{trace}.jsonl.zst", config,
                       BenchOptions(connections=2, duration=3.0, speed=60.0, drain_timeout=2.0))
    s, p = result.summary, result.summary["predicted"]
    assert (s["lost"], s["duplicated"], s["reordered"]) == (0, 0, 0)
    assert s["negotiated"].startswith("x-wslab-zstd")
    assert ("dict=" in s["negotiated"]) == (algorithm == "zstd-dict")
    assert s["messages"] == p["messages"] > 100
    assert s["compressed_bytes"] == pytest.approx(p["compressed_bytes"], rel=0.01)
    assert s["ws_bytes"] == pytest.approx(p["ws_bytes"], rel=0.01)
    assert s["compressed_bytes"] < s["payload_bytes"]
    if algorithm == "zstd-dict":  # the training prefix is replayed by neither side
        assert any("trained on the first" in n for n in s["notes"])


@pytest.mark.parametrize(("fields", "named"), [
    ({"connections": 0}, "connections must be at least 1"),
    ({"speed": 0.0}, "speed must be a finite number above 0"),
    ({"speed": float("inf")}, "speed must be a finite number above 0"),
    ({"duration": -1.0}, "duration must be above 0"),
    ({"drain_timeout": float("nan")}, "drain_timeout must be 0 or more"),
])
def test_bench_options_refuse_what_cannot_run(fields: dict[str, float], named: str) -> None:
    with pytest.raises(WslabError, match=named):
        BenchOptions(**fields)  # type: ignore[arg-type]


def test_bench_options_default_to_the_command_lines_run() -> None:
    assert BenchOptions() == BenchOptions(link=None, connections=1, duration=None, speed=1.0,
                                          seed=0, drain_timeout=5.0)


def test_wslab_bench_says_which_option_is_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    # Checked before any process starts: one line and exit 2, no ZeroDivisionError.
    assert run(["bench", str(DATA / "chat.jsonl.zst"), "--speed", "0"]) == 2
    err = capsys.readouterr().err
    assert "speed must be a finite number above 0, got 0.0" in err
    assert "Traceback" not in err
