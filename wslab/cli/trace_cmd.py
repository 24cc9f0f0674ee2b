"""``wslab trace``: generate, import and describe traces."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from wslab.cli.common import err, out, print_json

app = typer.Typer(help="Make, import and describe message traces.", no_args_is_help=True)


@app.command("generate")
def generate(
    kind: Annotated[str, typer.Argument(help="chat | game | market | telemetry | sensor | mixed")],
    output: Annotated[Path, typer.Option("-o", "--output", help=".jsonl or .jsonl.zst")],
    messages: Annotated[int, typer.Option("--messages", "-n", min=1)] = 20_000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Generate a seeded synthetic trace that looks like real traffic."""
    from wslab.traces.generate import generate as make
    from wslab.traces.io import write_trace

    trace = make(kind, messages, seed)
    write_trace(trace, output)
    out.print(f"wrote {output}: {len(trace)} messages, {trace.payload_bytes} payload bytes, "
              f"{trace.duration:.1f} s")


@app.command("import")
def import_(
    har: Annotated[Path, typer.Argument(help="a HAR file exported from browser dev tools")],
    output: Annotated[Path, typer.Option("-o", "--output", help=".jsonl or .jsonl.zst")],
    keep_payload_secrets: Annotated[bool, typer.Option(
        "--keep-payload-secrets",
        help="copy messages verbatim: no redaction of tokens, passwords, API keys and JWTs "
             "inside them")] = False,
) -> None:
    """Turn the WebSocket messages of a HAR export into a trace (no headers, cookies or
    query strings copied; secrets inside messages replaced by same-length stand-ins)."""
    from wslab.traces.har import import_har
    from wslab.traces.io import write_trace

    result = import_har(har, keep_payload_secrets=keep_payload_secrets)
    write_trace(result.trace, output)
    out.print(f"wrote {output}: {result.messages} messages from {result.sockets} "
              f"WebSocket connection(s)")
    if keep_payload_secrets:
        out.print("  secrets inside messages kept as captured (--keep-payload-secrets)")
    else:
        total = sum(result.redacted.values())
        detail = ", ".join(f"{n} x {rule}" for rule, n in sorted(result.redacted.items()))
        out.print(f"  redacted {total} secret value(s) inside messages (same length, same "
                  f"character classes){': ' + detail if detail else ''}")
    for what, count in sorted(result.dropped.items()):
        err.print(f"  dropped {count} x {what}")


@app.command("info")
def info(
    path: Annotated[Path, typer.Argument(help="a trace file")],
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Counts, bytes, duration and rate, per type and direction."""
    from wslab.traces.info import describe
    from wslab.traces.io import read_trace

    described = describe(read_trace(path))
    data = described.to_dict()
    if json_out:
        print_json(data)
        return
    summary = {k: v for k, v in data.items() if not isinstance(v, (list, dict))}
    out.print(f"[bold]{path}[/bold]")
    for key, value in summary.items():
        out.print(f"  {key}: {value:.6g}" if isinstance(value, float) else f"  {key}: {value}")
    table = Table(show_lines=False)
    frame = described.by_type
    for col in frame.columns:
        table.add_column(str(col), justify="left" if frame[col].dtype == object else "right")
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    out.print(table)
