"""The live wslab server: the websockets asyncio server, configured from TuningConfig.

What lives here: :class:`LiveServer` (listening socket, per-connection sessions and their
labels, ``push_to``). Batching and the per-message compression decision come
from the shared :class:`~wslab.pipeline.SendPipeline` through
:class:`~wslab.harness.session.Session`; nothing here decides what goes in a frame.
What must not live here: a connection's way in (``/metrics`` and ``/healthz``, handshake
failures reported to admission control, admission around the handler: the
:class:`~wslab.harness.handshake.Gate` of ``handshake.py``) and what each scenario sends
(``echo``, ``replay``, ``broadcast``, ``room``: :class:`~wslab.harness.scenarios.Scenario`
in ``scenarios.py``; ``SCENARIOS`` is re-exported here), and how a config becomes the
library's arguments, its extensions and the shared headers (``wiring.py``).

Each connection is known by its label, the ``X-Wslab-Client`` header (``sN`` without one)
that ``wslab bench`` joins the two sides' logs by; a label an open connection already holds
gets a unique suffix (``LABEL#N``), so no client can take another's place. Whatever ends
a handler (the peer, a heartbeat timeout, an ``on_open`` hook that raises), its session
leaves :attr:`LiveServer.sessions` and ``metrics.active``. A peer that leaves the server's
close frame unanswered is dropped after :func:`close_timeout` (the heartbeat timeout, at
most websockets' 10 s: ``wiring.close_timeout``), so a frozen one is gone at interval +
timeout + that.

Binds 127.0.0.1 unless told otherwise, and warns loudly when told to bind all interfaces.

For clusters (``cluster.py``): ``reuse_port`` lets several worker processes listen on one
port (the kernel spreads connections, ``SO_REUSEPORT``); ``on_open`` / ``on_close`` hooks
tell a node which connections it holds; :meth:`LiveServer.push_to` hands a message to some
or all of them; ``shared_broadcast`` compresses a message once for every connection
without context takeover (:class:`~wslab.harness.extension.SharedDeflate`). Sessions are
lazy: an idle connection holds no pipeline and no sender task until something is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.frames import CloseCode
from websockets.typing import Subprotocol

from wslab import envelopes
from wslab.config import TuningConfig
from wslab.errors import ConfigError
from wslab.harness.admission import Admission
from wslab.harness.events import EventBus, ProcessingQueue
from wslab.harness.extension import SelectiveDeflate, SharedDeflate
from wslab.harness.handshake import Gate
from wslab.harness.heartbeat import Heartbeat
from wslab.harness.livemetrics import (
    LiveMetrics,
    closing_code,
    metered_recorder,
    open_figures,
)
from wslab.harness.scenarios import SCENARIOS as SCENARIOS  # re-exported
from wslab.harness.scenarios import Scenario
from wslab.harness.session import Receiver, Session
from wslab.harness.wiring import CLIENT_HEADER, ROOM_HEADER, serve_kwargs, server_extensions
from wslab.harness.wsadapter import SinkConnection, fail_keepalive, send_ping
from wslab.pipeline import SendPipeline, resolve_envelope
from wslab.priority import Priority
from wslab.traces.model import Trace

if TYPE_CHECKING:
    from wslab.codecs.zstd_dict import DictionarySet

log = logging.getLogger("wslab.server")

COUNTED_CLOSES = frozenset({CloseCode.INVALID_DATA, CloseCode.POLICY_VIOLATION,
                            CloseCode.MESSAGE_TOO_BIG})
"""Closes the server counts as ``closes_<code>``: bad envelopes or UTF-8 (1007), slow
readers (1008), messages over ``max_size`` (1009)."""


class LiveServer:
    """A wslab server on one port.

    Args:
        config: The tuning config (compression, batching, scaling sections).
        scenario: ``echo``, ``replay``, ``broadcast`` or ``room``.
        trace: Messages for replay/broadcast, and types and priorities for echoes.
        speed: Replay speed factor (2 = twice as fast as the trace).
        host: Bind address (127.0.0.1 unless told otherwise).
        port: Port (0 = any free one).
        expect_clients: Broadcast starts when this many clients are connected.
        rooms: Number of rooms for the room scenario.
        origins: Allowed ``Origin`` values (None: any, including none).
        processing: Work queue that every inbound message joins (None: no work).
        reuse_port: Listen with ``SO_REUSEPORT`` so other processes can share the port.
        shared_broadcast: Compress a message once for all connections that negotiated
            ``server_no_context_takeover`` (needs it configured when deflate is on).
        record: Keep a row per message sent and received (for ``wslab bench``'s join);
            False keeps counts only (:class:`~wslab.harness.recorder.CountingRecorder`),
            for servers that run indefinitely or hold many connections.
        dictionaries: The pre-shared zstd dictionary set; required for ``zstd-dict``.
    """

    def __init__(self, config: TuningConfig, *, scenario: str = "echo",
                 trace: Trace | None = None, speed: float = 1.0, host: str = "127.0.0.1",
                 port: int = 0, expect_clients: int = 1, rooms: int = 4,
                 origins: list[str] | None = None,
                 processing: ProcessingQueue | None = None, reuse_port: bool = False,
                 shared_broadcast: bool = False, record: bool = True,
                 dictionaries: DictionarySet | None = None) -> None:
        self.sessions: dict[str, Session] = {}
        self.bus = EventBus()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.play = Scenario(scenario, trace, self.sessions, self.bus, self._spawn, speed=speed,
                             expect_clients=expect_clients, rooms=rooms)
        comp = config.compression
        if shared_broadcast and comp.algorithm != "none" and not comp.server_no_context_takeover:
            raise ConfigError("shared_broadcast needs compression.server_no_context_takeover: "
                              "with context takeover each connection's bytes differ")
        if host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("binding %s: this server is reachable from other machines", host)
        self.config = config
        self.dictionaries = dictionaries
        # Checked now: a zstd-dict server without its set fails here, not per handshake.
        server_extensions(comp, dictionaries)
        self.scenario = scenario
        self.trace = trace
        self.host, self.port = host, port
        self.origins = origins
        self.envelope = resolve_envelope(config, trace)
        self.metrics = LiveMetrics()
        self.recorder = metered_recorder(self.metrics.counts, record=record)
        self.admission = Admission(config.scaling.max_connections, config.scaling.pending_queue)
        self.gate = Gate(self.admission, self.metrics, config.scaling.pending_timeout_s)
        self.processing = processing
        self.metrics.live = lambda: open_figures(self.sessions.values(), self.processing)
        if processing is not None:
            self.bus.subscribe("*", processing.put)
        self._server: Server | None = None
        self._counter = 0
        self.compress_ns = 0
        self.reuse_port = reuse_port
        self.shared = SharedDeflate() if shared_broadcast else None
        self.on_open: list[Callable[[str, Session], None]] = []
        self.on_close: list[Callable[[str], None]] = []
        sc = config.scaling
        self.heartbeat: Heartbeat[SinkConnection] | None = None
        if sc.heartbeat_interval_s is not None:
            self.heartbeat = Heartbeat(
                sc.heartbeat_interval_s, sc.heartbeat_timeout_s,
                answered=lambda ws, since: ws.pong_at >= since, ping=send_ping,
                expire=lambda ws: self._spawn(fail_keepalive(ws)))

    async def start(self) -> int:
        """Start listening; return the port."""
        subprotocols = None
        if self.envelope is not None:
            # With ``envelope: auto`` any envelope a client can fill is fine: its own
            # messages decided which one it offers. A fixed envelope is the only one.
            names = ([self.envelope] + [e for e in envelopes.ENVELOPES if e != self.envelope]
                     if self.config.batching.envelope == "auto" else [self.envelope])
            subprotocols = [Subprotocol(envelopes.subprotocol(e)) for e in names]
        self._server = await serve(
            self.gate.guard(self._handler), self.host, self.port, subprotocols=subprotocols,
            process_request=self.gate.process_request,
            process_response=self.gate.process_response,
            create_connection=self.gate.connection_class(),
            origins=self.origins,  # type: ignore[arg-type]
            reuse_port=self.reuse_port or None,
            # asyncio's default accept backlog (100) drops SYNs in a connection storm and
            # the kernel's 1 s / 3 s retries then dominate a ramp; the kernel caps it
            # at net.core.somaxconn.
            backlog=max(100, min(4096, self.config.scaling.max_connections)),
            **serve_kwargs(self.config, self.dictionaries))
        self.port = self._server.sockets[0].getsockname()[1]
        self.gate.watch_accept(self._server)
        self._spawn(self._sampler())
        if self.processing is not None:
            self.processing.start()
        return self.port

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        for session in self.sessions.values():
            session.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.gate.unwatch_accept()
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self.processing is not None:
            await self.processing.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.metrics.sample()

    async def __aenter__(self) -> LiveServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def save_logs(self, directory: str | Path) -> None:
        """Write the sent/received logs and the metrics series into ``directory``."""
        from wslab.tables import write_table

        self.recorder.save(directory, "server")
        write_table(self.metrics.frame(), Path(directory) / "server-metrics.parquet")

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _sampler(self, interval: float = 1.0) -> None:
        while True:
            self.metrics.sample()
            await asyncio.sleep(interval)

    def _label(self, claimed: str | None) -> str:
        """The connection's label: the one it claims (``X-Wslab-Client``; ``sN`` if none)
        while no open connection holds it, which is what ``wslab bench`` joins client and
        server logs by; else that label with a unique suffix (``LABEL#N``), so that a client
        claiming another's label can never take its place in :attr:`sessions`."""
        label = claimed or f"s{self._counter}"
        unique, n = label, self._counter
        while unique in self.sessions:
            unique = f"{label}#{n}"
            n += 1
        return unique

    async def _handler(self, ws: ServerConnection) -> None:
        self._counter += 1
        assert ws.request is not None
        conn = self._label(ws.request.headers.get(CLIENT_HEADER))
        envelope = envelopes.envelope_of(ws.subprotocol)
        config = self.config
        scaling = config.scaling
        session = Session(ws, conn, "s2c",
                          lambda: SendPipeline(config, envelope=envelope,
                                               batching=envelope is not None),
                          self.recorder, backlog_limit=scaling.write_limit,
                          slow_timeout_s=scaling.slow_consumer_timeout_s, lazy=True)
        if self.shared is not None and isinstance(session.ext, SelectiveDeflate):
            session.ext.shared = self.shared
        # Registered and counted at once; from here on ``_finish`` undoes both however the
        # handler ends (a hook that raises included).
        self.sessions[conn] = session
        self.metrics.active += 1
        self.metrics.bump("connections_total")
        try:
            for hook in self.on_open:
                hook(conn, session)
            await self._serve(ws, conn, session, envelope)
        finally:
            session.close()
            if session.task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.task, 5.0)
            self._finish(conn, session, ws)

    async def _serve(self, ws: ServerConnection, conn: str, session: Session,
                     envelope: str | None) -> None:
        """One admitted connection's life: its scenario, then its receive loop."""
        assert ws.request is not None
        room = ws.request.headers.get(ROOM_HEADER)
        # Nothing reads the handshake headers once the connection is open; a server holding
        # 10,000 connections saves about 2 KiB on each by letting them go.
        ws.request.headers = Headers()
        if ws.response is not None:
            ws.response.headers = Headers()
        self.play.opened(conn, session, room, self._counter)
        receiver = Receiver(ws, conn, "c2s", envelope, self.recorder,
                            *self.play.on_message(conn, session))
        assert isinstance(ws, SinkConnection)  # the gate's connection class is one
        ws.attach(receiver.sink)
        if self.heartbeat is not None:
            self.heartbeat.watch(ws)
        try:
            await ws.wait_closed()
        finally:
            if self.heartbeat is not None:
                self.heartbeat.forget(ws)

    def _finish(self, conn: str, session: Session, ws: ServerConnection) -> None:
        if self.sessions.get(conn) is session:
            self.sessions.pop(conn, None)
            self.play.closed(conn)
            for hook in self.on_close:
                hook(conn)
        self.metrics.active -= 1
        self.metrics.bump("messages_dropped", session.dropped)
        if session.ext is not None:
            comp = session.ext.compressor
            self.metrics.bump("compressed_bytes_in", comp.bytes_in)
            self.metrics.bump("compressed_bytes_out", comp.bytes_out)
            self.compress_ns += comp.encode_ns
        code = CloseCode.POLICY_VIOLATION if session.closed_slow else closing_code(ws)
        if code in COUNTED_CLOSES:
            self.metrics.bump(f"closes_{int(code)}")

    def push_to(self, conns: list[str] | None, index: int, t_handoff: float,
                priority: Priority, type: str, payload: bytes, is_text: bool) -> int:
        """Hand one message to some connections (None: all); how many it reached."""
        if conns is None:
            targets = list(self.sessions.values())
        else:
            targets = [s for c in conns if (s := self.sessions.get(c)) is not None]
        for session in targets:
            session.push(index, t_handoff, priority, type, payload, is_text)
        return len(targets)
