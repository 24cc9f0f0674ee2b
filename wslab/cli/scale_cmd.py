"""``wslab scale``: many connections, worker processes, Redis fan-out, nginx in front.

What lives here: the typer command :func:`scale` (argument parsing and printing only; the
run is :func:`wslab.harness.scale.run_scale`, the storm
:func:`~wslab.harness.scale_modes.run_storm` and the memory comparison
:func:`~wslab.harness.scale_modes.memory_matrix`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from wslab.cli.common import err, fmt_value, out, print_json


def scale(
    config_path: Annotated[Path | None, typer.Option("--config", "-c")] = None,
    connections: Annotated[int, typer.Option("--connections", "-n", min=1)] = 1000,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=64)] = 1,
    balancer: Annotated[str, typer.Option("--balancer", help="reuseport | nginx")] = "reuseport",
    broker: Annotated[str | None, typer.Option(
        "--broker", help="memory | redis | redis-cluster (sharded pub/sub); default: "
                         "redis for several workers")] = None,
    redis: Annotated[str | None, typer.Option(
        "--redis", "--redis-url",
        help="redis://HOST:PORT; for redis-cluster one or more seed nodes, comma-separated "
             "(default: start a private redis-server, or a 3-node cluster)")] = None,
    port: Annotated[int, typer.Option("--port", help="listen port (0: any free one)")] = 0,
    broadcasts: Annotated[int, typer.Option("--broadcasts", min=0)] = 5,
    size: Annotated[int, typer.Option("--size", help="broadcast message bytes")] = 256,
    interval: Annotated[float, typer.Option(
        "--broadcast-interval", min=0.0, help="seconds between broadcasts")] = 0.5,
    directs: Annotated[int, typer.Option("--directs", min=0)] = 20,
    idle: Annotated[float, typer.Option("--idle", help="seconds idle with heartbeats")] = 3.0,
    rate: Annotated[float, typer.Option("--rate", help="connections/s (0: as fast as can be)")
                    ] = 0.0,
    shared: Annotated[bool, typer.Option(
        "--shared-broadcast", help="compress each broadcast once (no context takeover)")
    ] = False,
    gc_freeze: Annotated[bool, typer.Option(
        "--gc-freeze/--no-gc-freeze",
        help="workers freeze long-lived objects out of Python's full GC scans")] = True,
    storm: Annotated[bool, typer.Option(
        "--storm", help="admission control: --connections beyond max_connections")] = False,
    memory: Annotated[bool, typer.Option(
        "--memory-matrix", help="memory per connection: off, default deflate, config")] = False,
    session_broadcast: Annotated[bool, typer.Option(
        "--session-broadcast",
        help="send each broadcast through every connection's session, not as one "
             "prepared frame")] = False,
    holders: Annotated[int | None, typer.Option(
        "--holders", min=1, help="client processes holding the connections (default: "
                                 "one per 5,000, at most 4)")] = None,
    cluster: Annotated[str | None, typer.Option(
        "--cluster", help="run the holders on Dask: 'local' (a LocalCluster) or a scheduler "
                          "address tcp://HOST:PORT; the servers still run here")] = None,
    callback_host: Annotated[str, typer.Option(
        "--callback-host", help="with --cluster on other hosts: this machine's address the "
                                "Dask holders connect back to (default loopback)")
    ] = "127.0.0.1",
    url: Annotated[str | None, typer.Option(
        "--url", help="load a server fleet you run (ws://HOST:PORT/PATH) instead of starting "
                      "wslab's workers: ramp, connections held and closed, close codes")] = None,
    allow_remote: Annotated[bool, typer.Option(
        "--allow-remote", help="--url may name another host (only servers you run)")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Hold many connections over workers and measure ramp, memory, CPU and fan-out.

    With --url the servers are yours (a fleet wslab did not start, on this machine or, with
    --allow-remote, another): the holders -- here or on Dask workers with --cluster -- open,
    hold and count the connections; broadcasts, directs and server memory need wslab's own
    workers and are listed as not measured.
    """
    from wslab.config import TuningConfig
    from wslab.harness.scale import ScaleOptions, run_scale
    from wslab.harness.scale_modes import memory_matrix, run_storm

    config = TuningConfig.load(config_path) if config_path else TuningConfig()
    opts = ScaleOptions(connections=connections, workers=workers, balancer=balancer,
                        broker=broker, redis_url=redis, port=port, broadcasts=broadcasts,
                        message_size=size, broadcast_interval_s=interval, directs=directs,
                        idle_s=idle, rate=rate, shared_broadcast=shared, gc_freeze=gc_freeze,
                        prepared_broadcast=not session_broadcast, holders=holders,
                        nginx_conf=nginx_conf if balancer == "nginx" else None)
    opts.cluster = cluster
    opts.fleet_url, opts.allow_remote = url, allow_remote
    opts.callback_host = callback_host
    if url is not None and (storm or memory):
        from wslab.errors import WslabError

        raise WslabError("--url loads a fleet you run; --storm and --memory-matrix measure "
                         "wslab's own workers")
    if cluster is not None and (storm or memory):
        from wslab.errors import WslabError

        raise WslabError("--cluster runs the holders of the main run on Dask; "
                         "--storm and --memory-matrix run on this machine only")
    say = None if json_out else (lambda m: err.print(f"[dim]{m}[/dim]"))
    summary: dict[str, Any]
    if storm:
        summary = run_storm(config, connections, progress=say)
    elif memory:
        summary = {"memory_per_connection_kib": memory_matrix(config, opts, progress=say)}
    else:
        summary = run_scale(config, opts, progress=say).summary
    if json_out:
        print_json(summary)
        return
    out.print(_table(summary))


def nginx_conf(config: Any, upstream_port: int, listen_port: int) -> str:
    """``nginx.conf`` from the exporter, for ``--balancer nginx``."""
    from wslab.tune.export import render_nginx

    return render_nginx(config, upstream_port=upstream_port,
                        listen_port=listen_port)["nginx.conf"]


def _table(summary: dict[str, Any]) -> Table:
    table = Table(title="wslab scale")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key == "clock_offsets":  # holders on Dask: one row each
            for row in value:
                table.add_row(f"clock of holder {row['holder']}", _clock(row))
            continue
        # a latency measured across clocks carries their remaining uncertainty
        spread = summary.get(key.replace("_latency_ms", "_latency_uncertainty_ms"))
        if isinstance(value, dict) and key.endswith("_latency_ms") and spread is not None:
            value = ", ".join(f"{k} {fmt_value(v)} ± {spread:.3f}" for k, v in value.items())
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {fmt_value(v)}" for k, v in value.items())
        elif isinstance(value, list) and len(value) > 8:
            value = f"{len(value)} values"
        table.add_row(key, fmt_value(value))
    return table


def _clock(row: dict[str, Any]) -> str:
    where = f"pid {row['pid']} on {row.get('worker') or row['host']}"
    if row.get("offset_ms") is None:
        return where
    return f"{where}: offset {row['offset_ms']:.3f} ± {row['uncertainty_ms']:.3f} ms"
