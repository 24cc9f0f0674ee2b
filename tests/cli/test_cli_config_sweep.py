"""The command line: config, simulate and sweep, including one-line errors and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from wslab.cli import run
from wslab.config import TuningConfig
from wslab.traces.io import write_trace
from wslab.traces.model import Message, Trace


@pytest.fixture()
def small_trace(tmp_path: Path) -> Path:
    msgs = [
        Message(i * 0.004, "s2c" if i % 3 else "c2s", f"t{i % 2}",
                ("critical", "normal", "background")[i % 3],
                json.dumps({"type": f"t{i % 2}", "n": i, "text": "hello " * (i % 7)}).encode(),
                True)
        for i in range(300)
    ]
    path = tmp_path / "small.jsonl"
    write_trace(Trace(msgs), path)
    return path


def test_config_default_and_schema(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(["config", "default"]) == 0
    assert TuningConfig.from_dict(yaml.safe_load(capsys.readouterr().out)) == TuningConfig()
    assert run(["config", "schema"]) == 0
    assert "batching" in json.loads(capsys.readouterr().out)["properties"]
    target = tmp_path / "c.yaml"
    assert run(["config", "default", "-o", str(target)]) == 0
    assert TuningConfig.load(target) == TuningConfig()


def test_config_check_reports_field_in_one_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("compression:\n  server_max_window_bits: 16\n")
    assert run(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "compression.server_max_window_bits" in err
    assert "Traceback" not in err


def test_simulate_json_has_the_contract_keys(small_trace: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    TuningConfig().updated({"batching.strategy": "hybrid",
                            "compression.algorithm": "none"}).save(cfg)
    assert run(["simulate", str(small_trace), "--config", str(cfg), "--link", "4g",
                "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    for key in ("messages", "frames", "payload_bytes", "compressed_bytes", "ws_bytes",
                "tcp_bytes", "tcp_segments", "compression_ratio", "cpu_us_per_msg",
                "latency_ms", "lost", "duplicated", "reordered", "by_dir"):
        assert key in s
    assert set(s["latency_ms"]) == {"p50", "p90", "p95", "p99", "max"}
    assert s["messages"] == 300
    assert s["frames"] < 300
    assert s["by_dir"]["s2c"]["messages"] + s["by_dir"]["c2s"]["messages"] == 300
    assert (s["lost"], s["duplicated"], s["reordered"]) == (0, 0, 0)


def test_simulate_unknown_link_lists_known(small_trace: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["simulate", str(small_trace), "--link", "carrier-pigeon"]) == 2
    err = capsys.readouterr().err
    assert "slow-3g" in err and "Traceback" not in err


def test_sweep_grid_writes_one_row_per_distinct_config_and_resumes(
    small_trace: Path, tmp_path: Path
) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({
        "batching.strategy": ["none", "hybrid"],
        "batching.interval_ms": {"range": [0, 20, 10]},
        "compression.algorithm": ["none"],
    }))
    out = tmp_path / "results.parquet"
    assert run(["sweep", str(small_trace), "--space", str(space), "-o", str(out),
                "--workers", "1"]) == 0
    table = pd.read_parquet(out)
    # 6 requested points; without batching the interval cannot matter: 1 + 3 configs.
    assert len(table) == 4
    unbatched = table[table["batching.strategy"] == "none"]
    assert len(unbatched) == 1 and int(unbatched["requested_count"].iloc[0]) == 3
    assert {q["batching.interval_ms"] for q in json.loads(unbatched["requested"].iloc[0])} == {
        0, 10, 20}
    assert {"batching.strategy", "compression.level", "ws_bytes", "latency_p99_ms",
            "mem_kib_per_conn"} <= set(table.columns)
    hybrid = table[table["batching.strategy"] == "hybrid"].sort_values("batching.interval_ms")
    assert hybrid["frames"].is_monotonic_decreasing
    assert not list(tmp_path.glob("*.partial.jsonl"))
    # Resume: a partial file with one finished point is reused, not recomputed.
    partial = out.with_name(out.name + ".partial.jsonl")
    row = table.iloc[0].to_dict()
    row["frames"] = -12345  # a marker only a reused row can carry
    partial.write_text(json.dumps(row, default=str) + "\n")
    out2 = tmp_path / "results.csv"
    partial.rename(out2.with_name(out2.name + ".partial.jsonl"))
    assert run(["sweep", str(small_trace), "--space", str(space), "-o", str(out2),
                "--workers", "1"]) == 0
    again = pd.read_csv(out2)
    assert len(again) == 4
    assert (again["frames"] == -12345).sum() == 1


def test_sweep_clients_sets_the_client_window_browsers_use(
    small_trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"compression.server_max_window_bits": [10, 12]}))
    windows = {}
    for clients in ("browser", "custom"):
        out = tmp_path / f"{clients}.parquet"
        assert run(["sweep", str(small_trace), "--space", str(space), "-o", str(out),
                    "--workers", "1", "--clients", clients]) == 0
        windows[clients] = set(pd.read_parquet(out)["compression.client_max_window_bits"])
        err = capsys.readouterr().err
        assert ("client_max_window_bits 12 -> 15" in err) == (clients == "browser")
    assert windows == {"browser": {15}, "custom": {TuningConfig().compression
                                                   .client_max_window_bits}}
    assert run(["sweep", str(small_trace), "--space", str(space), "-o",
                str(tmp_path / "x.parquet"), "--clients", "robots"]) == 2
    assert "unknown clients 'robots'" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.parametrize(
    ("space", "words"),
    [
        ({"batching.colour": [1]}, "unknown config field"),
        ({"batching.interval_ms": []}, "empty list"),
        ({"batching.interval_ms": {"range": [10, 0]}}, "empty range"),
        ({"compression.level": [42]}, "compression.level=42 is not allowed"),
    ],
)
def test_sweep_bad_space_is_one_line_and_writes_nothing(
    small_trace: Path, tmp_path: Path, space: dict[str, object], words: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    out = tmp_path / "r.parquet"
    assert run(["sweep", str(small_trace), "--space", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not out.exists()


def test_lab_command_binds_loopback_and_keeps_the_token() -> None:
    from wslab.cli.lab_cmd import lab_command

    cmd = lab_command()
    assert "--ServerApp.ip=127.0.0.1" in cmd
    assert not any("token" in part.lower() for part in cmd)  # the token stays on
    app = lab_command(app=True, notebook="02_frame_batching")
    assert "--Voila.ip=127.0.0.1" in app
    assert any(part.endswith("02_frame_batching.ipynb") for part in app)
    assert lab_command(app=True, notebook="02") == app  # a notebook's number will do
    from wslab.errors import WslabError

    with pytest.raises(WslabError, match="00_tour"):
        lab_command(app=True, notebook="nope")
