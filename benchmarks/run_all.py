"""Run every benchmark script and regenerate ``docs/performance.md`` from the results.

``python benchmarks/run_all.py [--quick] [--only NAME ... [--update]] [--report-only]``

- Each ``bench_*.py`` runs in its own process (one benchmark's allocations do not disturb
  the next) with a time limit; a script that crashes or overruns is reported as "did not
  complete" with the last line of its stderr, and the others carry on.
- Before starting it prints how long the run should take: each script's time from the
  previous run in the same mode (``out/bench/timings.json``), or a fixed estimate.
- The rows go to ``out/bench/results.parquet`` (the run's metadata beside it in
  ``meta.json``), and ``docs/performance.md`` is rewritten from them: the machine, the
  date, the command, then per benchmark one table per section with every figure beside
  the peer it was measured against, and plots (PNG through kaleido in ``docs/img/``).
- ``--only`` runs some scripts and writes ``out/bench/results-partial.parquet``, leaving
  the full results and the page alone; with ``--update`` (same mode as the stored run)
  those scripts' rows replace theirs in ``results.parquet`` and the page is rebuilt, each
  re-run script's section saying when it was re-run; ``--report-only`` rebuilds the page from the
  stored results without running anything.

Exit status 1 if any target was missed or any script did not complete (the page says which).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / "out" / "bench"
DOC = ROOT / "docs" / "performance.md"
IMG = ROOT / "docs" / "img"
TIMINGS = OUT / "timings.json"
META = OUT / "meta.json"
RESULTS = OUT / "results.parquet"

# Seconds per script when no earlier run says better (quick, full), measured on the
# 2-core build machine; a new script without an entry counts as DEFAULT_ESTIMATE.
ESTIMATES: dict[str, tuple[float, float]] = {
    "analysis": (10, 30), "batching": (45, 200), "codecs": (1, 2), "compression": (20, 150),
    "fidelity": (30, 150), "harness": (115, 250), "lab": (11, 30), "scale": (75, 300),
    "shaper": (4, 10), "sim": (12, 60), "sweep": (26, 60), "traces": (6, 80),
    "events": (5, 25), "zstd": (60, 200), "browser": (420, 1500),
    "browser_client": (80, 250), "sweep_cluster": (75, 200), "scale_dask": (70, 200),
    "broker_cluster": (17, 60),
}
DEFAULT_ESTIMATE = (30.0, 120.0)
TIMEOUT_S = {True: 600, False: 3600}


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def _last_line(text: str, fallback: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else fallback


def _parse_rows(stdout: str) -> list[dict[str, Any]]:
    rows = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a stray print that happens to start with a brace
    return rows


def _run_script(path: Path, quick: bool) -> tuple[list[dict[str, Any]], float, str]:
    """Rows, seconds, and why it did not complete ("" when it did)."""
    start = time.perf_counter()
    cmd = [sys.executable, str(path), *(["--quick"] if quick else [])]
    limit = TIMEOUT_S[quick]
    proc = subprocess.Popen(cmd, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        # The script's own children (servers, clients) share its session: end them all.
        os.killpg(proc.pid, 15)
        try:
            stdout, stderr = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            stdout, stderr = proc.communicate()
        rows = _parse_rows(stdout)
        return rows, time.perf_counter() - start, f"timed out after {limit} s"
    rows = _parse_rows(stdout)
    problem = ""
    # Exit status 1 means "a target was missed" (common.main), but an uncaught exception
    # exits with 1 as well: its traceback tells the two apart.
    crashed = "Traceback (most recent call last)" in stderr
    if proc.returncode not in (0, 1) or crashed or not rows:
        problem = _last_line(stderr, f"exit status {proc.returncode}, no output")
    return rows, time.perf_counter() - start, problem


def _estimate(scripts: list[Path], quick: bool) -> tuple[float, dict[str, float], str]:
    mode = "quick" if quick else "full"
    previous: dict[str, float] = {}
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads(TIMINGS.read_text()).get(mode, {})
    per: dict[str, float] = {}
    for s in scripts:
        name = s.stem.removeprefix("bench_")
        fixed = ESTIMATES.get(name, DEFAULT_ESTIMATE)[0 if quick else 1]
        per[name] = float(previous.get(name, fixed))
    source = (f"the previous {mode} run's timings" if previous else "fixed per-script "
              "estimates")
    return sum(per.values()), per, source


def _save_timings(quick: bool, seconds: dict[str, float]) -> None:
    try:
        data = json.loads(TIMINGS.read_text())
    except (OSError, ValueError):
        data = {}
    mode = "quick" if quick else "full"
    data[mode] = {**data.get(mode, {}), **{k: round(v, 1) for k, v in seconds.items()}}
    TIMINGS.write_text(json.dumps(data, indent=1, sort_keys=True))


# ----------------------------------------------------------------------------- page


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        v = float(value)
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
    return str(value).replace("|", "\\|")


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _table(records: list[dict[str, Any]]) -> list[str]:
    notes = any(_clean(r.get("note")) for r in records)
    head = "| metric | value | unit | peer | peer value | ratio | target | ok |"
    rule = "|---|---:|---|---|---:|---:|---|---|"
    if notes:
        head += " note |"
        rule += "---|"
    lines = [head, rule]
    for r in records:
        ok = {True: "yes", False: "**no**"}.get(_clean(r.get("ok")), "")
        line = (f"| {_fmt(r['metric'])} | {_fmt(_clean(r.get('value')))} | "
                f"{_fmt(_clean(r.get('unit')) or '')} | {_fmt(_clean(r.get('peer')) or '')} | "
                f"{_fmt(_clean(r.get('peer_value')))} | {_fmt(_clean(r.get('ratio')))} | "
                f"{_fmt(_clean(r.get('target')) or '')} | {ok} |")
        if notes:
            line += f" {_fmt(_clean(r.get('note')) or '')} |"
        lines.append(line)
    return lines


def _pivot(grid: pd.DataFrame, column: str, fmt: str) -> list[str]:
    """A wbits x memLevel markdown table of one grid column."""
    levels = sorted(int(m) for m in grid["mem_level"].unique())
    lines = ["| wbits \\ memLevel | " + " | ".join(str(m) for m in levels) + " |",
             "|---|" + "---:|" * len(levels)]
    for w in sorted(int(x) for x in grid["wbits"].unique()):
        cells = []
        for m in levels:
            hit = grid[(grid["wbits"] == w) & (grid["mem_level"] == m)]
            value = float(hit[column].iloc[0]) if len(hit) else math.nan
            cell = "" if math.isnan(value) else format(value, fmt)
            cells.append(f"**{cell}**" if (w, m) == (12, 5) else cell)
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    return lines


def _grid_section(grid: pd.DataFrame, images: dict[str, str]) -> list[str]:
    messages = int(grid["messages"].iloc[0]) if "messages" in grid else 0
    lines = ["### deflate window bits x memLevel, relative to 12/5 (bold)", "",
             f"All bundled traces ({messages:,} messages), one compressor per direction, "
             "level 6, `Z_SYNC_FLUSH` per message with the tail stripped. Below 1 is "
             "smaller / faster / lighter than the websockets default.", ""]
    if "compression_grid" in images:
        lines += [f"![deflate grid]({images['compression_grid']})", ""]
    lines += ["Compressed size vs 12/5:", "", *_pivot(grid, "size_rel", ".3f"), "",
              "Compression CPU time vs 12/5:", "", *_pivot(grid, "time_rel", ".2f"), "",
              "Memory of one zlib compressor + decompressor pair, KiB (tracemalloc):", "",
              *_pivot(grid, "mem_kib", ".0f"), ""]
    return lines


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _clean(v) for k, v in r.items()} for r in df.to_dict("records")]


def _markdown(results: pd.DataFrame, meta: dict[str, Any], images: dict[str, str]) -> str:
    total = sum(meta["seconds"].values())
    lines = [
        "# wslab performance",
        "",
        "Regenerated by `make bench` (`python benchmarks/run_all.py`) from "
        "`out/bench/results.parquet`: do not edit by hand. Every figure is measured beside "
        "a peer run the same way in the same run, so the ratio matters more than the "
        "absolute number on a shared machine. A target missed is shown as missed.",
        "",
        f"- machine: {meta['machine']}",
        f"- date: {meta['date']}",
        f"- command: `{meta['command']}`",
        f"- mode: {'quick' if meta['quick'] else 'full'}; {total / 60:.1f} minutes in all",
        f"- load average when it started: {meta.get('load', 'unknown')}",
        "",
        "| benchmark | seconds | figures | targets met | targets missed | completed |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name in meta["seconds"]:
        group = results[results["script"] == name]
        ok = group["ok"]
        again = " (re-run)" if name in meta.get("rerun", {}) else ""
        lines.append(f"| [{name}](#{name}){again} | {meta['seconds'][name]:.0f} | {len(group)} | "
                     f"{int((ok == True).sum())} | {int((ok == False).sum())} | "  # noqa: E712
                     f"{'**no**' if name in meta['problems'] else 'yes'} |")
    lines.append("")
    for name in meta["seconds"]:
        group = results[results["script"] == name]
        script = f"benchmarks/bench_{name}.py"
        lines += [f"## {name}", "", f"`{script}`, {meta['seconds'][name]:.0f} s.", ""]
        rerun = meta.get("rerun", {}).get(name)
        if rerun:
            lines += [f"Re-run alone on {rerun['date']} (`{rerun['command']}`, load average "
                      f"{rerun['load']}): these figures replace the ones of the run above.",
                      ""]
        problem = meta["problems"].get(name)
        if problem:
            lines += [f"**did not complete:** {problem}", ""]
        if f"{name}" in images:
            lines += [f"![{name}]({images[name]})", ""]
        view = group["view"] if "view" in group else pd.Series(index=group.index, dtype=object)
        grid = group[view == "grid"]
        plain = group[view != "grid"]
        sections = (plain["section"].fillna("") if "section" in plain
                    else pd.Series("", index=plain.index))
        for section in dict.fromkeys(sections):
            part = plain[sections == section]
            if section:
                lines += [f"### {section}", ""]
            lines += [*_table(_records(part)), ""]
        if len(grid):
            lines += _grid_section(grid, images)
    missed = results[results["ok"] == False]  # noqa: E712 - a column of True/False/None
    lines += ["## Targets missed", ""]
    lines += ([f"- {r['script']}: {r['metric']} ({_fmt(_clean(r['value']))} "
               f"{_clean(r.get('unit')) or ''}, target {_clean(r.get('target')) or ''})"
               for r in missed.to_dict("records")] or ["none"])
    if meta["problems"]:
        lines += ["", "## Did not complete", ""]
        lines += [f"- {k}: {v}" for k, v in meta["problems"].items()]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- plots


def _figures(results: pd.DataFrame) -> dict[str, Any]:
    """Plotly figures for the benchmarks a picture explains better than a table."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figs: dict[str, Any] = {}
    rows = results[results["script"] == "harness"]
    if "size_bytes" in rows and rows["size_bytes"].notna().any():
        rows = rows[rows["size_bytes"].notna()]
        points: dict[str, dict[float, float]] = {}
        for r in _records(rows):
            for series, value in ((r.get("series"), r.get("value")),
                                  (r.get("peer_series"), r.get("peer_value"))):
                if series and value is not None and not math.isnan(float(value)):
                    points.setdefault(str(series), {})[float(r["size_bytes"])] = float(value)
        fig = go.Figure()
        for series, by_size in points.items():
            xs = sorted(by_size)
            fig.add_trace(go.Scatter(x=xs, y=[by_size[x] for x in xs], name=series,
                                     mode="lines+markers"))
        fig.update_layout(title="Echo throughput by message size (server and client in "
                                "separate processes, loopback)",
                          xaxis={"type": "log", "title": "message size, bytes"},
                          yaxis={"type": "log", "title": "messages per second"},
                          width=900, height=500)
        figs["harness"] = fig
    rows = results[results["script"] == "batching"]
    if "strategy" in rows and rows["strategy"].notna().any():
        rows = rows[rows["strategy"].notna() & rows["ratio"].notna()]
        fig = go.Figure()
        for (link, workload, unit), part in rows.groupby(["link", "workload", "unit"],
                                                         sort=False):
            fig.add_trace(go.Bar(x=part["strategy"], y=part["ratio"],
                                 name=f"{link}, {workload}: {unit}"))
        fig.update_layout(title="Each batching strategy relative to unbatched (1 = same)",
                          yaxis={"type": "log", "title": "ratio to unbatched"},
                          barmode="group", width=900, height=500)
        figs["batching"] = fig
    rows = results[results["script"] == "compression"]
    if "view" in rows and (rows["view"] == "grid").any():
        grid = rows[rows["view"] == "grid"]
        titles = ("size vs 12/5", "compression time vs 12/5", "pair memory, KiB")
        fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.08)
        for i, column in enumerate(("size_rel", "time_rel", "mem_kib"), start=1):
            pivot = grid.pivot_table(index="wbits", columns="mem_level", values=column)
            fig.add_trace(go.Heatmap(
                z=pivot.to_numpy(), x=[str(int(c)) for c in pivot.columns],
                y=[str(int(w)) for w in pivot.index], colorscale="RdYlGn_r",
                zmid=1.0 if column != "mem_kib" else None, showscale=False,
                texttemplate="%{z:.2f}" if column != "mem_kib" else "%{z:.0f}",
                textfont={"size": 9}), row=1, col=i)
            fig.update_xaxes(title_text="memLevel", row=1, col=i)
            fig.update_yaxes(title_text="window bits" if i == 1 else None, row=1, col=i)
        fig.update_layout(title="permessage-deflate on the bundled traces, relative to the "
                                "12/5 default", width=1300, height=480)
        figs["compression_grid"] = fig
    return figs


