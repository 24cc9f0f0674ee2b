"""The load client: N real websockets connections replaying a trace's client side.

What lives here: :class:`LoadClient`, which opens connections at a given rate (from several
127.0.0.x source addresses if asked), sends the trace's client-to-server messages through
each connection's own :class:`~wslab.pipeline.SendPipeline`, takes apart every frame it
receives, records both sides for the integrity and latency join, and reads each socket's
kernel counters before closing. It works against any WebSocket server (``wslab load``), not
only wslab's; batching is offered as a ``wslab.v1.*`` subprotocol and used only if agreed.
``client_extensions`` (from ``offers.py``, re-exported here) is what every wslab client
offers: ``x-wslab-zstd`` first for the zstd algorithms, permessage-deflate behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from wslab import envelopes
from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness.meter import count_connection, tcp_info
from wslab.harness.offers import client_extensions as client_extensions  # re-exported
from wslab.harness.recorder import Recorder
from wslab.harness.server import CLIENT_HEADER
from wslab.harness.session import Session, receive_loop
from wslab.pipeline import SendPipeline, resolve_envelope
from wslab.traces.model import Message, Trace

if TYPE_CHECKING:
    from wslab.codecs.zstd_dict import DictionarySet


def check_target(url: str, allow_remote: bool) -> tuple[str, int]:
    """Host and port of a ws:// URL; refuse a non-loopback host unless allowed."""
    parsed = urlparse(url)
    if parsed.scheme not in ("ws", "wss") or not parsed.hostname:
        raise WslabError(f"{url}: expected a ws://HOST:PORT/PATH URL")
    host = parsed.hostname
    port = parsed.port or (443 if parsed.scheme == "wss" else 80)
    if not allow_remote and not _is_loopback(host):
        raise WslabError(f"{url}: {host} is not a loopback address; load goes to loopback "
                         "only unless you pass --allow-remote")
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


CLOSE_TIMEOUT_S = 10.0
"""websockets' default wait for the server's side of the closing handshake."""


@dataclass
class ClientResult:
    """What a load run saw: the logs and one row per connection."""

    recorder: Recorder
    connections: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


