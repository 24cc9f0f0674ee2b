"""What the live server sends: its four scenarios.

What lives here: :data:`SCENARIOS` and :class:`Scenario`, one server's scenario: what it
starts when a connection opens, what it does with each message a client sends, and the
replay of a trace's server messages at trace time. What must not live here: connections
and their sessions' life (``server.py``), admission (``handshake.py``), what goes in a
frame (the session's :class:`~wslab.pipeline.SendPipeline`).

| scenario     | server -> client                                                    |
|--------------|---------------------------------------------------------------------|
| ``echo``     | every message a client sends, back to it                            |
| ``replay``   | the trace's s2c messages to each client, at trace time / ``speed``  |
| ``broadcast``| the trace's s2c messages to every client at once, same timing       |
| ``room``     | a client's message to every other member of its room                |

Rooms: a client names its room in the ``X-Wslab-Room`` header (a number below 10^9), else
connections are dealt round the rooms in order of arrival. A hostile header is never an
error (:func:`room_number`): the room is then dealt as if there were none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from wslab.errors import ConfigError
from wslab.harness.events import EventBus
from wslab.harness.recorder import message_key
from wslab.harness.session import BatchHook, MessageHook, Session
from wslab.pipeline import Incoming
from wslab.priority import DEFAULT_PRIORITY, Priority
from wslab.traces.model import Trace

SCENARIOS = ("echo", "replay", "broadcast", "room")
UNKNOWN_KIND: tuple[str, Priority] = ("message", DEFAULT_PRIORITY)
"""Type and priority of a message the trace does not know."""

Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[Any]"]


def room_number(header: str | None, arrival: int, rooms: int) -> int:
    """The room of a connection: the header's number if it is one, else ``arrival % rooms``.

    A hostile header must not crash the handler: int() refuses > 4,300 digits and the
    non-ASCII digits that str.isdigit() accepts.
    """
    return (int(header) if header and len(header) <= 9 and header.isascii()
            and header.isdigit() else arrival % rooms)


class Scenario:
    """One server's scenario over the sessions it holds.

    Args:
        name: ``echo``, ``replay``, ``broadcast`` or ``room``.
        trace: Messages for replay/broadcast, and types and priorities for echoes.
        sessions: The server's open sessions by label (read, never changed here).
        bus: Every inbound message is published on it by type.
        spawn: Runs a coroutine as one of the server's tasks (stopped with it).
        speed: Replay speed factor (2 = twice as fast as the trace).
        expect_clients: Broadcast starts when this many clients are connected.
        rooms: Number of rooms for the room scenario.

    Raises:
        ConfigError: An unknown scenario, or replay/broadcast without a trace.
    """

    def __init__(self, name: str, trace: Trace | None, sessions: dict[str, Session],
                 bus: EventBus, spawn: Spawn, *, speed: float = 1.0, expect_clients: int = 1,
                 rooms: int = 4) -> None:
        if name not in SCENARIOS:
            raise ConfigError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        if name in ("replay", "broadcast") and trace is None:
            raise ConfigError(f"the {name} scenario needs a trace")
        self.name = name
        self.trace = trace
        self.sessions = sessions
        self.bus = bus
        self.spawn = spawn
        self.speed = speed
        self.expect_clients = expect_clients
        self.rooms = max(1, rooms)
        self.room_of: dict[str, int] = {}
        self.kinds = ({} if trace is None else
                      {message_key(m.payload): (m.type, m.priority) for m in trace.messages})
        self._broadcast_started = False

    def opened(self, conn: str, session: Session, room: str | None, arrival: int) -> None:
        """A connection is open: place it in its room; start its replay, or the broadcast
        once ``expect_clients`` are connected."""
        self.room_of[conn] = room_number(room, arrival, self.rooms)
        if self.name == "replay":
            self.spawn(self.replay([session]))
        elif self.name == "broadcast" and not self._broadcast_started and \
                len(self.sessions) >= self.expect_clients:
            self._broadcast_started = True
            self.spawn(self.replay(None))

    def closed(self, conn: str) -> None:
        """A connection is gone: forget its room."""
        self.room_of.pop(conn, None)

    def on_message(self, conn: str, session: Session) -> tuple[MessageHook, BatchHook | None]:
        """What to do with each message the connection ``conn`` sends, and with each batch
        frame of them at once where the scenario has a way (echo: one push for the lot)."""
        received = 0
        kinds = self.kinds
        publish = self.bus.publish
        echo = self.name == "echo"
        room = self.name == "room"

        def on_message(payload: bytes, is_text: bool, t: float, key: int) -> None:
            nonlocal received
            received += 1
            kind, prio = kinds.get(key, UNKNOWN_KIND)
            publish(kind, payload, t)
            if echo:
                session.push(received - 1, t, prio, kind, payload, is_text)
            elif room:
                for other, peer in list(self.sessions.items()):
                    if other != conn and self.room_of.get(other) == self.room_of[conn]:
                        peer.push(received - 1, t, prio, kind, payload, is_text)

        def on_batch(parts: list[tuple[bytes, bool]], t: float, keys: list[int]) -> None:
            nonlocal received
            back: list[Incoming] = []
            for (payload, is_text), key in zip(parts, keys, strict=True):
                kind, prio = kinds.get(key, UNKNOWN_KIND)
                publish(kind, payload, t)
                back.append((received, prio, kind, payload, is_text))
                received += 1
            session.push_many(t, back)

        return on_message, on_batch if echo else None

    async def replay(self, targets: list[Session] | None) -> None:
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