def _plots(results: pd.DataFrame) -> tuple[dict[str, str], str]:
    """Write the PNGs; return their paths relative to docs/ and any problem in one line."""
    try:
        import plotly.io as pio

        figs = _figures(results)
        if not figs:
            return {}, ""
        IMG.mkdir(parents=True, exist_ok=True)
        paths = [IMG / f"perf-{name}.png" for name in figs]
        pio.write_images(list(figs.values()), paths,
                         width=[int(f.layout.width or 900) for f in figs.values()],
                         height=[int(f.layout.height or 500) for f in figs.values()])
        return {name: f"img/{p.name}" for name, p in zip(figs, paths, strict=True)}, ""
    except Exception as exc:  # no kaleido or no browser: the tables still stand
        return {}, f"plots not drawn: {type(exc).__name__}: {_last_line(str(exc), '')}"


# ----------------------------------------------------------------------------- main


def _write_results(results: pd.DataFrame, path: Path) -> None:
    for col in ("value", "peer_value", "ratio"):
        if col not in results:
            results[col] = math.nan
        results[col] = pd.to_numeric(results[col], errors="coerce")
    # Extra columns mix types across scripts (numbers in one, text in another): store them
    # as text where they do, so parquet takes them.
    for col in results.columns:
        if results[col].dtype == object:
            kinds = {type(v) for v in results[col].dropna()}
            if len(kinds) > 1 and not kinds <= {int, float}:
                results[col] = results[col].map(lambda v: None if v is None or
                                                (isinstance(v, float) and math.isnan(v))
                                                else str(v))
    buffer = io.BytesIO()
    results.to_parquet(buffer, index=False)
    path.write_bytes(buffer.getvalue())