class LoadClient:
    """Open connections, replay the client side of a trace, read everything back.

    Args:
        url: Target ``ws://`` URL.
        config: Batching and compression for the client side.
        trace: Messages; the ``c2s`` ones are sent (all of them if the trace has none and
            ``c2s_only`` is False: traffic for an echo server).
        connections: How many connections.
        rate: Connections opened per second.
        speed: Trace time divided by this is the send schedule.
        expect_s2c: Messages each connection should receive (None: wait for quiet).
        drain_timeout: Longest wait for missing messages once sending is done.
        source_addresses: Local addresses to spread connections over (127.0.0.x).
        allow_remote: Permit a non-loopback target.
        prefix: Connection label prefix (labels are ``PREFIX-N``).
        send: Send the trace's messages at all (False: only read).
        c2s_only: Send only the trace's ``c2s`` messages, none when it has none (a replay
            against a server that plays the ``s2c`` side, as in ``wslab bench``).
        dictionaries: The pre-shared zstd dictionary set; required for ``zstd-dict``.
    """

    def __init__(self, url: str, config: TuningConfig, *, trace: Trace | None = None,
                 connections: int = 1, rate: float = 200.0, speed: float = 1.0,
                 expect_s2c: int | None = None, drain_timeout: float = 5.0,
                 source_addresses: list[str] | None = None, allow_remote: bool = False,
                 prefix: str = "c", send: bool = True, c2s_only: bool = False,
                 dictionaries: DictionarySet | None = None) -> None:
        check_target(url, allow_remote)
        client_extensions(config, dictionaries)  # zstd-dict without its set fails here
        self.dictionaries = dictionaries
        self.url = url
        self.config = config
        self.trace = trace
        self.connections = connections
        self.rate = rate
        self.speed = speed
        self.expect_s2c = expect_s2c
        self.drain_timeout = drain_timeout
        self.source_addresses = source_addresses or []
        self.prefix = prefix
        self.send = send
        self.recorder = Recorder()
        self.envelope = resolve_envelope(config, trace)
        self._outgoing = self._client_messages(trace, c2s_only) if send else []

    @staticmethod
    def _client_messages(trace: Trace | None, c2s_only: bool) -> list[tuple[int, Message]]:
        if trace is None:
            return []
        mine = [(i, m) for i, m in enumerate(trace.messages) if m.dir == "c2s"]
        return mine if mine or c2s_only else list(enumerate(trace.messages))

    async def run(self) -> ClientResult:
        """Open every connection, run them all, return what was seen."""
        result = ClientResult(self.recorder, started=time.monotonic())
        tasks = []
        for n in range(self.connections):
            tasks.append(asyncio.create_task(self._one(n, result)))
            if n + 1 < self.connections and self.rate > 0:
                await asyncio.sleep(1.0 / self.rate)
        await asyncio.gather(*tasks)
        result.finished = time.monotonic()
        return result

    async def _one(self, n: int, result: ClientResult) -> None:
        conn = f"{self.prefix}-{n}"
        row: dict[str, Any] = {"conn": conn, "error": None}
        result.connections.append(row)
        kwargs: dict[str, Any] = {}
        if self.source_addresses:
            kwargs["local_addr"] = (self.source_addresses[n % len(self.source_addresses)], 0)
        subprotocols = ([Subprotocol(envelopes.subprotocol(self.envelope))]
                        if self.envelope else None)
        s = self.config.scaling
        t0 = time.monotonic()
        try:
            async with connect(
                self.url, extensions=client_extensions(self.config, self.dictionaries),
                compression=None,
                subprotocols=subprotocols, additional_headers={CLIENT_HEADER: conn},
                max_size=s.max_size, max_queue=s.max_queue, write_limit=s.write_limit,
                ping_interval=s.heartbeat_interval_s, ping_timeout=s.heartbeat_timeout_s,
                # A server that let a ping go unanswered for the heartbeat timeout will not
                # finish a closing handshake either: wait no longer than that for it.
                close_timeout=min(CLOSE_TIMEOUT_S, s.heartbeat_timeout_s or CLOSE_TIMEOUT_S),
                open_timeout=30, **kwargs,
            ) as ws:
                row["connect_s"] = time.monotonic() - t0
                await self._drive(ws, conn, row)
        except (OSError, TimeoutError) as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a handshake refusal or protocol error, per connection
            row["error"] = f"{type(exc).__name__}: {exc}"

    async def _drive(self, ws: Any, conn: str, row: dict[str, Any]) -> None:
        counter = count_connection(ws, frames=True)
        row["extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions")
        row["subprotocol"] = ws.subprotocol
        envelope = envelopes.envelope_of(ws.subprotocol)
        pipe = SendPipeline(self.config, envelope=envelope, batching=envelope is not None)
        session = Session(ws, conn, "c2s", pipe, self.recorder)
        got = 0
        last = time.monotonic()

        def on_message(payload: bytes, is_text: bool, t: float, key: int) -> None:
            nonlocal got, last
            got += 1
            last = t

        reader = asyncio.create_task(
            receive_loop(ws, conn, "s2c", envelope, self.recorder, on_message))
        sender = asyncio.create_task(session.run())
        start = time.monotonic() + 0.01
        base = self._outgoing[0][1].t if self._outgoing else 0.0
        for index, m in self._outgoing:
            due = start + (m.t - base) / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            session.push(index, due, m.priority, m.type, m.payload, m.is_text)
        session.close()
        await sender
        expected = self.expect_s2c
        if expected is None and self.send and self.trace is not None:
            expected = session.messages_sent  # an echo server sends each one back
        while not reader.done():
            if expected is not None and got >= expected:
                break
            if time.monotonic() - last > self.drain_timeout:
                break
            await asyncio.sleep(0.01)
        sock = ws.transport.get_extra_info("socket")
        info = tcp_info(sock) if sock is not None else None
        await ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        row.update(counter.as_dict())
        row.update({"messages_sent": session.messages_sent, "frames_sent": session.frames_sent,
                    "messages_received": got, "close_code": ws.close_code,
                    "compress_ns": session.ext.compressor.encode_ns if session.ext else 0})
        if info is not None:
            row.update({f"tcp_{k}": v for k, v in info.as_dict().items()})
