"""``wslab plan``: a capacity plan on paper for N connections, redone with the user's figures.

What lives here: the typer command :func:`plan` (options in, a rich table or one JSON object
out). The arithmetic is :func:`wslab.tune.capacity.plan_capacity`; each option's default is
a figure measured on the machine wslab is built on, named in ``capacity.SOURCES`` and in
``docs/scaling-out.md``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from wslab.cli.common import err, fmt_value, out, print_json
from wslab.tune import capacity as cap


def plan(
    connections: Annotated[int, typer.Option("--connections", "-n",
                                             help="connections held at once")],
    compression: Annotated[str, typer.Option("--compression", help="deflate | none")
                           ] = "deflate",
    mem_kib: Annotated[float | None, typer.Option(
        "--mem-kib-per-conn", help="server memory per connection, KiB (default: measured "
        f"here, {cap.MEM_DEFLATE_KIB} deflate / {cap.MEM_OFF_KIB} off)")] = None,
    window_bits: Annotated[int, typer.Option("--window-bits",
                                             help="deflate server window bits")] = 12,
    mem_level: Annotated[int, typer.Option("--mem-level", help="deflate memLevel")] = 5,
    kernel_kib: Annotated[float, typer.Option(
        "--kernel-kib-per-conn", help="kernel socket memory outside RSS, KiB")
    ] = cap.KERNEL_KIB_PER_CONN,
    client_kib: Annotated[float | None, typer.Option(
        "--client-kib-per-conn", help="client memory per connection, KiB (default: the "
        "server's)")] = None,
    ram: Annotated[float, typer.Option("--ram-gib-per-host")] = cap.RAM_GIB_PER_HOST,
    ram_usable: Annotated[float, typer.Option(
        "--ram-usable", help="share of RAM the plan may fill")] = 0.75,
    cores: Annotated[int, typer.Option("--cores-per-host")] = cap.CORES_PER_HOST,
    cpu_busy: Annotated[float, typer.Option(
        "--cpu-busy-max", help="average share of a core a process may be busy")] = 0.5,
    per_worker: Annotated[int, typer.Option("--conns-per-worker")] = cap.CONNS_PER_WORKER,
    per_holder: Annotated[int, typer.Option("--conns-per-holder")] = cap.CONNS_PER_HOLDER,
    fd_limit: Annotated[int, typer.Option("--fd-limit", help="descriptors per process")
                        ] = cap.FD_LIMIT,
    broadcasts: Annotated[float, typer.Option(
        "--broadcasts-per-s", help="broadcasts to every connection per second")] = 1.0,
    directs: Annotated[float, typer.Option(
        "--directs-per-s", help="messages to one connection per second")] = 0.0,
    message_bytes: Annotated[int, typer.Option("--message-bytes")] = 256,
    ratio: Annotated[float, typer.Option(
        "--compression-ratio", help="compressed / original bytes of a broadcast (yours: "
        "wslab simulate --json)")] = 1.0,
    send_us: Annotated[float, typer.Option(
        "--send-us-per-conn", help="worker CPU per connection per broadcast, us")
    ] = cap.SEND_US_PER_CONN,
    compress_us: Annotated[float, typer.Option(
        "--compress-us-per-conn", help="deflate: worker CPU to compress one broadcast for "
        "one connection, us")] = cap.COMPRESS_US_PER_CONN,
    receipt_us: Annotated[float, typer.Option(
        "--receipt-us", help="client CPU per received broadcast, us")] = cap.RECEIPT_US,
    ping_interval: Annotated[float, typer.Option("--ping-interval-s")] = 20.0,
    ping_us: Annotated[float, typer.Option(
        "--ping-us", help="server CPU per ping/pong round, us")] = cap.PING_US,
    ports: Annotated[int, typer.Option(
        "--ports-per-address", help="ephemeral ports per source address and destination")
    ] = cap.PORTS_PER_ADDRESS,
    sources: Annotated[int, typer.Option(
        "--source-addresses", help="source addresses per client host")] = 1,
    destinations: Annotated[int, typer.Option(
        "--destinations", help="server address:port pairs the clients connect to")] = 1,
    redis: Annotated[float, typer.Option(
        "--redis-deliveries-per-s", help="pub/sub deliveries one Redis shard sustains")
    ] = cap.REDIS_DELIVERIES_PER_S,
    nginx: Annotated[bool, typer.Option("--nginx", help="nginx in front of the workers")
                     ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Machines, workers, holders, memory, CPU, Redis shards, ports and heartbeat traffic
    for N connections. Every default is a figure measured here; pass your own."""
    inputs = cap.CapacityInputs(
        connections=connections, compression=compression, mem_kib_per_conn=mem_kib,
        window_bits=window_bits, mem_level=mem_level, kernel_kib_per_conn=kernel_kib,
        client_kib_per_conn=client_kib, ram_gib_per_host=ram, ram_usable=ram_usable,
        cores_per_host=cores, cpu_busy_max=cpu_busy, conns_per_worker=per_worker,
        conns_per_holder=per_holder, fd_limit=fd_limit, broadcasts_per_s=broadcasts,
        directs_per_s=directs, message_bytes=message_bytes, compression_ratio=ratio,
        send_us_per_conn=send_us, compress_us_per_conn=compress_us, receipt_us=receipt_us,
        ping_interval_s=ping_interval,
        ping_us=ping_us, ports_per_address=ports, source_addresses=sources,
        destinations=destinations, redis_deliveries_per_s=redis, nginx=nginx)
    result = cap.plan_capacity(inputs)
    if json_out:
        print_json(result.to_dict())
        return
    table = Table(title=f"capacity plan for {connections:,} connections "
                        f"(compression {compression})")
    for name, justify in (("quantity", "left"), ("value", "right"), ("unit", "left"),
                          ("formula", "left"), ("inputs", "left")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in result.rows:
        used = ", ".join(f"{k}={_figure(v)}" for k, v in r["inputs"].items())
        table.add_row(r["quantity"], _figure(r["value"]), r["unit"], r["formula"], used)
    out.print(table)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    out.print("[dim]defaults measured here: " + "; ".join(
        f"{k}: {v}" for k, v in cap.SOURCES.items()) + "[/dim]")


def _figure(value: object) -> str:
    """A plan figure: thousands separators, no trailing zeros (36 KiB, not 36.000)."""
    if isinstance(value, float) and abs(value) < 100:
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return fmt_value(value)
