"""``wslab scale --url``: connection load against a server fleet wslab did not start.

What lives here: :func:`parse_fleet_url` (a ``ws://`` URL; loopback unless the caller
allows a remote host, and then the holders use the host's own source address) and
:func:`fleet_summary`, the figures such a run can honestly give. What must not live here:
running the holders (``scale.py`` does, locally or on Dask, exactly as for its own
workers) or anything about the fleet's insides.

What a fleet run measures, and what it cannot: the holders open, hold (with their
heartbeat answered) and count the connections, so the ramp, the connections held to the
end, those closed early and their close codes are the fleet's. Broadcasts, direct messages,
server memory and CPU need wslab's own workers (a command channel, processes to sample):
the summary lists them under ``not_measured`` instead of inventing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from wslab.errors import WslabError
from wslab.harness.commands import Counted
from wslab.harness.loadplan import LoadPlan
from wslab.harness.probe_wire import is_loopback
from wslab.harness.scale_options import ScaleOptions
from wslab.harness.scale_summary import Ramp, merge_counts

NOT_MEASURED = (
    "broadcast latency and integrity (the fleet takes no broadcast command from wslab)",
    "direct messages (the same)",
    "server memory and CPU (its processes are not wslab's to sample)",
)


@dataclass(frozen=True)
class FleetTarget:
    """Where a fleet run sends its connections."""

    url: str
    host: str
    remote: bool


def parse_fleet_url(url: str, *, allow_remote: bool = False) -> FleetTarget:
    """The fleet at ``url``; fails in one line on anything but ``ws://HOST:PORT/PATH``.

    Raises:
        WslabError: Not a ws:// URL with a host, or a host other than this machine's
            without ``allow_remote`` (load goes to loopback unless asked otherwise).
    """
    parts = urlsplit(url.strip())
    if parts.scheme != "ws" or not parts.hostname:
        raise WslabError(f"--url {url!r}: expected ws://HOST:PORT/PATH (the holders speak "
                         "plain ws://; put TLS in front of them yourself)")
    try:
        port = parts.port or 80
    except ValueError:
        raise WslabError(f"--url {url!r}: the port is not a number") from None
    host = parts.hostname
    remote = not is_loopback(host)
    if remote and not allow_remote:
        raise WslabError(f"--url {url!r}: {host} is not this machine; load goes to "
                         "loopback unless you pass --allow-remote (only for servers you run)")
    shown = f"[{host}]" if ":" in host else host
    return FleetTarget(f"ws://{shown}:{port}{parts.path or '/'}", host, remote)


def fleet_summary(opts: ScaleOptions, plan: LoadPlan, ramp: Ramp, counted: list[Counted],
                  clocks: list[dict[str, Any]]) -> dict[str, Any]:
    """A fleet run's figures: the ramp and what stayed open through the idle time."""
    done, started = ramp.done, ramp.started
    time_to_n = (done[-1] - started) if done else None
    codes = merge_counts([c["close_codes"] for c in counted])
    return {
        "fleet_url": opts.fleet_url,
        "connections": opts.connections, "opened": ramp.opened,
        "failed": sum(r["failed"] for r in ramp.readies),
        "first_error": next((r["first_error"] for r in ramp.readies if r["first_error"]),
                            None),
        "client_processes": len(ramp.readies),
        "source_addresses": len(plan.source_addresses),
        "time_to_n_s": time_to_n,
        "connections_per_s": ramp.opened / time_to_n if time_to_n else None,
        "idle_s": opts.idle_s,
        "held_at_end": sum(c["open"] for c in counted),
        "closed_early": sum(c["closed_early"] for c in counted),
        "close_codes": codes,
        "clock_offsets": clocks,
        "not_measured": list(NOT_MEASURED),
    }
