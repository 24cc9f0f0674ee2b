"""The client constraint: what browsers cannot negotiate is left out, and what it would save.

Hand-made results tables whose zstd and small-client-window rows would win; every expected
saving is computed here from the table's own figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from wslab.cli import run
from wslab.cli.recommend_cmd import recommend as recommend_cmd
from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.tables import write_table
from wslab.tune.clients import (
    BROWSER_WINDOW_BITS,
    browser_send_caveat,
    client_exclusions,
    holdable_config,
)
from wslab.tune.recommend import recommend
from wslab.tune.sweep import flatten

BROWSER_DEFLATE = {"compression.client_max_window_bits": 15}


def row(name: str, changes: dict[str, Any], b: float, p99: float = 20.0, cpu: float = 3.0,
        mem: float = 40.0, **extra: Any) -> dict[str, Any]:
    config = TuningConfig().updated({"link.profile": "4g", **changes})
    out = {"point": name, "mode": "sim", **flatten(config.to_dict()), "messages": 1000,
           "ws_bytes_per_msg": b, "tcp_bytes_per_msg": b + 40, "latency_p50_ms": p99 / 2,
           "latency_p99_ms": p99, "cpu_us_per_msg": cpu, "mem_kib_per_conn": mem,
           "lost": 0, "duplicated": 0, "reordered": 0, "dropped": 0}
    out.update(extra)
    return out


def table() -> pd.DataFrame:
    return pd.DataFrame([
        row("plain", {"compression.algorithm": "none"}, 400.0, mem=0.0),
        row("deflate15", BROWSER_DEFLATE, 200.0, mem=60.0),
        row("deflate12", {}, 190.0, mem=36.0),  # the library's 12-bit client window
        row("zstd", {"compression.algorithm": "zstd-stream"}, 160.0, mem=50.0),
        row("zstd-big", {"compression.algorithm": "zstd-dict"}, 120.0, mem=900.0),
    ])


def test_browser_leaves_out_zstd_and_small_client_windows_and_says_what_they_save() -> None:
    df = table()
    rec = recommend(df, max_kib_per_conn=64)
    assert rec.clients == "browser" and rec.chosen is not None
    assert rec.chosen["point"] == "deflate15"
    assert rec.counts["left_out"] == 3 and rec.counts["competing"] == 2
    left = rec.left_out.set_index("rule")
    chosen_b = float(df.loc[df["point"] == "deflate15", "ws_bytes_per_msg"].iloc[0])
    zstd_b = float(df.loc[df["point"] == "zstd", "ws_bytes_per_msg"].iloc[0])
    # zstd-dict (120 B) needs 900 KiB: over the limit, so zstd-stream is the one to beat.
    assert left.loc["zstd", "rows"] == 2 and left.loc["zstd", "feasible"] == 1
    assert left.loc["zstd", "best"]["point"] == "zstd"
    want = (chosen_b - zstd_b) / chosen_b * 100
    assert left.loc["zstd", "saving_pct"] == pytest.approx(want)
    assert left.loc["client_window", "best"]["point"] == "deflate12"
    text = rec.text
    assert f"would have saved a further {want:.1f} % of bytes per message" in text
    assert "Browsers cannot negotiate x-wslab-zstd" in text
    assert "client_max_window_bits below 15" in text
    data = json.loads(json.dumps(rec.to_dict(), allow_nan=False))
    assert data["clients"] == "browser" and len(data["left_out"]) == 2


def test_custom_clients_let_zstd_win() -> None:
    rec = recommend(table(), max_kib_per_conn=64, clients="custom")
    assert rec.chosen is not None and rec.chosen["point"] == "zstd"
    assert rec.left_out.empty and rec.counts["left_out"] == 0
    assert "Left out" not in rec.text
    unbounded = recommend(table(), clients="custom")
    assert unbounded.chosen is not None and unbounded.chosen["point"] == "zstd-big"


def test_left_out_rows_over_the_limits_are_named_with_what_they_break() -> None:
    df = table()
    rec = recommend(df[df["point"] != "zstd"], max_kib_per_conn=64)
    zstd = rec.left_out.set_index("rule").loc["zstd"]
    assert zstd["best"] is None and zstd["best_any"]["point"] == "zstd-big"
    assert "memory per connection 900 KiB of 64.0 KiB allowed" in rec.text


def test_only_unnegotiable_rows_is_an_answer_not_a_crash() -> None:
    df = table()
    rec = recommend(df[df["point"].isin(["zstd", "zstd-big"])])
    assert not rec.feasible and rec.counts["competing"] == 0
    assert "No recommendation for browser clients" in rec.text
    assert "would meet the constraints" in rec.text  # no constraint: zstd-dict would


def test_rule_per_row_and_holdable_config() -> None:
    df = table()
    rules = dict(zip(df["point"], client_exclusions(df, "browser"), strict=True))
    assert rules == {"plain": "", "deflate15": "", "deflate12": "client_window",
                     "zstd": "zstd", "zstd-big": "zstd"}
    assert (client_exclusions(df, "custom") == "").all()
    base = TuningConfig()
    held = holdable_config(base, "browser")
    assert held.compression.client_max_window_bits == BROWSER_WINDOW_BITS
    assert held.updated({"compression.client_max_window_bits": 12}) == base
    assert holdable_config(base, "custom") == base
    with pytest.raises(WslabError, match="unknown clients 'robots'; known: browser, custom"):
        recommend(df, clients="robots")


def test_browser_caveat_only_where_the_client_sends_and_differs() -> None:
    server_like = row("a", {**BROWSER_DEFLATE, "compression.mem_level": 4}, 100.0)
    assert "memLevel 4" in (browser_send_caveat(server_like) or "")
    as_browsers = row("b", {**BROWSER_DEFLATE, "compression.mem_level": 8}, 100.0)
    assert browser_send_caveat(as_browsers) is None
    quiet = row("c", {**BROWSER_DEFLATE, "compression.mem_level": 4}, 100.0, c2s_messages=0)
    loud = row("d", {**BROWSER_DEFLATE, "compression.mem_level": 4}, 90.0, c2s_messages=5)
    assert "Client-to-server figures" not in recommend(pd.DataFrame([quiet])).text
    assert "Client-to-server figures" in recommend(pd.DataFrame([loud])).text


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(recommend_cmd)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer from flattening the app
        pass

    return app


def test_cli_clients_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "r.parquet"
    write_table(table(), results)
    runner = CliRunner()
    res = runner.invoke(_app(), ["recommend", str(results), "--max-kib-per-conn", "64",
                                 "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["chosen"]["point"] == "deflate15"
    res = runner.invoke(_app(), ["recommend", str(results), "--max-kib-per-conn", "64",
                                 "--clients", "custom", "--json"])
    assert json.loads(res.output)["chosen"]["point"] == "zstd"
    assert run(["recommend", str(results), "--clients", "robots"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown clients 'robots'" in err


def test_the_sweep_advice_appears_only_when_no_deflate_row_could_compete() -> None:
    advice = "sweep with compression.client_max_window_bits 15"
    with_browser_row = recommend(table(), max_kib_per_conn=64)
    assert advice not in with_browser_row.text
    only_small_windows = table()
    only_small_windows = only_small_windows[only_small_windows["point"] != "deflate15"]
    rec = recommend(only_small_windows, max_kib_per_conn=64)
    assert rec.chosen is not None and rec.chosen["point"] == "plain"
    assert advice in rec.text
