"""Broadcast fan-out with one prepared frame: the same bytes written to every connection.

What lives here: :func:`prepared_frame` (a server-to-client data frame serialised once:
header and payload, unmasked, RSV bits clear), :func:`fan_out`, which writes those bytes
straight to the transport of every connection that can take them and hands the others
back, and :func:`broadcast_prepared`, a whole broadcast to a server's connections: the
prepared frame where it can go, a push through its
:class:`~wslab.harness.session.Session` to every other, counted in the server's metrics as
the sessions would have.
What must not live here: who the connections are and when a broadcast arrives
(``registry.py``: :class:`~wslab.harness.registry.ClusterNode`), a connection's own send
path (``session.py``), starting processes (``cluster.py``).

Why: a broadcast to 10,000 connections through each session costs a pipeline push, a
frame object, the library's serialisation and its write per connection; the bytes on the
wire are the same for every connection that negotiated no compression, so building them
once leaves the kernel's ``send`` as the main cost of a fan-out. The frame is exactly what
the library would have written (``websockets.frames.Frame.serialize``, checked by the
tests byte for byte).

A connection takes the prepared frame only when nothing it could do would change the
bytes or their order; otherwise it goes back to its session (the table):

| the connection                                          | why it goes through its session |
|---------------------------------------------------------|---------------------------------|
| negotiated an extension (compression)                   | its bytes are its own           |
| agreed on a subprotocol (a batch envelope)              | its pipeline may batch          |
| has frames or messages waiting (``Session.queued``)     | the new one must come after     |
| is not OPEN, or its transport is gone or closing        | its session knows what to do    |
| has ``write_limit`` bytes or more unsent                | a slow reader: backlog and 1008 |
| is in the middle of a fragmented send                   | frames must not interleave      |
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from websockets.frames import Frame, Opcode

from wslab.harness.wsadapter import can_write_now

if TYPE_CHECKING:
    from wslab.harness.server import LiveServer
    from wslab.harness.session import Session


def prepared_frame(payload: bytes, is_text: bool) -> bytes:
    """The whole server-to-client frame for ``payload``: one FIN frame, unmasked, no RSV."""
    opcode = Opcode.TEXT if is_text else Opcode.BINARY
    return Frame(opcode, payload).serialize(mask=False)


@dataclass
class FanOut:
    """What one :func:`fan_out` did."""

    written: int = 0
    bytes_written: int = 0
    rest: list[Session] = field(default_factory=list)


def fan_out(sessions: Iterable[Session], frame: bytes, write_limit: int) -> FanOut:
    """Write ``frame`` to every session that can take it as is; return the others.

    Args:
        sessions: The connections to reach.
        frame: From :func:`prepared_frame`.
        write_limit: A transport holding this many unsent bytes or more is left to its
            session (which queues, sheds background messages and closes a slow reader).

    Returns:
        How many were written and the sessions the caller must push the message to.
    """
    done = FanOut()
    rest = done.rest
    written = 0
    for session in sessions:
        ws = session.ws
        if (session.ext is not None or ws.subprotocol is not None or session.queued
                or not can_write_now(ws, write_limit) or ws.transport.is_closing()):
            rest.append(session)
            continue
        ws.transport.write(frame)
        session.frames_sent += 1
        session.messages_sent += 1
        written += 1
    done.written = written
    done.bytes_written = written * len(frame)
    return done


def broadcast_prepared(server: LiveServer, index: int, payload: bytes, is_text: bool) -> FanOut:
    """Hand one broadcast to every connection of ``server`` (message number ``index``).

    The connections :func:`fan_out` passes by get it through their sessions, as
    :meth:`~wslab.harness.server.LiveServer.push_to` would; the ones it wrote to are
    counted in ``server.metrics`` (frames, messages, payload bytes sent) as their
    recorders would have counted them.
    """
    done = fan_out(server.sessions.values(), prepared_frame(payload, is_text),
                   server.config.scaling.write_limit)
    counts = server.metrics.counts
    counts["frames_sent"] += done.written
    counts["messages_sent"] += done.written
    counts["payload_bytes_sent"] += done.written * len(payload)
    if done.rest:
        now = time.monotonic()
        for session in done.rest:
            session.push(index, now, "normal", "broadcast", payload, is_text)
    return done