def _report(results: pd.DataFrame, meta: dict[str, Any]) -> None:
    images, problem = _plots(results)
    if problem:
        print(problem)
        meta = {**meta, "problems": {**meta["problems"], "plots": problem}}
    DOC.write_text(_markdown(results, meta, images), encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}" + (f" and {len(images)} plot(s)" if images else ""))


def _update_stored(new: pd.DataFrame, run: dict[str, Any]) -> pd.DataFrame:
    """Replace the re-run scripts' rows in the stored results, rebuild the page; all rows."""
    if not RESULTS.exists() or not META.exists():
        raise SystemExit("--update needs a stored full run (out/bench/results.parquet): "
                         "run make bench first")
    meta = json.loads(META.read_text())
    if meta["quick"] != run["quick"]:
        raise SystemExit(f"--update: the stored run is {'quick' if meta['quick'] else 'full'} "
                         f"mode, this one is {'quick' if run['quick'] else 'full'}")
    names = set(run["seconds"])
    kept = pd.read_parquet(RESULTS)
    kept = kept[~kept["script"].isin(names)]
    results = pd.concat([kept, new], ignore_index=True)
    command = ("python benchmarks/run_all.py" + (" --quick" if run["quick"] else "")
               + " --only " + " ".join(sorted(names)) + " --update")
    for name in names:
        meta["seconds"][name] = run["seconds"][name]
        meta["problems"].pop(name, None)
        if name in run["problems"]:
            meta["problems"][name] = run["problems"][name]
        meta.setdefault("rerun", {})[name] = {"date": run["date"], "command": command,
                                              "load": run["load"]}
    _write_results(results, RESULTS)
    META.write_text(json.dumps(meta, indent=1))
    _report(results, meta)
    return results


