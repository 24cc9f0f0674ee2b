"""``wslab probe URL``: audit a running WebSocket endpoint, and set it beside the recommendation.

What lives here: the typer command :func:`probe` (options, the loopback rule's one-line
refusal, printing the report as rich tables or one JSON object) and the table builders.
What must not live here: probing (``wslab.harness.probe``) or advice
(``wslab.tune.probe_advice``). Exit codes: 0 when the server upgraded and broke no rule,
1 when the report names a problem (no upgrade, an RFC violation, a misbehaviour), 2 for
bad input (a malformed URL, a remote host without ``--allow-remote``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from wslab.cli.common import fmt_value, json_safe, out, print_json


def probe(
    url: Annotated[str, typer.Argument(metavar="URL", help="ws:// or wss:// endpoint")],
    allow_remote: Annotated[bool, typer.Option(
        "--allow-remote", help="allow a host other than loopback (only servers you run)")
    ] = False,
    trace: Annotated[Path | None, typer.Option(
        "--trace", help="replay its client messages on an echo endpoint, and recommend for it "
        "(default for the recommendation: the bundled mixed trace)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.05,
                                           help="seconds each network step may take")] = 3.0,
    idle_wait: Annotated[float, typer.Option(
        "--idle-wait", min=0, help="seconds to watch idle connections for pings and closes")
    ] = 3.0,
    size_cap: Annotated[int, typer.Option(
        "--size-cap", min=1, help="largest message the size search sends, bytes")] = 64 << 20,
    stack: Annotated[str | None, typer.Option(
        "--stack", help="the server's stack when its Server header does not say: "
        "uvicorn, websockets, aiohttp, nginx, ws, socket.io")] = None,
    subprotocol: Annotated[list[str] | None, typer.Option(
        "--subprotocol", help="a subprotocol to offer (repeat for several)")] = None,
    origin: Annotated[str | None, typer.Option("--origin", help="Origin header to send")
                      ] = None,
    skip: Annotated[list[str] | None, typer.Option(
        "--skip", help="a probe to leave out: matrix, threshold, takeover, max_message, ping, "
        "idle, trace (repeat for several)")] = None,
    messages: Annotated[int, typer.Option("--messages", min=1,
                                          help="trace messages to replay")] = 200,
    recommended: Annotated[Path | None, typer.Option(
        "--recommended", help="compare against this config (from wslab recommend -o) "
        "instead of sweeping")] = None,
    no_advice: Annotated[bool, typer.Option(
        "--no-advice", help="leave out have-vs-recommended (no simulation)")] = False,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="also write the JSON report here (for wslab report --probe)")
    ] = None,
    save_recommended: Annotated[Path | None, typer.Option(
        "--save-recommended", help="write the recommended config here (YAML, or JSON for "
        ".json), ready for wslab export")] = None,
) -> None:
    """Audit URL: handshake, permessage-deflate matrix and RFC 7692 checks, what the server
    really does, and what wslab would recommend instead."""
    from wslab.atomic import atomic_write_text
    from wslab.cli.demo_cmd import bundled_trace
    from wslab.config import TuningConfig
    from wslab.harness.probe import ProbeOptions, run_probe
    from wslab.harness.probe_wire import parse_target
    from wslab.traces.io import read_trace
    from wslab.tune.probe_advice import advise, guess_stack

    target = parse_target(url, allow_remote=allow_remote)
    if stack is not None:
        guess_stack(None, stack)  # an unknown stack fails before any work
    want = TuningConfig.load(recommended) if recommended is not None else None
    opts = ProbeOptions(timeout=timeout, idle_wait=idle_wait, size_cap=size_cap,
                        subprotocols=tuple(subprotocol or ()), origin=origin,
                        trace=read_trace(trace) if trace is not None else None,
                        trace_messages=messages, skip=frozenset(skip or ()))
    report = run_probe(target, opts)
    reachable = (report.get("handshake") or {}).get("status") == 101
    if reachable and not no_advice:
        report["advice"] = advise(report, trace or bundled_trace("mixed"), stack=stack,
                                  recommended=want)
    if save_recommended is not None and "advice" in report:
        TuningConfig.model_validate(report["advice"]["recommended_config"]).save(
            save_recommended)
        report["advice"]["export_command"] = (report["advice"]["export_command"] or "").replace(
            "recommended.yaml", str(save_recommended)) or None
    if output is not None:
        atomic_write_text(output, json.dumps(json_safe(report), indent=2))
    if as_json:
        print_json(report)
    else:
        show(report)
    if not report.get("ok"):
        raise typer.Exit(1)


def show(report: dict[str, Any]) -> None:
    """The report as rich tables, problems last."""
    from wslab.tune.probe_report import (
        LEGEND,
        advice_rows,
        behaviour_rows,
        headline,
        matrix_rows,
    )

    lines = headline(report)
    for line in lines[:-1]:
        out.print(line, markup=False)
    if report.get("matrix"):
        out.print(rows_table("offers and answers (RFC 7692, x-wslab-zstd)",
                             matrix_rows(report), no_wrap=("offer", "outcome", "agreed")))
        out.print(LEGEND, markup=False)
    if report.get("behaviour"):
        out.print(rows_table("what the server does", behaviour_rows(report)))
    advice = report.get("advice")
    if advice:
        out.print(rows_table(f"have vs recommended ({advice['messages']} messages of "
                             f"{Path(advice['trace']).name}, link {advice['link']})",
                             advice_rows(advice)))
        out.print(advice["diff_text"], markup=False, end="")
        out.print(advice["assumed"], markup=False)
        if advice.get("export_command"):
            out.print(f"export for {advice['stack']}: {advice['export_command']}",
                      markup=False)
    for line in report.get("problems") or ():
        out.print(f"PROBLEM {line}", markup=False)
    out.print(lines[-1], markup=False)


def rows_table(title: str, rows: list[dict[str, Any]],
               no_wrap: tuple[str, ...] = ()) -> Table:
    """A rich table of tidy rows (numbers right-aligned)."""
    table = Table(title=title)
    columns = list(rows[0]) if rows else []
    for column in columns:
        numeric = any(isinstance(r[column], float | int) and not isinstance(r[column], bool)
                      for r in rows)
        table.add_column(column, justify="right" if numeric else "left",
                         no_wrap=column in no_wrap)
    for row in rows:
        table.add_row(*(fmt_value(row[c]) for c in columns))
    return table
