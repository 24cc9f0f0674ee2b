"""What a scale run may use on this machine, and how its load is spread over it.

What lives here: the machine's limits (:func:`raise_nofile`, :func:`ephemeral_ports`),
:func:`plan_load` and its :class:`LoadPlan` (how many client processes and 127.0.0.x source
addresses a number of connections needs, and why a number cannot be reached), and the
loopback ports a run can take (:func:`free_port`, :func:`check_port_free`,
:func:`free_port_block`). Nothing here starts a process: that is ``cluster.py``, which
re-exports these names.

:func:`plan_load`, limit by limit (a "problem" refuses the run, saying why and the limit):

| what              | its limit                             | when the load needs more          |
|-------------------|---------------------------------------|-----------------------------------|
| files per holder  | hard ``RLIMIT_NOFILE`` - ``FD_SLACK`` | more holders (else 1 per 5,000    |
|                   |                                       | connections, at most 4)           |
| ports per address | ``ip_local_port_range``, 90 % of it   | more 127.0.0.x addresses (16      |
|                   |                                       | through nginx); over 250: problem |
| files per worker  | hard ``RLIMIT_NOFILE``; spread        | problem: use more workers         |
|                   | unevenly (x ``BALANCE_SLACK``)        |                                   |
| files of nginx    | hard ``RLIMIT_NOFILE``, 2 per conn.   | problem: fewer connections        |
| conns per worker  | ``scaling.max_connections``           | problem: queued or refused 1013   |

Limits of the machine this was built for: a process may open 20,000 files (hard limit);
ports 32768-60999 are ephemeral, about 28k per source address and destination.
"""

from __future__ import annotations

import math
import resource
import socket
from dataclasses import dataclass, field
from pathlib import Path

from wslab.errors import WslabError

FD_SLACK = 256  # descriptors a process needs besides sockets (libraries, logs, pipes)
BALANCE_SLACK = 1.25  # SO_REUSEPORT and hashing spread unevenly: room per worker
PER_CLIENT_PROCESS = 5000  # connections per holder process (they share 2 cores)


def raise_nofile() -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def ephemeral_ports() -> int:
    """How many ephemeral ports the kernel hands out per source address and destination."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(hi) - int(lo) + 1
    except (OSError, ValueError):
        return 28232


@dataclass
class LoadPlan:
    """How a run's connections are spread, and what stops it (``problems``)."""

    connections: int
    workers: int
    client_processes: int
    per_process: list[int]
    source_addresses: list[str]
    fd_limit: int
    ports_per_address: int
    problems: list[str] = field(default_factory=list)


def plan_load(connections: int, workers: int, *, nginx: bool = False,
              max_connections: int | None = None) -> LoadPlan:
    """Spread ``connections`` over client processes and source addresses.

    Args:
        connections: Connections to hold at once.
        workers: Server worker processes.
        nginx: Whether nginx sits in front (it holds two descriptors per connection).
        max_connections: The workers' admission limit, to warn when the run exceeds it.
    """
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    per_proc_cap = max(1, hard - FD_SLACK)
    processes = max(math.ceil(connections / per_proc_cap),
                    min(4, math.ceil(connections / PER_CLIENT_PROCESS)), 1)
    base, extra = divmod(connections, processes)
    per_process = [base + (1 if i < extra else 0) for i in range(processes)]
    ports = ephemeral_ports()
    usable = int(ports * 0.9)
    n_addr = max(math.ceil(connections / usable), 16 if nginx else 1)
    problems: list[str] = []
    if n_addr > 250:
        problems.append(f"{connections} connections need {n_addr} source addresses of "
                        f"{usable} ports each; 127.0.0.2-251 gives 250")
    addresses = [f"127.0.0.{2 + i}" for i in range(min(n_addr, 250))]
    per_worker = math.ceil(connections / workers * (BALANCE_SLACK if workers > 1 else 1))
    if per_worker + FD_SLACK > hard:
        problems.append(f"each worker would hold about {per_worker} connections, but a process "
                        f"may open at most {hard} files (hard RLIMIT_NOFILE); use at least "
                        f"{math.ceil(connections * BALANCE_SLACK / (hard - FD_SLACK))} workers")
    if nginx and 2 * connections + 2 * FD_SLACK > hard:
        # nginx's workers run unprivileged and cannot raise their limit past the hard one;
        # accept() may hand one worker most of the connections.
        problems.append(f"nginx holds two descriptors per connection ({2 * connections}) and "
                        f"one nginx worker may get them all, but a process may open at most "
                        f"{hard} files; through nginx use at most "
                        f"{(hard - 2 * FD_SLACK) // 2} connections")
    if max_connections is not None and connections > max_connections * workers:
        problems.append(f"{connections} connections exceed scaling.max_connections "
                        f"({max_connections}) x {workers} worker(s); the rest would be queued "
                        "or refused with 1013 (use the storm mode to measure that)")
    return LoadPlan(connections, workers, processes, per_process, addresses, hard, ports,
                    problems)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_port_free(port: int) -> None:
    """Raise a clear error if something already listens on 127.0.0.1:``port``."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise WslabError(f"port {port} on 127.0.0.1 is already in use ({exc.strerror}); "
                             "pick another with --port or leave it 0") from None


def free_port_block(count: int, attempts: int = 50) -> int:
    """The first of ``count`` consecutive loopback ports free right now."""
    for _ in range(attempts):
        base = free_port()
        if base + count > 65535:
            continue
        try:
            for p in range(base, base + count):
                check_port_free(p)
        except WslabError:
            continue
        return base
    raise WslabError(f"no block of {count} consecutive free loopback ports found")
