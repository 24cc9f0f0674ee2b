"""``wslab bench``, ``wslab serve`` and ``wslab load``: live runs on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from wslab.cli.common import err, fmt_value, out, print_json


def _config(path: Path | None) -> Any:
    from wslab.config import TuningConfig

    return TuningConfig.load(path) if path else TuningConfig()


Dictionaries = Annotated[Path | None, typer.Option(
    "--dictionaries", help="zstd-dict: the dictionary set file both peers hold "
    "(wslab export --trace writes one)")]


def _dictionaries(path: Path | None) -> Any:
    if path is None:
        return None
    from wslab.codecs.zstd_dict import DictionarySet

    return DictionarySet.load(path)


def bench(
    trace_path: Annotated[Path, typer.Argument(metavar="TRACE", help="a trace file")],
    config_path: Annotated[Path | None, typer.Option("--config", "-c")] = None,
    link: Annotated[str | None, typer.Option("--link", help="shape the link (a profile)")] = None,
    connections: Annotated[int, typer.Option("--connections", "-n", min=1)] = 1,
    duration: Annotated[float | None, typer.Option("--duration", help="seconds of trace")] = 10.0,
    speed: Annotated[float, typer.Option("--speed", help="replay speed factor")] = 1.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    client: Annotated[str, typer.Option(
        "--client", help="who plays the client side: load (wslab's Python load client) or "
        "chromium (headless Chromium's own WebSocket, driven by Playwright)")] = "load",
    chromium: Annotated[str | None, typer.Option(
        "--chromium", help="--client chromium: the browser executable (default "
        "$WSLAB_CHROMIUM or /usr/bin/chromium)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Run TRACE live (server, shaper, client in separate processes) beside the simulator."""
    from wslab.harness.bench import BenchOptions, run_bench

    options = BenchOptions(link=link, connections=connections, duration=duration, speed=speed,
                           seed=seed, client=client, chromium=chromium)
    result = run_bench(trace_path, _config(config_path), options,
                       progress=None if json_out else (lambda m: err.print(f"[dim]{m}[/dim]")))
    if json_out:
        print_json(result.summary)
        return
    out.print(bench_table(result.summary))


