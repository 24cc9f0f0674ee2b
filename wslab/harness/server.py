"""The live wslab server: the websockets asyncio server, configured from TuningConfig.

What lives here: :class:`LiveServer` (listening socket, admission, per-connection
sessions, the four scenarios, ``/metrics``), and :func:`serve_kwargs`, the one mapping from a
``TuningConfig`` to the library's ``serve()`` arguments. Batching and the per-message
compression decision come from the shared :class:`~wslab.pipeline.SendPipeline` through
:class:`~wslab.harness.session.Session`; nothing here decides what goes in a frame.
Which extensions each algorithm accepts (``x-wslab-zstd`` first for zstd, permessage-deflate
behind it) is ``offers.py``; ``server_extensions``, ``OFFERS`` and ``negotiated_extension``
are re-exported here.

Scenarios (what the server sends):

| scenario    | server -> client                                                    |
|-------------|---------------------------------------------------------------------|
| ``echo``    | every message a client sends, back to it                            |
| ``replay``  | the trace's s2c messages to each client, at trace time / ``speed``  |
| ``broadcast``| the trace's s2c messages to every client at once, same timing      |
| ``room``    | a client's message to every other member of its room                |

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
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from wslab import envelopes
from wslab.config import TuningConfig
from wslab.errors import ConfigError
from wslab.harness.admission import Admission, Cause, handler_cause, handshake_cause
from wslab.harness.events import EventBus, ProcessingQueue
from wslab.harness.extension import SelectiveDeflate, SharedDeflate
from wslab.harness.livemetrics import (
    LiveMetrics,
    closing_code,
    metered_recorder,
    open_figures,
)
from wslab.harness.offers import OFFERS as OFFERS  # re-exported: the algorithm's offers
from wslab.harness.offers import negotiated_extension as negotiated_extension
from wslab.harness.offers import server_extensions as server_extensions
from wslab.harness.recorder import message_key
from wslab.harness.session import Session, receive_loop
from wslab.pipeline import SendPipeline, resolve_envelope
from wslab.traces.model import Trace

if TYPE_CHECKING:
    from wslab.codecs.zstd_dict import DictionarySet

log = logging.getLogger("wslab.server")

SCENARIOS = ("echo", "replay", "broadcast", "room")
CLIENT_HEADER = "X-Wslab-Client"
ROOM_HEADER = "X-Wslab-Room"
def serve_kwargs(config: TuningConfig,
                 dictionaries: DictionarySet | None = None) -> dict[str, Any]:
    """``websockets.asyncio.server.serve`` keyword arguments for a config.

    Args:
        config: The tuning config.
        dictionaries: The pre-shared zstd dictionary set (``zstd-dict`` only).
    """
    s = config.scaling
    return {
        "extensions": server_extensions(config.compression, dictionaries),
        "compression": None,
        "max_size": s.max_size,
        "max_queue": s.max_queue,
        "write_limit": s.write_limit,
        "ping_interval": s.heartbeat_interval_s,
        "ping_timeout": s.heartbeat_timeout_s,
    }


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
        if scenario not in SCENARIOS:
            raise ConfigError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        if scenario in ("replay", "broadcast") and trace is None:
            raise ConfigError(f"the {scenario} scenario needs a trace")
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
        self.speed = speed
        self.host, self.port = host, port
        self.expect_clients = expect_clients
        self.rooms = max(1, rooms)
        self.origins = origins
        self.envelope = resolve_envelope(config, trace)
        self.metrics = LiveMetrics()
        self.recorder = metered_recorder(self.metrics.counts, record=record)
        self.admission = Admission(config.scaling.max_connections, config.scaling.pending_queue)
        self._loop_handler: tuple[asyncio.AbstractEventLoop, Any, Any] | None = None
        self.sessions: dict[str, Session] = {}
        self.bus = EventBus()
        self.processing = processing
        self.metrics.live = lambda: open_figures(self.sessions.values(), self.processing)
        if processing is not None:
            self.bus.subscribe("*", processing.put)
        self._room_of: dict[str, int] = {}
        self._kinds = self._kinds_by_key(trace)
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._slot_freed = asyncio.Event()
        self._broadcast_started = False
        self._counter = 0
        self.compress_ns = 0
        self.reuse_port = reuse_port
        self.shared = SharedDeflate() if shared_broadcast else None
        self.on_open: list[Callable[[str, Session], None]] = []
        self.on_close: list[Callable[[str], None]] = []

    @staticmethod
    def _kinds_by_key(trace: Trace | None) -> dict[int, tuple[str, str]]:
        if trace is None:
            return {}
        return {message_key(m.payload): (m.type, m.priority) for m in trace.messages}

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
            self._guarded, self.host, self.port, subprotocols=subprotocols,
            process_request=self._process_request,
            process_response=self._process_response,
            create_connection=self._connection_class(),
            origins=self.origins,  # type: ignore[arg-type]
            reuse_port=self.reuse_port or None,
            # asyncio's default accept backlog (100) drops SYNs in a connection storm and
            # the kernel's 1 s / 3 s retries then dominate a ramp; the kernel caps it
            # at net.core.somaxconn.
            backlog=max(100, min(4096, self.config.scaling.max_connections)),
            **serve_kwargs(self.config, self.dictionaries))
        self.port = self._server.sockets[0].getsockname()[1]
        self._watch_accept()
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
        if self._loop_handler is not None:
            loop, previous, mine = self._loop_handler
            if loop.get_exception_handler() is mine:
                loop.set_exception_handler(previous)
            self._loop_handler = None
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
        from wslab.tune.results import write_table

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

    def _process_request(self, connection: ServerConnection,
                         request: Request) -> Response | None:
        if request.path in ("/metrics", "/healthz"):
            body = (self.metrics.prometheus(self.admission.snapshot())
                    if request.path == "/metrics" else b"ok\n")
            headers = Headers([("Content-Type", "text/plain; version=0.0.4"),
                               ("Content-Length", str(len(body)))])
            return Response(HTTPStatus.OK.value, "OK", headers, body)
        return None

    def _process_response(self, connection: ServerConnection, request: Request,
                          response: Response) -> Response | None:
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS.value and \
                request.path not in ("/metrics", "/healthz"):
            self.metrics.bump("connections_failed")  # refused or failed handshake
        return None

    # -- failures: whose they are decides whether the breaker hears (admission.FAILURES) --

    def _failed(self, cause: Cause | None) -> None:
        """Count a failed connection; the breaker hears only of the server's own failures."""
        if cause is not None:
            self.admission.failure(cause, time.monotonic())

    def _connection_class(self) -> type[ServerConnection]:
        """Connections that report how their opening handshake ended, whatever the cause
        (unparseable requests and timeouts never reach ``process_response``)."""
        live = self

        class WatchedConnection(ServerConnection):
            async def handshake(self, *args: Any, **kwargs: Any) -> None:
                try:
                    await super().handshake(*args, **kwargs)
                except BaseException as exc:  # open_timeout (a cancel) or the peer left
                    live._failed(handshake_cause(
                        None, exc if isinstance(exc, Exception) else TimeoutError()))
                    raise
                if self.protocol.state is not State.OPEN:
                    status = self.response.status_code if self.response is not None else None
                    live._failed(handshake_cause(None if status == 101 else status,
                                                 self.protocol.handshake_exc))

        return WatchedConnection

    def _watch_accept(self) -> None:
        """Count the listening sockets' ``accept()`` failures (EMFILE, ENOMEM...), which
        asyncio reports only to the loop's exception handler before retrying."""
        assert self._server is not None
        loop = asyncio.get_running_loop()
        previous = loop.get_exception_handler()
        listening = {s.fileno() for s in self._server.sockets}

        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            sock = context.get("socket")
            if isinstance(context.get("exception"), OSError) and sock is not None and \
                    sock.fileno() in listening:
                self._failed("accept_error")
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handler)
        self._loop_handler = (loop, previous, handler)

    async def _guarded(self, ws: ServerConnection) -> None:
        """Admission around the connection handler: a slot is taken before it runs and
        given back however it ends; its crashes count against the breaker."""
        if not await self._admit(ws):
            return
        try:
            await self._handler(ws)
        except Exception as exc:
            self._failed(handler_cause(exc))
            raise
        finally:
            self.admission.release()
            self._slot_freed.set()

    async def _admit(self, ws: ServerConnection) -> bool:
        decision, reason = self.admission.arrive(time.monotonic())
        trial = self.admission.breaker.state == "half-open"
        if decision == "wait":
            deadline = time.monotonic() + self.config.scaling.pending_timeout_s
            while not self.admission.try_take_slot():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.admission.give_up(trial=trial)
                    decision, reason = "reject", "timed out waiting for a slot"
                    break
                self._slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_freed.wait(), remaining)
            else:
                decision = "accept"
        if decision == "reject":
            self.metrics.bump("connections_rejected")
            self.metrics.bump("closes_1013")
            await ws.close(1013, f"try again later: {reason}")
            return False
        self.admission.breaker.success(time.monotonic())
        return True

    async def _handler(self, ws: ServerConnection) -> None:
        self._counter += 1
        assert ws.request is not None
        conn = ws.request.headers.get(CLIENT_HEADER) or f"s{self._counter}"
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
        self.sessions[conn] = session
        for hook in self.on_open:
            hook(conn, session)
        room = ws.request.headers.get(ROOM_HEADER)
        # A hostile header must not crash the handler: int() refuses > 4,300 digits and
        # the non-ASCII digits that str.isdigit() accepts.
        self._room_of[conn] = (int(room) if room and len(room) <= 9 and room.isascii()
                               and room.isdigit() else self._counter % self.rooms)
        # Nothing reads the handshake headers once the connection is open; a server holding
        # 10,000 connections saves about 2 KiB on each by letting them go.
        ws.request.headers = Headers()
        if ws.response is not None:
            ws.response.headers = Headers()
        self.metrics.active += 1
        self.metrics.bump("connections_total")
        if self.scenario == "replay":
            self._spawn(self._replay([session]))
        elif self.scenario == "broadcast" and not self._broadcast_started and \
                len(self.sessions) >= self.expect_clients:
            self._broadcast_started = True
            self._spawn(self._replay(None))
        received = 0

        def on_message(payload: bytes, is_text: bool, t: float, key: int) -> None:
            nonlocal received
            received += 1
            kind, prio = self._kinds.get(key, ("message", "normal"))
            self.bus.publish(kind, payload, t)
            if self.scenario == "echo":
                session.push(received - 1, t, prio, kind, payload, is_text,
                             drained_by_caller=True)
            elif self.scenario == "room":
                for other, peer in list(self.sessions.items()):
                    if other != conn and self._room_of.get(other) == self._room_of[conn]:
                        peer.push(received - 1, t, prio, kind, payload, is_text)

        try:
            await receive_loop(ws, conn, "c2s", envelope, self.recorder, on_message,
                               session.drain if self.scenario == "echo" else None)
        finally:
            session.close()
            if session.task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.task, 5.0)
            self._finish(conn, session, ws)

    def _finish(self, conn: str, session: Session, ws: ServerConnection) -> None:
        if self.sessions.get(conn) is session:
            self.sessions.pop(conn, None)
            self._room_of.pop(conn, None)
            for hook in self.on_close:
                hook(conn)
        self.metrics.active -= 1
        self.metrics.bump("messages_dropped", session.dropped)
        if session.ext is not None:
            comp = session.ext.compressor
            self.metrics.bump("compressed_bytes_in", comp.bytes_in)
            self.metrics.bump("compressed_bytes_out", comp.bytes_out)
            self.compress_ns += comp.encode_ns
        code = 1008 if session.closed_slow else closing_code(ws)
        if code in (1007, 1008, 1009):
            self.metrics.bump(f"closes_{code}")

    async def _replay(self, targets: list[Session] | None) -> None:
        """Push the trace's s2c messages at trace time / speed (None: every session)."""
        assert self.trace is not None
        start = time.monotonic() + 0.01
        base = self.trace.messages[0].t if self.trace.messages else 0.0
        for index, m in enumerate(self.trace.messages):
            if m.dir != "s2c":
                continue
            due = start + (m.t - base) / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for session in (targets if targets is not None else list(self.sessions.values())):
                session.push(index, due, m.priority, m.type, m.payload, m.is_text)
        for session in (targets if targets is not None else list(self.sessions.values())):
            session.close()

    def push_to(self, conns: list[str] | None, index: int, t_handoff: float, priority: str,
                type: str, payload: bytes, is_text: bool) -> int:
        """Hand one message to some connections (None: all); how many it reached."""
        if conns is None:
            targets = list(self.sessions.values())
        else:
            targets = [s for c in conns if (s := self.sessions.get(c)) is not None]
        for session in targets:
            session.push(index, t_handoff, priority, type, payload, is_text)
        return len(targets)
