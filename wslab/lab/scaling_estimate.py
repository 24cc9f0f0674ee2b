"""What N connections cost, before anything runs: the scaling panel's arithmetic.

What lives here: :func:`estimate` and its :class:`Estimate` (memory per connection from a
fixed base plus zlib's formula, kernel socket memory, file descriptors, ephemeral ports,
admission headroom and heartbeat traffic, set against this machine's limits through
:func:`wslab.harness.loadplan.plan_load`), each resource as a :class:`Usage`, and the
compression variants the panel compares (:data:`VARIANTS`, :func:`variant_compression`);
:func:`estimate_rows`, the estimate as the panel's table rows.
What must not live here: figures (``scaling_figures.py``), anything that runs
(``scaling_jobs.py``, the scale layer).

| resource (Usage)         | used                                  | against                   |
|--------------------------|---------------------------------------|---------------------------|
| descriptors per worker   | busiest worker's conns + ``FD_SLACK`` | hard ``RLIMIT_NOFILE``    |
| ... per client process   | its conns + ``FD_SLACK``              | hard ``RLIMIT_NOFILE``    |
| ports per source address | connections / addresses               | the ephemeral range       |
| connections per worker   | busiest worker's conns                | ``max_connections``       |
| ping interval (if any)   | ``heartbeat_interval_s``              | nginx's 60 s read timeout |

The figures used here are sourced, not measured: 14 KiB per connection without compression
(the python-websockets docs; a connection object, its buffers and the asyncio transport) and
about 4 KiB of kernel memory per socket that RSS does not show (Centrifugo's 2026 write-up);
both are listed in ``/work/shared/FIELD-NOTES.md`` ("Connections in practice").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from wslab.config import CompressionConfig, TuningConfig
from wslab.harness.loadplan import BALANCE_SLACK, FD_SLACK, plan_load
from wslab.tune.sweep import memory_estimate_kib

BASE_KIB = 14.0
"""Memory per connection without compression (python-websockets docs: ~14 KiB)."""
KERNEL_KIB = 4.0
"""Kernel socket memory per connection, outside RSS (Centrifugo: ~4 KB per socket)."""
DOCS_KIB = {"off": 14.0, "websockets default": 64.0}
"""What the websockets docs quote per connection: compression off, and default deflate."""
NGINX_READ_TIMEOUT_S = 60.0
"""nginx's default ``proxy_read_timeout``: a quiet upgraded connection is closed after it."""
PING_BYTES = 6 + 10 + 2 * 52
"""One heartbeat on the wire: a ping with a 4-byte payload (2-byte header, unmasked, from
the server), the masked pong (2 + 4 + 4), and one TCP/IP header (52 bytes) for each."""
VARIANTS = ("off", "websockets default", "configured")


def variant_compression(variant: str, configured: CompressionConfig) -> CompressionConfig:
    """The compression section a variant of the compression control stands for.

    Args:
        variant: ``"off"``, ``"websockets default"`` or ``"configured"``.
        configured: The panel's own settings (used for ``"configured"``, and as the base of
            ``"off"``, which keeps them but turns the algorithm off).
    """
    if variant == "off":
        return configured.model_copy(update={"algorithm": "none"})
    if variant == "websockets default":
        return CompressionConfig()
    if variant == "configured":
        return configured
    raise ValueError(f"unknown compression variant {variant!r}; known: {', '.join(VARIANTS)}")


@dataclass(slots=True)
class Usage:
    """One resource a run needs, against the limit that stops it.

    Attributes:
        name: What is counted.
        used: How much the run needs.
        limit: How much there is.
        note: The numbers in words.
    """

    name: str
    used: float
    limit: float
    note: str

    @property
    def percent(self) -> float:
        """``used`` as a share of ``limit``, in percent."""
        return 100.0 * self.used / self.limit if self.limit else math.inf


@dataclass(slots=True)
class Estimate:
    """What a number of connections costs, from formulas and limits only.

    Attributes:
        connections: Connections held at once.
        workers: Server worker processes.
        per_worker: Connections the busiest worker holds (uneven spread included).
        variant: The compression variant selected.
        memory_kib: Per variant: (fixed base, compression state) per connection, KiB.
        kernel_kib: Kernel socket memory per connection (not in RSS), KiB.
        usage: Resources against their limits.
        client_processes: Client processes the load needs.
        source_addresses: 127.0.0.x source addresses the load needs.
        pings_per_s: Heartbeats per second across all connections.
        heartbeat_bytes_per_s: Their bytes on the wire per second (both directions).
        problems: Why the run cannot happen as set (the scale layer would refuse it).
        warnings: What would go wrong in production with these settings.
    """

    connections: int
    workers: int
    per_worker: int
    variant: str
    memory_kib: dict[str, tuple[float, float]]
    kernel_kib: float
    usage: list[Usage]
    client_processes: int
    source_addresses: int
    pings_per_s: float
    heartbeat_bytes_per_s: float
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def per_connection_kib(self) -> float:
        """Process memory per connection of the selected variant (base + compression)."""
        base, comp = self.memory_kib[self.variant]
        return base + comp

    @property
    def server_mib(self) -> float:
        """Memory of all workers together for every connection, RSS plus kernel, MiB."""
        return self.connections * (self.per_connection_kib + self.kernel_kib) / 1024