def bench_table(summary: dict[str, Any]) -> Table:
    """Measured beside predicted, one row per figure."""
    p = summary["predicted"]
    table = Table(title=f"live on {summary['link']}: {summary['connections']} connection(s)")
    for col in ("figure", "measured", "simulated", "diff"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for key in ("frames", "ws_bytes", "compressed_bytes", "tcp_bytes", "tcp_segments",
                "compression_ratio", "cpu_us_per_msg"):
        m, s = summary.get(key), p.get(key)
        diff = f"{(m - s) / s * 100:+.1f} %" if m is not None and s else ""
        table.add_row(key, fmt_value(m), fmt_value(s), diff)
    for pct in ("p50", "p90", "p95", "p99", "max"):
        m, s = summary["latency_ms"][pct], p["latency_ms"][pct]
        diff = f"{(m - s) / s * 100:+.1f} %" if m is not None and s else ""
        table.add_row(f"latency {pct} ms", fmt_value(m), fmt_value(s), diff)
    table.add_row("lost/dup/reordered", f"{summary['lost']}/{summary['duplicated']}/"
                  f"{summary['reordered']}", "0/0/0", "")
    table.add_row("frames sent uncompressed", fmt_value(summary.get("frames_plain")),
                  fmt_value(p.get("frames_plain")), "")
    decisions = summary.get("decisions") or {}
    if decisions.get("compared"):
        table.add_row("compress decisions as simulated",
                      f"{decisions['compared'] - decisions['differ']:,} of "
                      f"{decisions['compared']:,} frames", "", "")
    if summary.get("client") == "chromium":
        table.add_row("client", str(summary.get("browser")), "", "")
        table.add_row("offered", str(summary.get("offered") or "none"), "", "")
        late = summary.get("schedule_late_ms") or {}
        if late.get("p50") is not None:
            table.add_row("page late on schedule p50/p99 ms",
                          f"{late['p50']:.2f} / {late['p99']:.2f}", "", "")
    table.add_row("negotiated", str(summary.get("negotiated") or "none"), "", "")
    table.add_row("subprotocol", str(summary.get("subprotocol") or "none"), "", "")
    table.add_row("server CPU s / RSS KiB",
                  f"{summary['cpu_server_s']:.2f} / {summary['rss_server_kib']:,}", "", "")
    return table



def serve(
    config_path: Annotated[Path | None, typer.Option("--config", "-c")] = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8765,
    scenario: Annotated[
        str, typer.Option("--scenario", help="echo|replay|broadcast|room")
    ] = "echo",
    trace_path: Annotated[Path | None, typer.Option("--trace")] = None,
    speed: Annotated[float, typer.Option("--speed")] = 1.0,
    origin: Annotated[list[str] | None, typer.Option("--origin", help="allowed Origin")] = None,
    dictionaries_path: Dictionaries = None,
    processing: Annotated[str, typer.Option(
        "--processing", help="handle what clients send (parse JSON, sum numeric fields per "
        "message type): off | batched (one handler call per batch of one type) | "
        "per-message")] = "off",
    batch_max: Annotated[int, typer.Option(
        "--batch-max", min=1, help="--processing batched: messages per handler call at most")
    ] = 100,
    batch_linger_ms: Annotated[float, typer.Option(
        "--batch-linger-ms", min=0.0, help="--processing batched: how long the oldest "
        "message may wait for its batch to fill")] = 0.0,
) -> None:
    """A tuned wslab server alone (Ctrl-C stops it); Prometheus figures at /metrics."""
    from wslab.errors import WslabError
    from wslab.harness.events import ProcessingQueue
    from wslab.harness.lifeline import INTERRUPT_GRACE_S
    from wslab.harness.server import LiveServer
    from wslab.traces.io import read_trace

    if processing not in ("off", "batched", "per-message"):
        raise WslabError(f"--processing {processing!r}: expected off, batched or per-message")
    config = _config(config_path)
    dictionaries = _dictionaries(dictionaries_path)
    trace = read_trace(trace_path) if trace_path else None
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[bold red]warning:[/bold red] binding {host}: reachable from other machines")

    async def main() -> None:
        queue = None if processing == "off" else ProcessingQueue(
            max_batch=batch_max if processing == "batched" else 1,
            linger_ms=batch_linger_ms if processing == "batched" else 0.0)
        server = LiveServer(config, scenario=scenario, trace=trace, speed=speed, host=host,
                            port=port, origins=origin or None, record=False,
                            dictionaries=dictionaries, processing=queue)
        try:
            bound = await server.start()
        except OSError as exc:
            from wslab.errors import WslabError

            raise WslabError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        out.print(f"wslab serving {scenario} on ws://{host}:{bound}/ "
                  f"(metrics: http://{host}:{bound}/metrics)")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        # A peer that never answers the closing handshake would hold the exit for its
        # close_timeout (up to 10 s, server.close_timeout); it gets INTERRUPT_GRACE_S, then
        # is dropped.
        try:
            await asyncio.wait_for(server.stop(), INTERRUPT_GRACE_S)
        except TimeoutError:
            for session in list(server.sessions.values()):  # else each waits it out still
                if session.ws.transport is not None:
                    session.ws.transport.abort()
            err.print(f"[dim]closing handshakes unanswered after {INTERRUPT_GRACE_S:g} s: "
                      "those connections were dropped[/dim]")
        if queue is not None:
            st = queue.stats()
            per = (f", mean batch {st['mean_batch']:.1f}, "
                   f"{st['handler_us_per_item']:.2f} us per message" if st["items"] else "")
            out.print(f"processed {st['items']:,} messages ({processing}) in "
                      f"{st['batches']:,} handler calls{per}")

    asyncio.run(main())


def load(
    url: Annotated[str, typer.Argument(help="ws://HOST:PORT/PATH")],
    trace_path: Annotated[Path, typer.Option("--trace", help="messages to send")],
    config_path: Annotated[Path | None, typer.Option("--config", "-c")] = None,
    connections: Annotated[int, typer.Option("--connections", "-n", min=1)] = 1,
    rate: Annotated[float, typer.Option("--rate", help="connections per second")] = 100.0,
    speed: Annotated[float, typer.Option("--speed")] = 1.0,
    allow_remote: Annotated[bool, typer.Option("--allow-remote")] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
    dictionaries_path: Dictionaries = None,
) -> None:
    """Load any WebSocket server with a trace's messages (expects them echoed back)."""
    from wslab.errors import WslabError
    from wslab.harness.client import LoadClient, check_target, run_load
    from wslab.harness.recorder import join_stream
    from wslab.traces.io import read_trace

    check_target(url, allow_remote)
    client = LoadClient(url, _config(config_path), trace=read_trace(trace_path),
                        connections=connections, rate=rate, speed=speed,
                        allow_remote=allow_remote,
                        dictionaries=_dictionaries(dictionaries_path))
    result = run_load(client)
    errors = [c["error"] for c in result.connections if c.get("error")]
    if len(errors) == len(result.connections):
        raise WslabError(f"{url}: no connection succeeded: {errors[0]}")
    sent = client.recorder.sent_frame()
    received = client.recorder.received_frame()
    rows, counts = join_stream(sent.assign(dir="s2c"), received)
    rtt = rows["latency_ms"]
    elapsed = result.finished - result.started
    summary = {"connections": len(result.connections), "failed": len(errors),
               "messages_sent": len(sent), "messages_received": len(received), **counts,
               "elapsed_s": elapsed,
               "received_per_s": len(received) / elapsed if elapsed > 0 else None,
               "client_cpu_s": result.cpu_s,
               "rtt_ms": {"p50": rtt.quantile(0.5), "p99": rtt.quantile(0.99),
                          "max": rtt.max()},
               "negotiated": next((c.get("extensions") for c in result.connections
                                   if not c.get("error")), None)}
    if json_out:
        print_json(summary)
    else:
        out.print(json.dumps(summary, indent=2, default=str))
