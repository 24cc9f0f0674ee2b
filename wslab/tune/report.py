"""The tuning report: one self-contained HTML page that opens offline.

What lives here: :func:`write_report` (assembles the page: the frontier, the chosen config
with its reasons, what the client population could not negotiate and what it would have
saved, where the compression policy changed what was sent, simulated against live,
per-type compression) and :func:`sim_vs_live`
(live rows beside their simulated twins, as a tidy table). plotly.js is embedded inline
exactly once; the page loads nothing from the network. The file is written atomically.

What must not live here: the figures themselves (``report_figures.py``), choosing or
explaining (``recommend*.py``), command-line parsing. The closing "Exports" section lists
every export target with whether wslab's tests prove it by running it (from
``wslab.tune.export.TARGET_INFO``).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from wslab.atomic import atomic_write_text
from wslab.tune.policy import policy_effects
from wslab.tune.recommend import Recommendation, recommend
from wslab.tune.recommend_baseline import BASELINES
from wslab.tune.recommend_explain import describe_config, fmt, label, plain_frames_text
from wslab.tune.recommend_pareto import check_results, row_config
from wslab.tune.report_figures import compression_figure, frontier_figure, sim_live_figure

LIVE_METRICS = ("ws_bytes_per_msg", "tcp_bytes_per_msg", "latency_p50_ms", "latency_p95_ms",
                "latency_p99_ms", "cpu_us_per_msg", "mem_kib_per_conn")

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;
padding:1.5em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.88em;margin:.6em 0}
td,th{border:1px solid #ccc;padding:.25em .55em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}
.note{color:#666}.explain li{margin:.25em 0}.chosen{background:#fff6d5;padding:.6em 1em}
"""


def sim_vs_live(df: pd.DataFrame) -> pd.DataFrame:
    """Live rows beside their simulated twins (same ``point``): one row per (point, metric).

    Returns:
        Columns ``point``, ``config``, ``metric``, ``sim``, ``live``, ``live_vs_sim_pct``
        (``(live - sim) / sim``); empty when the table has no live row with a sim twin.
    """
    columns = ["point", "config", "metric", "sim", "live", "live_vs_sim_pct"]
    if "mode" not in df.columns or "point" not in df.columns:
        return pd.DataFrame(columns=columns)
    mode = df["mode"].astype(str)
    sim = df[(mode == "sim").to_numpy()].drop_duplicates("point").set_index("point")
    records: list[dict[str, Any]] = []
    for _, live in df[(mode == "live").to_numpy()].iterrows():
        if live["point"] not in sim.index:
            continue
        twin = sim.loc[live["point"]]
        for metric in LIVE_METRICS:
            if metric not in df.columns:
                continue
            s, v = float(twin[metric]), float(live[metric])
            records.append({
                "point": live["point"], "config": describe_config(live.to_dict()),
                "metric": metric, "sim": s, "live": v,
                "live_vs_sim_pct": (v - s) / s * 100 if s else float("nan"),
            })
    return pd.DataFrame.from_records(records, columns=columns)


def _table(frame: pd.DataFrame, *, max_rows: int = 60) -> str:
    shown = frame.head(max_rows)
    text = shown.to_html(index=False, escape=True, border=0, na_rep="",
                         float_format=lambda v: f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}")
    if len(frame) > max_rows:
        text += f'<p class="note">first {max_rows} of {len(frame)} rows</p>'
    return text