def main() -> int:
    args = sys.argv[1:]
    quick = "--quick" in args
    if "--report-only" in args:
        results = pd.read_parquet(RESULTS)
        _report(results, json.loads(META.read_text()))
        return 0
    only = [a for a in args if not a.startswith("--")]
    scripts = sorted(HERE.glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if any(o in s.stem for o in only)]
    OUT.mkdir(parents=True, exist_ok=True)
    total, per, source = _estimate(scripts, quick)
    print(f"{len(scripts)} benchmark scripts, {'quick' if quick else 'full'} mode: about "
          f"{total / 60:.0f} min {total % 60:.0f} s in all (from {source}; a busy machine "
          "takes longer)", flush=True)
    all_rows: list[dict[str, Any]] = []
    meta: dict[str, Any] = {
        "machine": _machine(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "make bench" + (" QUICK=1" if quick else ""),
        "quick": quick, "seconds": {}, "problems": {},
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    started = time.perf_counter()
    for i, script in enumerate(scripts, 1):
        name = script.stem.removeprefix("bench_")
        print(f"[{i}/{len(scripts)}] {script.name} (about {per[name]:.0f} s) ...", flush=True)
        rows, seconds, problem = _run_script(script, quick)
        meta["seconds"][name] = seconds
        if problem:
            meta["problems"][name] = problem
            rows.append({"benchmark": name, "metric": "did not complete", "value": None,
                         "unit": "", "ok": False, "note": problem})
        for r in rows:
            r["script"] = name
        all_rows += rows
        missed = sum(1 for r in rows if r.get("ok") is False)
        print(f"    {len(rows)} rows, {missed} missed, {seconds:.0f} s"
              f"{'; did not complete: ' + problem if problem else ''}", flush=True)
    elapsed = time.perf_counter() - started
    results = pd.DataFrame(all_rows)
    if only and "--update" in args:
        results = _update_stored(results, meta)
    elif only:
        _write_results(results, OUT / "results-partial.parquet")
        print(f"wrote {(OUT / 'results-partial.parquet').relative_to(ROOT)} (partial run; "
              "the page is left as it was)")
    else:
        _write_results(results, RESULTS)
        META.write_text(json.dumps(meta, indent=1))
        _report(results, meta)
    _save_timings(quick, meta["seconds"])
    missed = int((results["ok"] == False).sum())  # noqa: E712
    print(f"{len(results)} figures in {elapsed / 60:.1f} min, {missed} target(s) missed, "
          f"{len(meta['problems'])} script(s) did not complete")
    return 1 if missed or meta["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
