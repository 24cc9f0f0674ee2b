"""What one ``wslab scale`` run is asked to do: :class:`ScaleOptions`.

What lives here: the options, plain data, and the type of the nginx renderer the caller
hands in. What must not live here: running anything (``scale.py``) or the run's figures
(``scale_summary.py``); both import these options, so they sit below both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wslab.config import TuningConfig

NginxConf = Callable[[TuningConfig, int, int], str]
"""Renders ``nginx.conf``: (config, first upstream port, listen port) -> the file's text.
The caller renders (the exporter is in a layer above the harness)."""


@dataclass
class ScaleOptions:
    """What a scale run does (see :func:`run_scale`)."""

    connections: int = 1000
    workers: int = 1
    balancer: str = "reuseport"
    broker: str | None = None  # None: memory for one worker, redis for several
    redis_url: str | None = None
    port: int = 0
    broadcasts: int = 5
    message_size: int = 256
    broadcast_interval_s: float = 0.5
    directs: int = 20
    idle_s: float = 3.0
    rate: float = 0.0
    shared_broadcast: bool = False
    gc_freeze: bool = True
    kill_worker: int | None = None
    timeout_s: float = 120.0
    # A broadcast goes out as one prepared frame to every connection that can take it
    # (``fanout.py``); False sends it through each connection's session.
    prepared_broadcast: bool = True
    holders: int | None = None  # holder processes (None: the plan's, at most 4)
    nginx_conf: NginxConf | None = None  # needed with balancer nginx
    # Holders as tasks on Dask: ``local`` or a scheduler address (None: processes here).
    cluster: str | None = None
    # The address the Dask holders call back to (the coordinator's listener). The servers
    # still listen on loopback, so holders on other hosts need a fleet they can reach.
    callback_host: str = "127.0.0.1"
    # A server fleet wslab did not start (``ws://HOST:PORT/PATH``): no workers, Redis or
    # nginx; the holders load it and the run reports what it can (``scale_fleet.py``).
    fleet_url: str | None = None
    allow_remote: bool = False  # a fleet on another host (load stays on loopback otherwise)
