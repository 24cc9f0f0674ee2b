"""A capacity plan on paper: how many machines, processes and shards N connections need.

What lives here: :class:`CapacityInputs` (every figure the plan uses, each with a default
measured on the machine wslab is built on, see :data:`SOURCES`) and :func:`plan_capacity`,
which turns them into a :class:`CapacityPlan`: tidy rows of (quantity, value, unit, formula
in words, inputs used) and the warnings a reader must not miss. Pure arithmetic: no I/O,
nothing measured here, nothing printed (``wslab plan`` in ``wslab/cli/plan_cmd.py`` does
that). What must not live here: the limits of the machine a run happens on (that is
``wslab.harness.loadplan``, which reads them from the kernel).

The model, quantity by quantity (every "per" is an input a user can replace):

| quantity                 | bounded by                                                   |
|--------------------------|--------------------------------------------------------------|
| server workers           | connections per worker, and descriptors per process         |
| server hosts             | RAM (per connection, plus kernel socket memory), and cores   |
|                          | (one worker per core; busy fan-out + heartbeat CPU)          |
| client hosts (holders)   | source addresses x ephemeral ports, descriptors, cores, RAM  |
| Redis shards             | deliveries per second (a broadcast reaches every worker)     |
| heartbeat traffic        | connections / ping interval x (ping + pong frames)           |

Rounding is always up, and every bound is a non-decreasing function of the connections, so
more connections never need fewer machines.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from wslab.codecs.deflate import deflate_memory_bytes
from wslab.errors import WslabError
from wslab.harness.loadplan import FD_SLACK
from wslab.wire import TCP_IP_HEADER_BYTES, ws_frame_bytes

# --- defaults measured here (docs/performance.md; out/bench/results.parquet) -------------
# benchmarks/bench_scale.py, row "memory per connection, 10000 held, compression off":
# RSS growth of the worker / connections held = 13.23 KiB (docs/performance.md, "scale").
MEM_OFF_KIB = 13.2
# The same benchmark, row "memory per connection, 10000 held, default deflate" (websockets'
# defaults: server window 12 bits, memLevel 5): 48.67 KiB.
MEM_DEFLATE_KIB = 48.7
DEFLATE_MEASURED_AT = (12, 5)  # window bits, memLevel of the row above
# bench_scale.py, row "broadcast to 50000 clients over 5 workers": each worker's own CPU
# for one broadcast (256 bytes, prepared frame, compression off) was 138/130/126/133/129 ms
# with about 10,000 connections each: median 130 ms / 10,000 = 13 us per connection.
SEND_US_PER_CONN = 13.0
# bench_scale.py, row "compression CPU per 4 KiB broadcast to 2000, compressed once": its
# peer, compressing per connection (context takeover), took 32.04 ms per broadcast to 2,000
# connections = 16 us per connection, on top of the send (4 KiB messages).
COMPRESS_US_PER_CONN = 16.0
# The row of SEND_US_PER_CONN: the holders' CPU per broadcast was 724 ms for 50,000
# receipts = 14.5 us.
RECEIPT_US = 14.5
# That row again: 50,000 connections on 5 workers, 10,000 each (scaling.max_connections).
CONNS_PER_WORKER = 10_000
# The same row: 50,000 connections held by 4 holder processes (wslab.harness.loadplan's
# default, at most 4 holders on this 2-core machine) = 12,500 per holder.
CONNS_PER_HOLDER = 12_500
# bench_scale.py, row "idle CPU with 10000 connections, ping every 5 s": 8.33 % of one core
# for 2,000 ping/pong rounds per second = 41.7 us of the worker's CPU per round (the CPU
# figure has clock-tick granularity: treat it as +-1 tick, about +-20 %).
PING_US = 41.7
# Measured here on 2026-12-07 (not a benchmarks/ row): a private redis-server 7.0.15 on
# loopback, two subscribers (redis-cli SUBSCRIBE), then
#   redis-benchmark -p PORT -n 200000 -c 20 -q PUBLISH wslab-bc <256 bytes>
# gave 39,600 PUBLISH/s without pipelining, each delivered twice: 79,000 deliveries/s on
# one core (one Redis node, i.e. one shard).
REDIS_DELIVERIES_PER_S = 79_000.0
# docs/../shared/DESIGN.md section 8 and wslab.harness.loadplan: this machine.
RAM_GIB_PER_HOST = 24.0
CORES_PER_HOST = 2
FD_LIMIT = 20_000
PORTS_PER_ADDRESS = 60999 - 32768 + 1  # ip_local_port_range 32768-60999 = 28,232
# Not measured here: FIELD-NOTES.md (Centrifugo) about 4 KB of kernel memory per socket
# that RSS does not show. Pass --kernel-kib-per-conn 0 to leave it out.
KERNEL_KIB_PER_CONN = 4.0
# wslab's heartbeat ping carries 4 bytes (wslab.harness.wsadapter.HEARTBEAT_PING); the pong
# echoes them, masked as every client frame is.
PING_PAYLOAD = 4

COMPRESSIONS = ("deflate", "none")

SOURCES: dict[str, str] = {
    "mem_kib_per_conn": "bench_scale: memory per connection at 10,000 held (13.2 KiB off, "
                        "48.7 KiB default deflate)",
    "send_us_per_conn": "bench_scale: worker CPU per broadcast / connections, 50,000 over 5",
    "compress_us_per_conn": "bench_scale: deflate per connection, 4 KiB broadcast to 2,000",
    "receipt_us": "bench_scale: holders' CPU per broadcast / receipts, 50,000 over 5",
    "conns_per_worker": "bench_scale: 50,000 over 5 workers",
    "conns_per_holder": "bench_scale: 50,000 over 4 holders",
    "ping_us": "bench_scale: idle CPU with 10,000 connections, ping every 5 s",
    "redis_deliveries_per_s": "redis-benchmark PUBLISH, 2 subscribers, one node, this machine",
    "ram_gib_per_host": "this machine (DESIGN.md section 8)",
    "cores_per_host": "this machine (DESIGN.md section 8)",
    "fd_limit": "this machine: hard RLIMIT_NOFILE",
    "ports_per_address": "this machine: ip_local_port_range 32768-60999",
    "kernel_kib_per_conn": "FIELD-NOTES.md (Centrifugo): socket memory outside RSS",
}


@dataclass(frozen=True)
class CapacityInputs:
    """Everything the plan uses. Defaults: the figures measured here (see :data:`SOURCES`)."""

    connections: int
    compression: str = "deflate"  # deflate | none
    mem_kib_per_conn: float | None = None  # None: the measured figure for ``compression``
    window_bits: int = 12  # deflate: server window (only used when mem_kib_per_conn is None)
    mem_level: int = 5
    kernel_kib_per_conn: float = KERNEL_KIB_PER_CONN
    client_kib_per_conn: float | None = None  # None: what a server connection holds
    ram_gib_per_host: float = RAM_GIB_PER_HOST
    ram_usable: float = 0.75  # share of RAM the plan may fill (the OS and bursts get the rest)
    cores_per_host: int = CORES_PER_HOST
    cpu_busy_max: float = 0.5  # average share of a core a process may be busy
    conns_per_worker: int = CONNS_PER_WORKER
    conns_per_holder: int = CONNS_PER_HOLDER
    fd_limit: int = FD_LIMIT
    broadcasts_per_s: float = 1.0  # broadcasts to every connection
    directs_per_s: float = 0.0  # messages to one connection, across workers
    message_bytes: int = 256
    compression_ratio: float = 1.0  # compressed / original bytes of a broadcast
    send_us_per_conn: float = SEND_US_PER_CONN
    compress_us_per_conn: float = COMPRESS_US_PER_CONN  # deflate only: per-connection context
    receipt_us: float = RECEIPT_US
    ping_interval_s: float = 20.0  # scaling.heartbeat_interval_s, websockets' default
    ping_us: float = PING_US
    ports_per_address: int = PORTS_PER_ADDRESS
    source_addresses: int = 1  # per client host
    destinations: int = 1  # server address:port pairs the clients connect to
    redis_deliveries_per_s: float = REDIS_DELIVERIES_PER_S
    nginx: bool = False

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise WslabError(f"--compression {self.compression!r}: expected one of "
                             f"{', '.join(COMPRESSIONS)}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or value is None or isinstance(value, str):
                continue
            floor_ok = value >= 0 if f.name in _MAY_BE_ZERO else value > 0
            if not (isinstance(value, (int, float)) and math.isfinite(value) and floor_ok):
                need = "0 or more" if f.name in _MAY_BE_ZERO else "more than 0"
                raise WslabError(f"--{f.name.replace('_', '-')} must be a number {need}, "
                                 f"not {value!r}")
        for name in ("ram_usable", "cpu_busy_max", "compression_ratio"):
            if getattr(self, name) > 1:
                raise WslabError(f"--{name.replace('_', '-')} is a share: at most 1, not "
                                 f"{getattr(self, name)!r}")
        if not 9 <= self.window_bits <= 15 or not 1 <= self.mem_level <= 9:
            raise WslabError(f"window bits {self.window_bits} / memLevel {self.mem_level}: "
                             "zlib takes 9-15 and 1-9")
        if self.fd_limit <= FD_SLACK:
            raise WslabError(f"--fd-limit {self.fd_limit}: a process needs {FD_SLACK} "
                             "descriptors besides its sockets")


_MAY_BE_ZERO = {"kernel_kib_per_conn", "broadcasts_per_s", "directs_per_s", "send_us_per_conn",
                "compress_us_per_conn", "receipt_us", "ping_us", "client_kib_per_conn"}


@dataclass
class CapacityPlan:
    """The plan's rows (quantity, value, unit, formula, inputs) and what to watch."""

    inputs: CapacityInputs
    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def value(self, quantity: str) -> Any:
        """The value of the row named ``quantity`` (KeyError if there is none)."""
        for r in self.rows:
            if r["quantity"] == quantity:
                return r["value"]
        raise KeyError(quantity)

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": asdict(self.inputs), "sources": SOURCES, "rows": self.rows,
                "warnings": self.warnings}