def estimate(config: TuningConfig, connections: int, variant: str,
             configured: CompressionConfig) -> Estimate:
    """The cost of holding ``connections`` with ``config``, without running anything.

    Args:
        config: The panel's config (``scaling`` and the effective ``compression``).
        connections: Connections to hold at once.
        variant: The selected compression variant (see :data:`VARIANTS`).
        configured: The panel's own compression settings (for the ``configured`` bars).
    """
    sc = config.scaling
    memory = {
        v: (BASE_KIB, memory_estimate_kib(config.model_copy(
            update={"compression": variant_compression(v, configured)})))
        for v in VARIANTS
    }
    plan = plan_load(connections, sc.workers, max_connections=sc.max_connections)
    per_worker = math.ceil(connections / sc.workers * (BALANCE_SLACK if sc.workers > 1 else 1))
    per_process = max(plan.per_process)
    addresses = len(plan.source_addresses)
    per_address = math.ceil(connections / addresses)
    heartbeat = sc.heartbeat_interval_s
    usage = [
        Usage("descriptors per worker", per_worker + FD_SLACK, plan.fd_limit,
              f"{per_worker:,} sockets + {FD_SLACK} spare of {plan.fd_limit:,} files"),
        Usage("descriptors per client process", per_process + FD_SLACK, plan.fd_limit,
              f"{per_process:,} sockets in each of {plan.client_processes} process(es)"),
        Usage("ports per source address", per_address, plan.ports_per_address,
              f"{per_address:,} of {plan.ports_per_address:,} ephemeral ports on each of "
              f"{addresses} address(es)"),
        Usage("connections per worker vs max_connections", per_worker, sc.max_connections,
              f"{per_worker:,} of max_connections {sc.max_connections:,}"),
    ]
    if heartbeat is not None:
        usage.append(Usage("ping interval vs nginx proxy_read_timeout", heartbeat,
                           NGINX_READ_TIMEOUT_S,
                           f"a ping every {heartbeat:g} s; nginx closes after "
                           f"{NGINX_READ_TIMEOUT_S:g} s of silence"))
    warnings = []
    if sc.broker == "memory" and sc.workers > 1:
        warnings.append("the memory broker cannot fan out across worker processes: "
                        "choose redis for more than one worker")
    if heartbeat is None:
        warnings.append("no heartbeat: dead peers are never noticed, and nginx closes quiet "
                        f"connections after {NGINX_READ_TIMEOUT_S:g} s")
    elif heartbeat >= NGINX_READ_TIMEOUT_S:
        warnings.append(f"pings every {heartbeat:g} s are not more frequent than nginx's "
                        f"default proxy_read_timeout ({NGINX_READ_TIMEOUT_S:g} s): raise "
                        "proxy_read_timeout (wslab's nginx export does)")
    pings = connections / heartbeat if heartbeat else 0.0
    return Estimate(connections, sc.workers, per_worker, variant, memory, KERNEL_KIB, usage,
                    plan.client_processes, addresses, pings, pings * PING_BYTES,
                    list(plan.problems), warnings)


def estimate_rows(result: Estimate) -> list[tuple[str, ...]]:
    """The estimate table's rows: (what, value, where it comes from)."""
    base, comp = result.memory_kib[result.variant]
    gib = result.server_mib / 1024
    return [
        ("memory per connection (process)",
         f"{base + comp:.1f} KiB", f"{BASE_KIB:g} KiB base + {comp:.1f} KiB compression"),
        ("kernel socket memory (not in RSS)", f"{result.kernel_kib:g} KiB",
         "per connection, server side"),
        ("all connections",
         f"{gib:.2f} GiB" if gib >= 1 else f"{result.server_mib:.0f} MiB",
         f"{result.connections:,} over {result.workers} worker(s), busiest holds "
         f"{result.per_worker:,}"),
        ("file descriptors on this host", f"{2 * result.connections:,}",
         "two per loopback connection (server end + client end)"),
        ("client processes / source addresses",
         f"{result.client_processes} / {result.source_addresses}",
         "127.0.0.2 onwards, as the scale layer spreads them"),
        ("heartbeat traffic", f"{result.pings_per_s:,.0f} pings/s",
         f"{result.heartbeat_bytes_per_s / 1024:,.1f} KiB/s on the wire"),
    ]