class _Page:
    """Collects sections; the first figure carries plotly.js, the rest reuse it."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self._has_js = False

    def h2(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def p(self, text: str, cls: str = "") -> None:
        attr = f' class="{cls}"' if cls else ""
        self.parts.append(f"<p{attr}>{html.escape(text)}</p>")

    def raw(self, text: str) -> None:
        self.parts.append(text)

    def figure(self, fig: go.Figure) -> None:
        self.parts.append(fig.to_html(full_html=False, include_plotlyjs=not self._has_js,
                                      config={"displaylogo": False, "responsive": True}))
        self._has_js = True

    def render(self) -> str:
        head = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f"<title>{html.escape(self.title)}</title>\n<style>{_STYLE}</style>\n</head>")
        body = "\n".join([f"<h1>{html.escape(self.title)}</h1>", *self.parts])
        return f"{head}\n<body>\n{body}\n</body>\n</html>\n"


def _frontier_section(page: _Page, df: pd.DataFrame, rec: Recommendation) -> None:
    page.h2("Pareto frontier")
    c = rec.counts
    left = (f", {c['left_out']} intact rows left out for {rec.clients} clients"
            if c.get("left_out") else "")
    page.p(f"{c['points']} rows; {c['competing']} compete ({c['eligible']} with every message "
           f"intact{left}); {c['frontier']} on the frontier over bytes per message, p99 latency, "
           "CPU per message and memory per connection. Hover a point for its config; the "
           "menu switches the colour between CPU and memory.", "note")
    pool = df
    if "mode" in df.columns and (df["mode"].astype(str) == "sim").any():
        pool = df[(df["mode"].astype(str) == "sim").to_numpy()]
    page.figure(frontier_figure(pool, rec.frontier, rec.chosen))
    shown = rec.frontier.sort_values(rec.objective, kind="stable")
    summary = pd.DataFrame({
        "config": [describe_config(r) for r in shown.to_dict(orient="records")],
        **{label(m): shown[m].to_numpy() for m in
           ("ws_bytes_per_msg", "latency_p95_ms", "latency_p99_ms", "cpu_us_per_msg",
            "mem_kib_per_conn") if m in shown.columns},
    })
    if "frames_plain" in shown.columns:
        summary["frames sent uncompressed"] = shown["frames_plain"].to_numpy()
    page.raw(_table(summary, max_rows=40))


def _chosen_section(page: _Page, rec: Recommendation) -> None:
    page.h2("Recommendation")
    items = "".join(f"<li>{html.escape(line)}</li>" for line in rec.explanation)
    page.raw(f'<div class="chosen"><ul class="explain">{items}</ul></div>')
    if rec.chosen is None:
        if rec.relax_options:
            page.raw(_table(pd.DataFrame(rec.relax_options)))
        return
    if "point" in rec.chosen:
        page.p(f"chosen point: {rec.chosen['point']}")
    if not rec.comparison.empty:
        cmp = rec.comparison.copy()
        cmp["baseline"] = cmp["baseline"].map(lambda b: BASELINES.get(str(b), str(b)))
        cmp["metric"] = cmp["metric"].map(lambda m: label(str(m)))
        page.raw(_table(cmp))
    if not rec.constraints.empty:
        page.raw(_table(rec.constraints))
    yaml_text = row_config(rec.chosen, where="chosen row").to_yaml()
    page.raw(f"<p>The chosen config (load it with <code>TuningConfig.load</code>):</p>"
             f"<pre>{html.escape(yaml_text)}</pre>")


def _clients_section(page: _Page, rec: Recommendation) -> None:
    page.h2(f"Left out for {rec.clients} clients")
    if rec.left_out.empty:
        text = ("custom clients can be given any config: nothing was left out."
                if rec.clients == "custom" else
                f"Every row of the table is one {rec.clients} clients can negotiate.")
        page.p(text, "note")
        return
    obj = rec.objective
    shown = pd.DataFrame({
        "rule": rec.left_out["rule"],
        f"{rec.clients}s cannot": rec.left_out["cannot"],
        "rows left out": rec.left_out["rows"],
        "meeting the constraints": rec.left_out["feasible"],
        "best of them within the constraints": [
            describe_config(b) if isinstance(b, dict) else "none" for b in rec.left_out["best"]],
        f"its {label(obj)}": rec.left_out["value"],
        f"chosen {label(obj)}": rec.left_out["chosen_value"],
        "it would have saved %": rec.left_out["saving_pct"],
        "best of them ignoring the constraints": [
            describe_config(b) if isinstance(b, dict) else "" for b in rec.left_out["best_any"]],
        f"its {label(obj)} ": rec.left_out["value_any"],
        "memory per connection": [_get_number(b, "mem_kib_per_conn")
                                  for b in rec.left_out["best_any"]],
    })
    page.raw(_table(shown))


def _get_number(row: Any, column: str) -> float:
    value = row.get(column) if isinstance(row, dict) else None
    return float(value) if value is not None else float("nan")


def _policy_section(page: _Page, df: pd.DataFrame) -> None:
    page.h2("Compression policy against always")
    pool = df
    if "mode" in df.columns and (df["mode"].astype(str) == "sim").any():
        pool = df[(df["mode"].astype(str) == "sim").to_numpy()]
    effects = policy_effects(pool)
    if effects.empty:
        page.p("No threshold or adaptive row has its 'always' twin (the same config with "
               "policy always) in this table: sweep compression.policy to see what the "
               "policy changes.", "note")
        return
    page.p("Each threshold or adaptive row beside the same config with policy always: the "
           "difference in bytes and compression CPU per message, and the frames the policy "
           "sent uncompressed.", "note")
    effects = effects.sort_values("bytes_change_pct", kind="stable")
    shown = pd.DataFrame({
        "config": effects["config"], "policy": effects["policy"],
        "bytes/msg, always": effects["always_ws_bytes_per_msg"],
        "bytes/msg": effects["ws_bytes_per_msg"], "bytes change %": effects["bytes_change_pct"],
        "CPU µs/msg, always": effects["always_cpu_us_per_msg"],
        "CPU µs/msg": effects["cpu_us_per_msg"], "CPU change %": effects["cpu_change_pct"],
        "why": [plain_frames_text(p, f, k) for p, f, k in
                zip(effects["frames_plain"], effects["frames"], effects["plain_keys"],
                    strict=True)],
    })
    page.raw(_table(shown, max_rows=40))


def _live_section(page: _Page, tidy: pd.DataFrame) -> None:
    page.h2("Simulated against live")
    if tidy.empty:
        page.p("No live rows in this table: validate the best candidates live (mode "
               "'live' rows beside their simulated twins) to see how far the simulator's "
               "figures hold on this machine.", "note")
        return
    names = {key: f"P{i}" for i, key in enumerate(dict.fromkeys(tidy["point"]), start=1)}
    short = tidy.assign(point=tidy["point"].map(names))
    page.figure(sim_live_figure(short))
    wide = short.pivot_table(index=["point", "config"], columns="metric",
                             values="live_vs_sim_pct", sort=False).reset_index()
    wide.columns = [c if c in ("point", "config") else f"{label(str(c))}: live vs sim %"
                    for c in wide.columns]
    page.raw(_table(wide))
    page.raw(_table(short.assign(metric=short["metric"].map(lambda m: label(str(m))))
                    .drop(columns=["config"])))


def _compression_section(page: _Page, analysis: pd.DataFrame | None) -> None:
    page.h2("Compression per message type")
    if analysis is None or analysis.empty:
        page.p("No analysis given: run the report with --trace for the per-type section.",
               "note")
        return
    if "bytes" in analysis.columns:
        analysis = analysis.sort_values("bytes", ascending=False, kind="stable")
    page.figure(compression_figure(analysis))
    keep = [c for c in ("type", "dir", "messages", "bytes", "mean_size", "deflate_ratio",
                        "deflate_ratio_no_context", "zstd_ratio", "zstd_dict_ratio",
                        "recommendation") if c in analysis.columns]
    page.raw(_table(analysis[keep]))


def _exports_section(page: _Page) -> None:
    from wslab.tune.export import target_rows

    page.h2("Exports")
    page.p("wslab export --target T writes the chosen config for each stack below; each "
           "file states what its target cannot express. \"proven by running\" says whether "
           "wslab's tests start that stack and check, with a real client, that it negotiates "
           "the exported parameters.", cls="note")
    rows = [{"target": r["target"], "stack": r["stack"],
             "proven by running": "yes" if r["proven_by_running"] else "no", "how": r["how"]}
            for r in target_rows()]
    page.raw(_table(pd.DataFrame.from_records(rows)))


def _probe_section(page: _Page, probe: dict[str, Any] | None) -> None:
    if not probe:
        return
    from wslab.tune.probe_report import probe_parts

    for part in probe_parts(probe):
        page.h2(part.heading)
        for note in part.notes:
            page.p(note, cls="note")
        if part.table is not None:
            page.raw(_table(part.table))


def write_report(
    results_df: pd.DataFrame,
    out_html: str | Path,
    *,
    recommendation: Recommendation | None = None,
    analysis_df: pd.DataFrame | None = None,
    sim_vs_live_df: pd.DataFrame | None = None,
    title: str = "wslab tuning report",
    clients: str = "browser",
    probe: dict[str, Any] | None = None,
) -> Path:
    """Write the report page atomically and return its path.

    Args:
        results_df: A results table (``run_sweep``'s shape; live rows optional).
        out_html: Where the page goes.
        recommendation: The recommendation to show (default: ``recommend(results_df,
            clients=clients)``, no constraints, bytes per message minimised).
        analysis_df: ``wslab.analysis.analyse`` output for the per-type section.
        sim_vs_live_df: A ready :func:`sim_vs_live` table (default: built from the rows).
        title: The page title.
        clients: The client population of the default recommendation.
        probe: A ``wslab probe`` report (``--json`` / ``-o``) for its own section.

    Raises:
        WslabError: If the results table lacks a needed column.
    """
    check_results(results_df)
    rec = (recommendation if recommendation is not None
           else recommend(results_df, clients=clients))
    tidy = sim_vs_live_df if sim_vs_live_df is not None else sim_vs_live(results_df)
    page = _Page(title)
    if rec.chosen is not None:
        obj = rec.objective
        page.p(f"Recommended: {describe_config(rec.chosen)} — {label(obj)} "
               f"{fmt(obj, rec.chosen.get(obj))}.")
    _frontier_section(page, results_df, rec)
    _chosen_section(page, rec)
    _clients_section(page, rec)
    _policy_section(page, results_df)
    _live_section(page, tidy)
    _compression_section(page, analysis_df)
    _exports_section(page)
    _probe_section(page, probe)
    path = Path(out_html)
    atomic_write_text(path, page.render())
    return path
