"""How a connection reaches the live server's handler: its opening, reported and admitted.

What lives here: :class:`Gate`, everything of a :class:`~wslab.harness.server.LiveServer`
between ``accept()`` and its connection handler, on the websockets asyncio server's hooks:

| hook                         | what the gate does                                          |
|------------------------------|-------------------------------------------------------------|
| ``process_request``          | answers ``/metrics`` (Prometheus text) and ``/healthz``     |
| ``process_response``         | counts a refused or failed handshake                        |
| ``create_connection``        | a connection class reporting how its handshake ended, also  |
|                              | for requests that never parse and ones that time out        |
| the loop's exception handler | counts ``accept()`` failures of the listening sockets       |
|                              | (asyncio hands them nowhere else before it retries)         |
| the connection handler       | :meth:`Gate.guard`: admission takes a slot before it runs   |
|                              | (accept, wait in the pending queue, or close 1013) and      |
|                              | gives it back however it ends; its crashes are counted      |

Whose failure each one is, and so whether the breaker hears of it, is the table in
``admission.py`` (:data:`~wslab.harness.admission.FAILURES`, :func:`handshake_cause`,
:func:`handler_cause`); a peer's bad request is counted but never opens the breaker.
What must not live here: the decisions themselves (``admission.py``, sans-I/O) and what
happens once a connection is admitted (sessions and scenarios, ``server.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection
from websockets.datastructures import Headers
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State

from wslab.harness.admission import Admission, Cause, handler_cause, handshake_cause
from wslab.harness.livemetrics import LiveMetrics
from wslab.harness.wsadapter import SinkConnection

ENDPOINTS = ("/metrics", "/healthz")
"""Paths answered over plain HTTP on the WebSocket port."""

Handler = Callable[[ServerConnection], Awaitable[None]]


class Gate:
    """Admission control and handshake reporting at one server's door.

    Args:
        admission: The server's capacity, pending queue and breaker.
        metrics: The server's counters (failed and refused connections, 1013 closes) and
            the source of ``/metrics``.
        pending_timeout_s: How long a connection waits in the pending queue for a slot.
    """

    def __init__(self, admission: Admission, metrics: LiveMetrics,
                 pending_timeout_s: float) -> None:
        self.admission = admission
        self.metrics = metrics
        self.pending_timeout_s = pending_timeout_s
        self._slot_freed = asyncio.Event()
        self._loop_handler: tuple[asyncio.AbstractEventLoop, Any, Any] | None = None

    # -- plain HTTP on the same port --------------------------------------------------------

    def process_request(self, connection: ServerConnection,
                        request: Request) -> Response | None:
        """``/metrics`` and ``/healthz`` answered before any WebSocket handshake."""
        if request.path in ENDPOINTS:
            body = (self.metrics.prometheus(self.admission.snapshot())
                    if request.path == "/metrics" else b"ok\n")
            headers = Headers([("Content-Type", "text/plain; version=0.0.4"),
                               ("Content-Length", str(len(body)))])
            return Response(HTTPStatus.OK.value, "OK", headers, body)
        return None

    def process_response(self, connection: ServerConnection, request: Request,
                         response: Response) -> Response | None:
        """Count a handshake the server refused or that failed (the endpoints aside)."""
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS.value and \
                request.path not in ENDPOINTS:
            self.metrics.bump("connections_failed")  # refused or failed handshake
        return None

    # -- failures: whose they are decides whether the breaker hears (admission.FAILURES) --

    def failed(self, cause: Cause | None) -> None:
        """Count a failed connection; the breaker hears only of the server's own failures."""
        if cause is not None:
            self.admission.failure(cause, time.monotonic())

    def connection_class(self) -> type[ServerConnection]:
        """Connections that report how their opening handshake ended, whatever the cause
        (unparseable requests and timeouts never reach ``process_response``)."""
        gate = self

        class WatchedConnection(SinkConnection):
            async def handshake(self, *args: Any, **kwargs: Any) -> None:
                try:
                    await super().handshake(*args, **kwargs)
                except BaseException as exc:  # open_timeout (a cancel) or the peer left
                    gate.failed(handshake_cause(
                        None, exc if isinstance(exc, Exception) else TimeoutError()))
                    raise
                if self.protocol.state is not State.OPEN:
                    status = self.response.status_code if self.response is not None else None
                    gate.failed(handshake_cause(None if status == 101 else status,
                                                self.protocol.handshake_exc))

        return WatchedConnection

    def watch_accept(self, server: Server) -> None:
        """Count the listening sockets' ``accept()`` failures (EMFILE, ENOMEM...), which
        asyncio reports only to the loop's exception handler before retrying."""
        loop = asyncio.get_running_loop()
        previous = loop.get_exception_handler()
        listening = {s.fileno() for s in server.sockets}

        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            sock = context.get("socket")
            if isinstance(context.get("exception"), OSError) and sock is not None and \
                    sock.fileno() in listening:
                self.failed("accept_error")
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handler)
        self._loop_handler = (loop, previous, handler)

    def unwatch_accept(self) -> None:
        """Put back the loop's previous exception handler (unless another replaced ours)."""
        if self._loop_handler is not None:
            loop, previous, mine = self._loop_handler
            if loop.get_exception_handler() is mine:
                loop.set_exception_handler(previous)
            self._loop_handler = None

    # -- admission around the connection handler --------------------------------------------

    def guard(self, handler: Handler) -> Handler:
        """``handler`` behind admission: a slot is taken before it runs and given back
        however it ends; its crashes count against the breaker."""

        async def guarded(ws: ServerConnection) -> None:
            if not await self.admit(ws):
                return
            try:
                await handler(ws)
            except Exception as exc:
                self.failed(handler_cause(exc))
                raise
            finally:
                self.admission.release()
                self._slot_freed.set()

        return guarded

    async def admit(self, ws: ServerConnection) -> bool:
        """Accept, queue until a slot frees (or ``pending_timeout_s``), or close 1013."""
        decision, reason = self.admission.arrive(time.monotonic())
        trial = self.admission.breaker.state == "half-open"
        if decision == "wait":
            deadline = time.monotonic() + self.pending_timeout_s
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
            await ws.close(CloseCode.TRY_AGAIN_LATER, f"try again later: {reason}")
            return False
        self.admission.breaker.success(time.monotonic())
        return True
