"""Renderer for the ``nginx`` target: a complete ``nginx.conf`` proxying WebSockets.

What lives here: :func:`render_nginx` and the arithmetic it documents: proxy timeouts from
the heartbeat, ``worker_connections``/``worker_rlimit_nofile`` from ``max_connections``,
an upstream of ``scaling.workers`` backends on consecutive loopback ports. What must not
live here: starting nginx (tests and ``wslab scale`` do that), other targets.

The file is meant for ``nginx -p PREFIX -c nginx.conf``: pid, error log and temp paths are
relative to the prefix, so nothing outside it is touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.tune.exporters._common import (
    ceil_seconds,
    comment_block,
    deflate_plan,
    header_lines,
    limits_section,
)

FILENAME = "nginx.conf"
DEFAULT_UPSTREAM_PORT = 8765
DEFAULT_LISTEN_PORT = 8080
# Slack above ping interval + pong timeout before nginx gives up on a quiet upstream.
TIMEOUT_SLACK_S = 10
# Without a heartbeat nothing keeps a quiet socket alive through nginx: allow an hour.
NO_HEARTBEAT_TIMEOUT_S = 3600
# Descriptors a worker needs besides proxied sockets: listeners, logs, upstream spares.
FD_SLACK = 64


@dataclass(frozen=True)
class NginxSizing:
    """The numbers the config derives; exposed so tests and notebooks can check them."""

    proxy_timeout_s: int
    worker_connections: int
    worker_rlimit_nofile: int
    upstream_ports: tuple[int, ...]


def nginx_sizing(config: TuningConfig, upstream_port: int = DEFAULT_UPSTREAM_PORT) -> NginxSizing:
    """Derive timeouts, connection and descriptor limits from the config.

    Args:
        config: The tuned configuration.
        upstream_port: Port of the first backend; backend ``i`` listens on ``port + i``.

    Returns:
        The sizing.

    Raises:
        WslabError: The backend ports would run past 65535.
    """
    sc = config.scaling
    if sc.heartbeat_interval_s is None:
        timeout = NO_HEARTBEAT_TIMEOUT_S
    else:
        pong = sc.heartbeat_timeout_s if sc.heartbeat_timeout_s is not None else (
            sc.heartbeat_interval_s)
        timeout = ceil_seconds(sc.heartbeat_interval_s + pong) + TIMEOUT_SLACK_S
    # Every proxied WebSocket holds two connections in a worker: client side and upstream.
    connections = 2 * sc.max_connections + FD_SLACK
    last = upstream_port + sc.workers - 1
    if upstream_port < 1 or last > 65535:
        raise WslabError(
            f"upstream ports {upstream_port}..{last} are outside 1..65535; pick another "
            "--upstream-port"
        )
    return NginxSizing(
        proxy_timeout_s=timeout,
        worker_connections=connections,
        worker_rlimit_nofile=connections + FD_SLACK,
        upstream_ports=tuple(range(upstream_port, last + 1)),
    )


def render_nginx(
    config: TuningConfig,
    upstream_port: int = DEFAULT_UPSTREAM_PORT,
    listen_port: int = DEFAULT_LISTEN_PORT,
) -> dict[str, str]:
    """Render ``nginx.conf``.

    Args:
        config: The tuned configuration.
        upstream_port: Port of the first backend (backends on consecutive ports).
        listen_port: Port nginx listens on, on 127.0.0.1.

    Returns:
        ``{"nginx.conf": text}``.

    Raises:
        WslabError: A port out of range.
    """
    if not 1 <= listen_port <= 65535:
        raise WslabError(f"listen port {listen_port} is outside 1..65535")
    size = nginx_sizing(config, upstream_port)
    sc = config.scaling
    plan = deflate_plan(config)
    hb = (
        f"ping every {sc.heartbeat_interval_s:g} s + pong timeout "
        f"{(sc.heartbeat_timeout_s or sc.heartbeat_interval_s):g} s + {TIMEOUT_SLACK_S} s "
        f"slack = {size.proxy_timeout_s}s"
        if sc.heartbeat_interval_s is not None
        else f"no heartbeat configured: {NO_HEARTBEAT_TIMEOUT_S} s"
    )
    own = [
        "compression: nginx does not compress WebSocket messages; it passes the "
        "Sec-WebSocket-Extensions offer and answer through untouched, so the backends "
        "negotiate permessage-deflate end to end.",
        *(["compression: x-wslab-zstd passes through nginx the same way: backends from the "
           "websockets export agree on it end to end with clients that offer it, the rest "
           "get the backends' permessage-deflate."]
          if config.compression.algorithm in ("zstd-stream", "zstd-dict") else []),
        f"scaling: max_size {sc.max_size} B, max_queue, write_limit are enforced by the "
        "backends; nginx has no per-message limit for upgraded connections.",
        f"scaling: pending_queue {sc.pending_queue} / pending_timeout_s "
        f"{sc.pending_timeout_s:g}: nginx has no admission queue; the backends answer 503 "
        "beyond max_connections.",
    ]
    doc = comment_block(
        header_lines(config, "nginx"),
        [
            "",
            "Run (nginx 1.19.5+ for -e): mkdir -p PREFIX/logs PREFIX/temp && "
            "nginx -p PREFIX -c /path/to/nginx.conf -e PREFIX/logs/error.log",
            f"Backends: {sc.workers} wslab/websockets server(s) on 127.0.0.1 ports "
            f"{size.upstream_ports[0]}..{size.upstream_ports[-1]} (--upstream-port).",
            "Facts used: WebSocket proxying needs proxy_http_version 1.1 plus Upgrade and a "
            "Connection header taken from a map (nginx docs, 'WebSocket proxying'); an idle "
            "upgraded connection is closed after proxy_read_timeout (60 s by default) unless "
            "pings cross it more often; worker_connections (512 by default) counts upstream "
            "connections too; ip_hash keys on the first three IPv4 octets only, so "
            "`hash $remote_addr consistent` spreads loopback clients better.",
            f"proxy_read_timeout / proxy_send_timeout: {hb}.",
            f"worker_connections: 2 x max_connections ({sc.max_connections}) + {FD_SLACK} = "
            f"{size.worker_connections} (client side + upstream side of every socket); "
            f"worker_rlimit_nofile {size.worker_rlimit_nofile} (the OS hard limit must allow "
            "it: `ulimit -Hn`).",
            "",
        ],
        limits_section(config, plan, own),
        prefix="# ",
    )
    servers = "".join(f"        server 127.0.0.1:{p};\n" for p in size.upstream_ports)
    t = size.proxy_timeout_s
    body = f"""
worker_processes auto;
worker_rlimit_nofile {size.worker_rlimit_nofile};
pid logs/nginx.pid;
error_log logs/error.log warn;

events {{
    worker_connections {size.worker_connections};
}}

http {{
    access_log off;
    # Temp paths under the prefix, so a private prefix needs nothing from the system.
    client_body_temp_path temp/client_body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;

    # "Connection: upgrade" only when the client asked to upgrade; plain requests close.
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    upstream wslab_backends {{
        # Consistent hashing on the whole client address (not ip_hash's /24).
        hash $remote_addr consistent;
{servers}    }}

    server {{
        listen 127.0.0.1:{listen_port};

        location / {{
            proxy_pass http://wslab_backends;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout {t}s;
            proxy_send_timeout {t}s;
            proxy_buffering off;
        }}
    }}
}}
"""
    return {FILENAME: doc + body}