def zlib_state_kib(window_bits: int, mem_level: int) -> float:
    """A server connection's deflate state: compressor plus a decompressor of the same
    window (zlib's formula, ``deflate_memory_bytes``), in KiB."""
    return deflate_memory_bytes(window_bits, mem_level, decoder=True) / 1024


def _ceil(x: float) -> int:
    return max(0, math.ceil(x - 1e-9))  # 36.000000001 from float noise is still 36


def plan_capacity(i: CapacityInputs) -> CapacityPlan:
    """Work out the plan for ``i``; see the module's table for the model."""
    plan = CapacityPlan(i)
    n = i.connections

    def add(quantity: str, value: Any, unit: str, formula: str, **used: Any) -> Any:
        plan.rows.append({"quantity": quantity, "value": value, "unit": unit,
                          "formula": formula, "inputs": used})
        return value

    # Memory per connection --------------------------------------------------------------
    state = add("deflate state per connection (zlib formula)",
                round(zlib_state_kib(i.window_bits, i.mem_level), 1), "KiB",
                "compressor (1 << (window bits + 2)) + (1 << (memLevel + 9)) plus "
                "decompressor 1 << window bits", window_bits=i.window_bits,
                mem_level=i.mem_level)
    add("memory per connection, compression off", MEM_OFF_KIB, "KiB",
        "measured: RSS growth / connections held (bench_scale, 10,000 held)")
    measured = (i.window_bits, i.mem_level) == DEFLATE_MEASURED_AT
    deflate_kib = MEM_DEFLATE_KIB if measured else round(MEM_OFF_KIB + state, 1)
    add("memory per connection, deflate", deflate_kib, "KiB",
        "measured at window 12 / memLevel 5 (bench_scale, 10,000 held)" if measured else
        "compression off + deflate state (measured off, zlib formula for the state)",
        window_bits=i.window_bits, mem_level=i.mem_level)
    default_kib = deflate_kib if i.compression == "deflate" else MEM_OFF_KIB
    per_conn = i.mem_kib_per_conn if i.mem_kib_per_conn is not None else default_kib
    add("memory per connection used", per_conn, "KiB",
        "given" if i.mem_kib_per_conn is not None else f"the row for compression "
        f"{i.compression}", compression=i.compression)
    add("server RSS for all connections", round(n * per_conn / 2**20, 2), "GiB",
        "connections x memory per connection / 1,048,576 KiB per GiB",
        connections=n, mem_kib_per_conn=per_conn)
    total_gib = add("server memory with kernel sockets", round(
        n * (per_conn + i.kernel_kib_per_conn) / 2**20, 2), "GiB",
        "connections x (memory per connection + kernel memory per socket)",
        connections=n, kernel_kib_per_conn=i.kernel_kib_per_conn)

    # Server workers and hosts -------------------------------------------------------------
    per_proc_fds = i.fd_limit - FD_SLACK
    worker_cap = min(i.conns_per_worker, per_proc_fds)
    workers = add("server workers", _ceil(n / worker_cap), "processes",
                  "connections / min(connections per worker, descriptors per process - "
                  f"{FD_SLACK} spare), rounded up", connections=n,
                  conns_per_worker=i.conns_per_worker, fd_limit=i.fd_limit)
    held = n / workers
    compress_us = i.compress_us_per_conn if i.compression == "deflate" else 0.0
    per_send = i.send_us_per_conn + compress_us
    add("fan-out CPU per broadcast, per worker", round(held * per_send / 1e3, 1), "ms",
        "connections per worker x (CPU per send + per-connection compression with "
        "deflate) (a floor for the broadcast's latency)", conns_per_worker=round(held),
        send_us_per_conn=i.send_us_per_conn, compress_us_per_conn=compress_us)
    pings_per_s = n / i.ping_interval_s
    fanout_cores = i.broadcasts_per_s * n * per_send / 1e6
    ping_cores = pings_per_s * i.ping_us / 1e6
    busy = add("server cores busy (fan-out + heartbeat)", round(fanout_cores + ping_cores, 2),
               "cores", "broadcasts/s x connections x (CPU per send + compression) + pings/s x "
               "CPU per ping round", broadcasts_per_s=i.broadcasts_per_s,
               cpu_us_per_conn=per_send, ping_interval_s=i.ping_interval_s,
               ping_us=i.ping_us)
    cores = max(workers, _ceil(busy / i.cpu_busy_max))
    by_cores = _ceil(cores / i.cores_per_host)
    usable_gib = i.ram_gib_per_host * i.ram_usable
    by_ram = _ceil(total_gib / usable_gib)
    servers = add("server hosts", max(by_cores, by_ram, 1), "machines",
                  f"max(cores: max(workers, busy cores / {i.cpu_busy_max:g}) / cores per "
                  f"host = {by_cores}, RAM: memory / (RAM x {i.ram_usable:g}) = {by_ram})",
                  cores_per_host=i.cores_per_host, ram_gib_per_host=i.ram_gib_per_host,
                  ram_usable=i.ram_usable, cpu_busy_max=i.cpu_busy_max)
    add("descriptors per worker", _ceil(held) + FD_SLACK, "files",
        f"connections per worker + {FD_SLACK} spare (must stay <= the descriptor limit)",
        fd_limit=i.fd_limit)

    # Broadcast and heartbeat traffic ----------------------------------------------------
    wire = ws_frame_bytes(_ceil(i.message_bytes * i.compression_ratio), masked=False)
    add("broadcast egress", round(i.broadcasts_per_s * n * (wire + TCP_IP_HEADER_BYTES) * 8
                                  / 1e9, 3), "Gbit/s",
        "broadcasts/s x connections x (frame: header + payload x ratio, + 52 bytes TCP/IP "
        "per segment)", message_bytes=i.message_bytes, compression_ratio=i.compression_ratio)
    add("heartbeat ping/pong rounds", round(pings_per_s, 1), "rounds/s",
        "connections / ping interval", connections=n, ping_interval_s=i.ping_interval_s)
    ws_round = ws_frame_bytes(PING_PAYLOAD, False) + ws_frame_bytes(PING_PAYLOAD, True)
    add("heartbeat traffic, WebSocket bytes", round(pings_per_s * ws_round), "bytes/s",
        f"rounds/s x (ping {ws_frame_bytes(PING_PAYLOAD, False)} + masked pong "
        f"{ws_frame_bytes(PING_PAYLOAD, True)} bytes)", ping_payload=PING_PAYLOAD)
    add("heartbeat traffic, with TCP/IP headers", round(
        pings_per_s * (ws_round + 2 * TCP_IP_HEADER_BYTES)), "bytes/s",
        f"rounds/s x (WebSocket bytes + 2 segments x {TCP_IP_HEADER_BYTES}); pure ACKs not "
        "counted", tcp_ip_header_bytes=TCP_IP_HEADER_BYTES)

    # Redis ----------------------------------------------------------------------------------
    deliveries = i.broadcasts_per_s * workers + i.directs_per_s
    add("Redis deliveries", round(deliveries, 1), "messages/s",
        "broadcasts/s x workers (every worker subscribes) + directs/s",
        broadcasts_per_s=i.broadcasts_per_s, directs_per_s=i.directs_per_s)
    shards = add("Redis shards", max(1, _ceil(deliveries / i.redis_deliveries_per_s)),
                 "shards", "deliveries / deliveries per shard, rounded up",
                 redis_deliveries_per_s=i.redis_deliveries_per_s)
    if i.broadcasts_per_s * workers > i.redis_deliveries_per_s:
        plan.warnings.append(
            f"the broadcast channel alone needs {i.broadcasts_per_s * workers:,.0f} "
            "deliveries/s; a channel lives on one shard (sharded pub/sub), so more shards "
            "do not help: split broadcasts over several channels or fewer, larger workers")

    # Clients: source addresses, holders, client hosts ------------------------------------
    addresses = add("source addresses", _ceil(n / (i.ports_per_address * i.destinations)),
                    "addresses", "connections / (ephemeral ports per address x "
                    "destinations), rounded up", ports_per_address=i.ports_per_address,
                    destinations=i.destinations)
    holders = add("holder processes", _ceil(n / min(i.conns_per_holder, per_proc_fds)),
                  "processes", "connections / min(connections per holder, descriptors "
                  f"per process - {FD_SLACK}), rounded up", conns_per_holder=i.conns_per_holder,
                  fd_limit=i.fd_limit)
    holder_cores = i.broadcasts_per_s * n * i.receipt_us / 1e6
    add("holder cores busy", round(holder_cores, 2), "cores",
        "broadcasts/s x connections x CPU per receipt", receipt_us=i.receipt_us)
    client_kib = per_conn if i.client_kib_per_conn is None else i.client_kib_per_conn
    client_gib = n * (client_kib + i.kernel_kib_per_conn) / 2**20
    c_addr = _ceil(addresses / i.source_addresses)
    c_cores = _ceil(max(holders, _ceil(holder_cores / i.cpu_busy_max)) / i.cores_per_host)
    c_ram = _ceil(client_gib / usable_gib)
    clients = add("client hosts", max(c_addr, c_cores, c_ram, 1), "machines",
                  f"max(addresses / addresses per host = {c_addr}, cores = {c_cores}, "
                  f"RAM = {c_ram})", source_addresses=i.source_addresses,
                  client_kib_per_conn=client_kib)

    if i.nginx:
        nginx_workers = servers * i.cores_per_host
        add("nginx worker_connections", _ceil(2 * n / nginx_workers), "per nginx worker",
            "2 x connections (client side + upstream) / nginx workers (one per core of "
            "every server host); nginx's default is 512", nginx_workers=nginx_workers)
    redis_hosts = _ceil(shards / i.cores_per_host)  # redis-server: one busy thread each
    add("machines", servers + clients + redis_hosts, "machines",
        f"server hosts + client hosts + Redis hosts ({shards} shard(s), one per core = "
        f"{redis_hosts}); the Dask scheduler shares a client host")
    return plan
