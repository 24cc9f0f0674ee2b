"""Recommendation: Pareto frontier, constraints, binding constraint, relaxations, baselines.

Hand-made tables with known answers (every expected number is derived in the test from the
table's own figures), the JSON and config round trips, and the ``recommend`` command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from wslab.cli.recommend_cmd import recommend as recommend_cmd
from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.tables import read_table, write_table
from wslab.tune.recommend import Recommendation, pareto_front
from wslab.tune.recommend import recommend as recommend_for
from wslab.tune.sweep import flatten

METRICS = ("ws_bytes_per_msg", "latency_p99_ms", "cpu_us_per_msg", "mem_kib_per_conn")


def recommend(df: pd.DataFrame, **kwargs: Any) -> Recommendation:
    """The recommender for custom clients: these tables' deflate rows keep the library's
    12-bit client window, which browsers cannot be held to (``test_clients.py`` covers
    the browser population)."""
    return recommend_for(df, **{"clients": "custom", **kwargs})


def row(name: str, changes: dict[str, Any], b: float, p99: float, cpu: float, mem: float,
        **extra: Any) -> dict[str, Any]:
    """A results row: the config flattened, then metrics (integrity clean unless told)."""
    config = TuningConfig().updated({"link.profile": "4g", **changes})
    out = {"point": name, "mode": "sim", **flatten(config.to_dict()),
           "messages": 1000, "ws_bytes_per_msg": b, "tcp_bytes_per_msg": b + 40,
           "latency_p50_ms": p99 / 2, "latency_p99_ms": p99, "cpu_us_per_msg": cpu,
           "mem_kib_per_conn": mem, "lost": 0, "duplicated": 0, "reordered": 0, "dropped": 0}
    out.update(extra)
    return out


HYBRID = {"batching.strategy": "hybrid", "batching.interval_ms": 16.0}
ROWS = {
    "A": ({}, 200.0, 10.0, 5.0, 64.0),                                  # library defaults
    "B": ({"compression.algorithm": "none"}, 500.0, 8.0, 1.0, 0.0),      # plain
    "C": (HYBRID, 120.0, 25.0, 3.0, 64.0),
    "D": ({**HYBRID, "batching.interval_ms": 50.0, "compression.server_max_window_bits": 15,
           "compression.mem_level": 8}, 80.0, 60.0, 2.5, 316.0),
    "E": ({**HYBRID, "compression.server_max_window_bits": 10,
           "compression.mem_level": 3}, 210.0, 30.0, 6.0, 64.0),       # dominated by A
    "G": ({"batching.strategy": "time"}, 120.0, 25.0, 3.0, 64.0),       # ties with C
}


def table(*names: str, broken: bool = True) -> pd.DataFrame:
    rows = [row(n, *ROWS[n]) for n in (names or ROWS)]
    if broken:  # best on every metric, but lost a message: never eligible
        rows.append(row("F", {"batching.strategy": "count"}, 10.0, 1.0, 0.1, 0.0, lost=1))
    return pd.DataFrame(rows)


def test_pareto_excludes_dominated_and_broken_keeps_ties() -> None:
    front = pareto_front(table())
    assert sorted(front["point"]) == ["A", "B", "C", "D", "G"]


def test_pareto_directions_and_duplicates() -> None:
    df = pd.DataFrame({"a": [1.0, 2.0, 2.0, 3.0, 1.0], "b": [3.0, 2.0, 2.0, 1.0, 3.0],
                       "lost": 0, "duplicated": 0, "reordered": 0})
    assert list(pareto_front(df, {"a": "min", "b": "min"}).index) == [0, 1, 2, 3, 4]
    # maximising b: rows 0 and 4 (a=1, b=3) dominate everything else; they tie.
    assert list(pareto_front(df, {"a": "min", "b": "max"}).index) == [0, 4]
    df.loc[0, "reordered"] = 2
    assert list(pareto_front(df, {"a": "min", "b": "max"}).index) == [4]


def test_pareto_matches_brute_force_on_random_table() -> None:
    import numpy as np

    rng = np.random.default_rng(7)
    df = pd.DataFrame(rng.integers(0, 6, size=(700, 3)).astype(float), columns=list("xyz"))
    df["lost"] = df["duplicated"] = df["reordered"] = 0
    got = set(pareto_front(df, dict.fromkeys("xyz", "min")).index)
    v = df[list("xyz")].to_numpy()
    want = {i for i in range(len(v))
            if not any((v[j] <= v[i]).all() and (v[j] < v[i]).any() for j in range(len(v)))}
    assert got == want


def test_constraint_picks_row_and_names_binding() -> None:
    rec = recommend(table(), max_p99_ms=30)
    assert rec.feasible and rec.chosen is not None
    assert rec.chosen["point"] == "C"  # ties with G on every metric: first in table order
    assert rec.binding is not None and rec.binding["constraint"] == "max_p99_ms"
    assert rec.binding["kind"] == "relaxing"
    assert rec.binding["next_limit"] == 60.0 and rec.binding["next_objective"] == 80.0
    assert "raising it to 60.0 ms" in rec.text
    # Of the six eligible rows (the broken one is not), only B turns compression off.
    assert rec.counts == {"points": 7, "competing": 7, "eligible": 6, "feasible": 5,
                          "frontier": 5, "left_out": 0, "deflate_competing": 5}
    # memory cap excludes D too: now memory binds, p99 no longer does
    rec = recommend(table(), max_p99_ms=100, max_kib_per_conn=100)
    assert rec.chosen is not None and rec.chosen["point"] == "C"
    assert rec.binding is not None and rec.binding["constraint"] == "max_kib_per_conn"
    assert rec.binding["best_limit"] == 316.0


def test_no_gain_binding_is_the_closest_limit() -> None:
    rec = recommend(table("A", "B", "C"), max_p99_ms=26, max_cpu_us_per_msg=100)
    assert rec.chosen is not None and rec.chosen["point"] == "C"
    assert rec.binding is not None and rec.binding["kind"] == "closest"
    assert rec.binding["constraint"] == "max_p99_ms"  # 1 ms of 26 left vs 97 of 100


def test_objective_changes_choice() -> None:
    rec = recommend(table(), objective="latency_p99_ms")
    assert rec.chosen is not None and rec.chosen["point"] == "B"
    assert rec.binding is None


def test_savings_against_both_baselines() -> None:
    rec = recommend(table(), max_p99_ms=30)
    cmp = rec.comparison.set_index(["baseline", "metric"])
    chosen_b, default_b, plain_b = 120.0, 200.0, 500.0
    pct_defaults = (chosen_b - default_b) / default_b * 100
    pct_plain = (chosen_b - plain_b) / plain_b * 100
    assert cmp.loc[("defaults", "ws_bytes_per_msg"), "change_pct"] == pytest.approx(pct_defaults)
    assert cmp.loc[("plain", "ws_bytes_per_msg"), "change_pct"] == pytest.approx(pct_plain)
    assert cmp.loc[("defaults", "latency_p99_ms"), "change"] == pytest.approx(25.0 - 10.0)
    assert rec.baseline_sources == {"defaults": "table", "plain": "table"}
    assert f"saves {abs(pct_defaults):.1f} % of bytes per message" in rec.text  # 40.0 %
    assert f"saves {abs(pct_plain):.1f} % of bytes per message" in rec.text  # 76.0 %
    assert f"p99 latency 10.0 ms → 25.0 ms ({(25 - 10) / 10 * 100:+.1f} %)" in rec.text


def test_missing_baseline_is_simulated_or_reported() -> None:
    df = table("C", "D")
    rec = recommend(df)
    assert rec.baseline_sources == {"defaults": "missing", "plain": "missing"}
    assert "not in the table" in rec.text
    asked: list[TuningConfig] = []

    def fake(config: TuningConfig) -> dict[str, Any]:
        asked.append(config)
        b = 300.0 if config.compression.algorithm == "none" else 150.0
        return row("sim", {}, b, 5.0, 1.0, 10.0)

    rec = recommend(df, simulate_fn=fake)
    assert rec.baseline_sources == {"defaults": "simulated", "plain": "simulated"}
    assert asked[0].batching == TuningConfig().batching
    assert asked[0].compression == TuningConfig().compression
    assert asked[1].compression.algorithm == "none" and asked[1].batching.strategy == "none"
    assert all(c.link.profile == "4g" for c in asked)
    cmp = rec.comparison.set_index(["baseline", "metric"])
    assert cmp.loc[("defaults", "ws_bytes_per_msg"), "change_pct"] == pytest.approx(
        (80 - 150) / 150 * 100)
    with pytest.raises(WslabError, match="replays 999 messages"):
        recommend(df, simulate_fn=lambda c: {**fake(c), "messages": 999})


def test_baseline_df_is_searched() -> None:
    rec = recommend(table("C", "D"), baseline_df=table("A", "B", broken=False))
    assert rec.baseline_sources == {"defaults": "table", "plain": "table"}
    assert rec.chosen is not None and rec.chosen["point"] == "D"


def test_infeasible_single_relaxation_amount() -> None:
    rec = recommend(table(), max_p99_ms=5)
    assert not rec.feasible and rec.chosen is None
    assert rec.relax == [rec.relax_options[0]]
    step = rec.relax[0]
    # the lowest p99 among intact rows is B's 8 ms: relax 5 -> 8 (+3 ms, +60 %)
    assert step["constraint"] == "max_p99_ms"
    assert step["needed"] == 8.0 and step["by"] == 3.0 and step["by_pct"] == pytest.approx(60.0)
    assert step["objective"] == 500.0
    assert "Relax max_p99_ms from 5.00 ms to 8.00 ms (+3.00 ms, +60.0 %)" in rec.text
    with pytest.raises(WslabError, match="no config meets"):
        _ = rec.config


def test_infeasible_picks_smallest_relative_relaxation() -> None:
    # p99 <= 9 and memory <= 50 KiB: B (8 ms, 0 KiB) fits both: feasible.
    assert recommend(table(), max_p99_ms=9, max_kib_per_conn=50).feasible
    # p99 <= 7 and CPU <= 2: only relaxing p99 (to B's 8 ms, +1/7) lets a row through
    rec = recommend(table(), max_p99_ms=7, max_cpu_us_per_msg=2)
    assert [o["constraint"] for o in rec.relax_options] == ["max_p99_ms"]
    assert rec.relax[0]["needed"] == 8.0
    assert rec.relax[0]["by_pct"] == pytest.approx(1 / 7 * 100)


def test_infeasible_needs_two_relaxations() -> None:
    rec = recommend(table(), max_p99_ms=5, max_cpu_us_per_msg=0.5)
    assert rec.relax_options == []
    # B has the least total relative excess: p99 8 (0.6 over) and CPU 1 (1.0 over)
    assert {s["constraint"]: s["needed"] for s in rec.relax} == {
        "max_p99_ms": 8.0, "max_cpu_us_per_msg": 1.0}
    assert "No single constraint is enough" in rec.text


def test_all_broken_is_an_answer_not_a_crash() -> None:
    df = table("A")
    df["lost"] = 3
    rec = recommend(df, max_p99_ms=1)
    assert not rec.feasible and rec.relax == [] and "kept every message" in rec.text
    json.dumps(rec.to_dict(), allow_nan=False)


def test_to_dict_json_and_config_round_trip(tmp_path: Path) -> None:
    df = table()
    df.loc[df["point"] == "C", "scaling.heartbeat_interval_s"] = None
    write_table(df, tmp_path / "r.csv")
    rec = recommend(read_table(tmp_path / "r.csv"), max_p99_ms=30)
    data = json.loads(json.dumps(rec.to_dict(), allow_nan=False))
    assert data["chosen"]["point"] == "C" and data["feasible"] is True
    assert len(data["frontier"]) == 5
    want = TuningConfig().updated({"link.profile": "4g", **HYBRID,
                                   "scaling.heartbeat_interval_s": None})
    assert rec.config == want
    assert TuningConfig.from_dict(data["config"]) == want
    rec.config.save(tmp_path / "c.yaml")
    assert TuningConfig.load(tmp_path / "c.yaml") == want


def test_live_rows_do_not_compete() -> None:
    df = table()
    live = df[df["point"] == "C"].assign(mode="live", ws_bytes_per_msg=1.0)
    rec = recommend(pd.concat([df, live], ignore_index=True))
    assert rec.chosen is not None and rec.chosen["mode"] == "sim"
    assert rec.chosen["point"] == "D"


def test_wrong_shape_names_missing_columns() -> None:
    df = table().drop(columns=["latency_p99_ms", "lost"])
    with pytest.raises(WslabError, match="missing column\\(s\\) latency_p99_ms, lost"):
        recommend(df)
    with pytest.raises(WslabError, match="bogus"):
        recommend(table(), objective="bogus")
    with pytest.raises(WslabError, match=">= 0"):
        recommend(table(), max_p99_ms=-1)


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(recommend_cmd)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer from flattening the app
        pass

    return app


def test_cli_recommend(tmp_path: Path) -> None:
    results = tmp_path / "r.parquet"
    write_table(table(), results)
    chosen = tmp_path / "chosen.yaml"
    runner = CliRunner()
    custom = ["--clients", "custom"]
    res = runner.invoke(_app(), ["recommend", str(results), "--max-p99-ms", "30",
                                 "-o", str(chosen), *custom])
    assert res.exit_code == 0, res.output
    assert "Recommended: hybrid batching" in res.output
    assert TuningConfig.load(chosen) == TuningConfig().updated({"link.profile": "4g", **HYBRID})
    res = runner.invoke(_app(), ["recommend", str(results), "--max-p99-ms", "30", "--json",
                                 *custom])
    assert json.loads(res.output)["chosen"]["point"] == "C"
    res = runner.invoke(_app(), ["recommend", str(results), "--max-p99-ms", "5",
                                 "-o", str(tmp_path / "none.yaml"), *custom])
    assert res.exit_code == 1 and "Relax max_p99_ms" in res.output
    assert not (tmp_path / "none.yaml").exists()


def test_cli_bad_results_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(WslabError, match="missing column"):
        recommend_cmd(bad)
    res = CliRunner().invoke(_app(), ["recommend", str(bad)])
    assert res.exit_code != 0 and isinstance(res.exception, WslabError)
    assert "missing column(s) ws_bytes_per_msg" in str(res.exception)


def test_recommendation_is_dataclass() -> None:
    assert isinstance(recommend(table()), Recommendation)


def test_a_tie_on_the_objective_goes_to_the_simpler_policy() -> None:
    # Same bytes to the byte: adaptive compressed every frame, as always does. Its
    # CPU-timed latency came out lower by noise; that must not make it the choice.
    rows = [row("adaptive", {"compression.policy": "adaptive"}, 100.0, 20.0, 3.0, 64.0),
            row("always", {}, 100.0, 21.0, 3.1, 64.0),
            row("threshold", {"compression.policy": "threshold",
                              "compression.threshold_bytes": 64}, 100.0, 19.0, 2.9, 64.0)]
    rec = recommend(pd.DataFrame(rows))
    assert rec.chosen is not None and rec.chosen["compression.policy"] == "always"
    # Not a tie: a policy that really sends fewer bytes still wins.
    rows[0]["ws_bytes_per_msg"] = 99.0
    rec = recommend(pd.DataFrame(rows))
    assert rec.chosen is not None and rec.chosen["compression.policy"] == "adaptive"
