"""One server connection's sending and receiving, around the shared SendPipeline.

What lives here: :class:`Session` (a connection's :class:`~wslab.pipeline.SendPipeline`,
its outbox, its :class:`Lifecycle` and the task that sends frames when the pipeline says
so) and :class:`Receiver` (the sink each data frame reaches as the library parses it:
batch envelopes taken apart, every message recorded and handed to the scenario). The load
client drives the very same pipeline on its own connections (``loadconn.py``). Decisions
live in the pipeline; this module only moves bytes and keeps time with
``time.monotonic()`` (the same clock as the event loop's). What must not live here:
websockets internals (``wsadapter.py``).

A frame reaches its compress-or-not decision through the negotiated wslab extension
(permessage-deflate or ``x-wslab-zstd``): its key is queued right before ``send`` and the
extension's :class:`~wslab.compressor.FrameCompressor` decides, compresses and learns when
the library encodes that frame, exactly as the simulator does per frame. Batches due before
a message are released by the pipeline itself (``SendPipeline.push`` / ``poll``), so the
timers here only decide *when* to look, never what goes in a frame.

A peer that stops reading (a slow consumer) cannot make the process grow without bound:
the library's write buffer stops at ``write_limit`` (``send`` waits), and once the frames
waiting here pass ``backlog_limit`` bytes, background messages are dropped and counted
(critical and normal ones never are). A backlog that does not clear within
``slow_timeout_s`` closes the connection with 1008 and a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from wslab import envelopes
from wslab.batching import ENVELOPE_SLACK
from wslab.compressor import make_selector
from wslab.errors import DecodeError
from wslab.harness.extension import selective_extension
from wslab.harness.recorder import Recorder
from wslab.harness.wsadapter import Reassembler, can_write_now, write_frame
from wslab.pipeline import Incoming, OutFrame, SendPipeline
from wslab.priority import BACKGROUND, Priority
from wslab.wire import Opcode

log = logging.getLogger("wslab.session")


class Lifecycle(enum.Enum):
    """Where a session is in its life (its sender task and wake-ups are separate)."""

    OPEN = "open"
    """Messages are accepted and sent as the pipeline releases them."""
    CLOSING = "closing"
    """:meth:`Session.close` was called: what is held is flushed, then the sender stops."""
    CLOSED_SLOW = "closed-slow"
    """The peer stopped reading for ``slow_timeout_s``: closed with 1008, pushes dropped."""

MessageHook = Callable[[bytes, bool, float, int], None]
BatchHook = Callable[[list[tuple[bytes, bool]], float, list[int]], None]
"""Called once per received batch frame: its messages (payload, is_text), the receive
time and their content keys; where a scenario gives one, it replaces the per-message
hook for batch frames (an echo pushes the batch back in one call)."""
"""Called per received message: payload, is_text, receive time, content key."""


class Session:
    """The sending half of one live connection.

    Args:
        ws: The websockets connection.
        conn: A label for the connection, the same on both sides.
        direction: ``"s2c"`` on the server, ``"c2s"`` on the client.
        pipeline: This side's send pipeline, or a function that builds it the first time
            something is sent (an idle connection then holds no pipeline at all).
        recorder: Where sent messages are logged.
        backlog_limit: Outbox bytes beyond which background messages are dropped.
        slow_timeout_s: How long a backlog may stay stuck before the peer is closed (1008).
        lazy: Start the sender task on the first push instead of expecting the caller to
            run :meth:`run` (a server holding thousands of idle connections saves a task
            per connection).
    """

    __slots__ = (
        "_armed",
        "_backlogged_since",
        "_make_pipeline",
        "_outbox",
        "_pipeline",
        "_sending",
        "_timer",
        "_waiter",
        "_woken",
        "backlog_limit",
        "conn",
        "direction",
        "dropped_slow",
        "ext",
        "frames_sent",
        "lazy",
        "lifecycle",
        "messages_sent",
        "outbox_bytes",
        "recorder",
        "slow_timeout_s",
        "task",
        "ws",
    )

    def __init__(self, ws: Any, conn: str, direction: str,
                 pipeline: SendPipeline | Callable[[], SendPipeline],
                 recorder: Recorder, *, backlog_limit: int | None = None,
                 slow_timeout_s: float | None = None, lazy: bool = False) -> None:
        self.ws = ws
        self.backlog_limit = backlog_limit
        self.slow_timeout_s = slow_timeout_s
        self.outbox_bytes = 0
        self.dropped_slow = 0
        self.lifecycle = Lifecycle.OPEN
        self._backlogged_since: float | None = None
        self.conn = conn
        self.direction = direction
        self.recorder = recorder
        self.ext = selective_extension(ws.protocol.extensions)
        self._pipeline: SendPipeline | None = None
        self._make_pipeline: Callable[[], SendPipeline] | None = None
        if isinstance(pipeline, SendPipeline):
            self._adopt(pipeline)
        else:
            self._make_pipeline = pipeline
        self._outbox: deque[OutFrame] | None = None
        self.frames_sent = 0
        self.messages_sent = 0
        self._woken = False
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._armed: float | None = None
        self._sending = False
        self.lazy = lazy
        self.task: asyncio.Task[None] | None = None

    def _adopt(self, pipeline: SendPipeline) -> SendPipeline:
        if self.ext is not None:  # compressed frames are chosen by this side's policy
            self.ext.compressor.selector = make_selector(pipeline.config.compression)
        self._pipeline = pipeline
        return pipeline

    @property
    def pipeline(self) -> SendPipeline:
        """This side's send pipeline (built on first use when a factory was given)."""
        if self._pipeline is None:
            assert self._make_pipeline is not None
            return self._adopt(self._make_pipeline())
        return self._pipeline

    @property
    def outbox(self) -> deque[OutFrame]:
        """Frames waiting to be written, oldest first."""
        if self._outbox is None:
            self._outbox = deque()
        return self._outbox

    @property
    def closed_slow(self) -> bool:
        """Was the peer closed with 1008 for not reading?"""
        return self.lifecycle is Lifecycle.CLOSED_SLOW

    @property
    def dropped(self) -> int:
        """Messages dropped: shed for a slow consumer or by the batcher's overflow."""
        held = len(self._pipeline.dropped) if self._pipeline is not None else 0
        return self.dropped_slow + held

    def push(self, index: int, t_handoff: float, priority: Priority, type: str, payload: bytes,
             is_text: bool) -> None:
        """Hand one application message to this connection's pipeline; what it releases is
        written at once while the socket keeps up, else queued for the sender task."""
        limit = self.backlog_limit
        if limit is not None and self.outbox_bytes >= limit and \
                (self._slow(t_handoff) or priority == BACKGROUND):
            self.dropped_slow += 1
            return
        pipeline = self._pipeline or self.pipeline
        # Batches due before this message come out first, each at its deadline (the
        # pipeline's rule), so a timer that fires late cannot change the grouping.
        self._released(pipeline, pipeline.push(index, t_handoff, priority, type, payload,
                                               is_text))

    def push_many(self, now: float, messages: Sequence[Incoming]) -> None:
        """Hand over messages that arrived together (each ``(index, priority, type,
        payload, is_text)``): what :meth:`push` does for each in turn, in one call to the
        pipeline when no message of them could be shed as a slow consumer's."""
        pipeline = self._pipeline or self.pipeline
        limit = self.backlog_limit
        # push sheds a message only once the unsent backlog reaches the limit; it grows by
        # at most what this call can release (all held and new bytes, with envelopes)
        if limit is not None and self.outbox_bytes + pipeline.waiting_bytes \
                + sum(len(m[3]) for m in messages) \
                + (pipeline.waiting + len(messages)) * ENVELOPE_SLACK >= limit:
            for index, priority, type_, payload, is_text in messages:
                self.push(index, now, priority, type_, payload, is_text)
            return
        self._released(pipeline, pipeline.push_many(now, messages))

    def _released(self, pipeline: SendPipeline, frames: list[OutFrame]) -> None:
        """What a push released: written at once while the socket keeps up, else queued
        for the sender task; nothing released, the sender is woken only if the batcher
        now has an earlier deadline than the one it armed."""
        if frames and self.lazy and not self._sending and not self._outbox:
            frames = self._write_now(frames)
        if frames:
            self._queue(frames)
            self._kick()
        elif pipeline.batcher is not None:
            # The sender sleeps until the deadline it armed; wake it only for an earlier
            # one (a later one costs it one early wake-up, no more).
            deadline = pipeline.next_deadline()
            if deadline is not None and (self._armed is None or deadline < self._armed):
                self._kick()

    def _kick(self) -> None:
        """Wake the sender task (starting it first in lazy mode)."""
        self._woken = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.lazy and self.task is None and self.lifecycle is Lifecycle.OPEN:
            self.task = asyncio.get_running_loop().create_task(self.run())

    def _queue(self, frames: list[OutFrame]) -> None:
        self.outbox.extend(frames)
        self.outbox_bytes += sum(len(f.payload) for f in frames)

    def _slow(self, now: float) -> bool:
        """Is the backlog stuck past the timeout? (Starts the clock, closes once.)"""
        if self._backlogged_since is None:
            self._backlogged_since = now
            return False
        if self.slow_timeout_s is None or now - self._backlogged_since < self.slow_timeout_s:
            return False
        if self.lifecycle is not Lifecycle.CLOSED_SLOW:
            self.lifecycle = Lifecycle.CLOSED_SLOW
            reason = (f"slow consumer: {self.outbox_bytes} bytes unsent for "
                      f"{now - self._backlogged_since:.0f} s")
            asyncio.get_running_loop().create_task(self._close_slow(reason))
        return True

    async def _close_slow(self, reason: str, grace_s: float = 2.0) -> None:
        """Close with 1008; a peer too stalled to read the close frame is cut off."""
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            await asyncio.wait_for(self.ws.close(CloseCode.POLICY_VIOLATION, reason), grace_s)
        if self.ws.transport is not None and not self.ws.transport.is_closing():
            self.ws.transport.abort()

    async def drain(self) -> None:
        """Send every frame in the outbox now, unless another task is already sending.

        A frame is written at once while the socket keeps up (:meth:`_write_now`) and
        awaited through the library's ``send()`` only when the transport's buffer is
        full, so an echo costs no await per message until the peer falls behind.
        """
        if self._sending or not self._outbox:
            return
        self._sending = True
        outbox = self._outbox
        try:
            while outbox:
                frame = outbox.popleft()
                self.outbox_bytes -= len(frame.payload)
                if self._write_now([frame]):  # the socket is behind: wait for it
                    await self._send(frame)
                if self.backlog_limit is not None and self.outbox_bytes < self.backlog_limit:
                    self._backlogged_since = None
            self._outbox = None  # an empty deque still holds a 64-slot block: let it go
        finally:
            self._sending = False

    @property
    def queued(self) -> int:
        """Frames waiting to be written plus messages held by the batcher."""
        held = self._pipeline.waiting if self._pipeline is not None else 0
        return (len(self._outbox) if self._outbox is not None else 0) + held

    async def _wait(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._woken:
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._woken = False

    async def run(self) -> None:
        """Send frames as they become due until :meth:`close` (then flush what is held)."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._outbox:
                    if self.lifecycle is not Lifecycle.OPEN:
                        break
                    deadline = (self._pipeline.next_deadline()
                                if self._pipeline is not None else None)
                    if deadline is None and self.lazy and not self._woken:
                        self.task = None  # idle: the next push starts a new task
                        return
                    if deadline is not None:
                        self._timer = loop.call_at(deadline, self._kick)
                    self._armed = deadline
                    try:
                        await self._wait(loop)
                    finally:
                        self._armed = None
                    if self._timer is not None:
                        self._timer.cancel()
                        self._timer = None
                if self._pipeline is not None:
                    self._queue(self._pipeline.poll(time.monotonic()))
                await self.drain()
            if self._pipeline is not None:
                self._queue(self._pipeline.flush(time.monotonic()))
            await self.drain()
        except ConnectionClosed:
            return

    def close(self) -> None:
        """Ask :meth:`run` to flush what is held and return."""
        if self.lifecycle is Lifecycle.OPEN:
            self.lifecycle = Lifecycle.CLOSING
        self._woken = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.lazy and self.task is None and self._pipeline is not None \
                and (self._pipeline.waiting or self._outbox):
            self.task = asyncio.get_running_loop().create_task(self.run())

    def _write_now(self, frames: list[OutFrame]) -> list[OutFrame]:
        """Write frames without a task while the socket keeps up; return the rest.

        This is the library's ``broadcast()`` path (no await): a fan-out to thousands of
        idle connections then costs no task per connection. It is taken only while the
        transport's buffer is under ``backlog_limit`` (or the library's ``write_limit``),
        so a slow reader still gets queued frames, the backlog limit and the 1008 close.
        """
        ws = self.ws
        limit = self.backlog_limit if self.backlog_limit is not None else 32768
        ext = self.ext
        for position, frame in enumerate(frames):
            if not can_write_now(ws, limit):
                return frames[position:]
            if ext is not None:
                ext.keys.append(frame.key)
            write_frame(ws, frame.payload, frame.opcode)
            self._sent(frame)
        return []

    async def _send(self, frame: OutFrame) -> None:
        if self.ext is not None:
            self.ext.keys.append(frame.key)
        await self.ws.send(frame.payload, text=frame.opcode == Opcode.TEXT)
        self._sent(frame)

    def _sent(self, frame: OutFrame) -> None:
        recorder = self.recorder
        recorder.on_sent_frame(self.conn, self.direction, frame.messages, self.frames_sent,
                               frame.flushed_at)
        if recorder.keeps_frames:
            comp = self.ext.compressor if self.ext is not None else None
            recorder.on_frame_coded(
                self.conn, self.direction, self.frames_sent, frame.key, len(frame.payload),
                comp.last_wire if comp is not None else len(frame.payload),
                comp is not None and comp.last_compressed)
        self.frames_sent += 1
        self.messages_sent += len(frame.messages)


class Receiver:
    """The receiving half of one live connection: every message recorded and handed on.

    A :class:`~wslab.harness.wsadapter.SinkConnection` calls :attr:`sink` with each data
    frame as the library parses it; fragments are joined and text is checked for UTF-8
    (:class:`~wslab.harness.wsadapter.Reassembler`), then a batch envelope is taken apart.
    A message that is not valid UTF-8 or not a well-formed envelope closes the connection
    with 1007 (invalid frame payload data); a hook that raises closes it with 1011. Either
    way nothing more is read from it.

    Args:
        ws: The connection (it is closed through the library on a bad frame).
        conn: The connection's label.
        direction: ``"c2s"`` on the server.
        envelope: The agreed envelope (None: one message per frame).
        recorder: Where received messages are logged.
        on_message: Called per message: payload, is_text, receive time, content key.
        on_batch: Called instead, once per batch frame, where given (:data:`BatchHook`).
    """

    __slots__ = ("closing", "conn", "direction", "envelope", "frames", "on_batch",
                 "on_message", "recorder", "sink", "ws")

    def __init__(self, ws: Any, conn: str, direction: str, envelope: str | None,
                 recorder: Recorder, on_message: MessageHook | None = None,
                 on_batch: BatchHook | None = None) -> None:
        self.ws = ws
        self.conn = conn
        self.direction = direction
        self.envelope = envelope
        self.recorder = recorder
        self.on_message = on_message
        self.on_batch = on_batch
        self.frames = 0
        self.closing = False
        self.sink = Reassembler(self._message, self._invalid_text)

    def _message(self, payload: bytes, is_text: bool) -> None:
        if self.closing:
            return
        t = time.monotonic()
        envelope = self.envelope
        hook = self.on_message
        if envelope is None:  # one message per frame: the common case, no lists
            key = self.recorder.on_received(self.conn, self.direction, t, payload, self.frames)
            self.frames += 1
            if hook is not None:
                try:
                    hook(payload, is_text, t, key)
                except Exception:
                    log.exception("message hook failed on %s", self.conn)
                    self.close(CloseCode.INTERNAL_ERROR, "internal error")
            return
        else:
            try:
                parts = envelopes.decode(envelope, payload)
            except DecodeError as exc:
                self.close(CloseCode.INVALID_DATA, f"bad {envelope} envelope: {exc}")
                return
        keys = self.recorder.on_received_frame(self.conn, self.direction, t, parts,
                                               self.frames)
        self.frames += 1
        batch_hook = self.on_batch
        if batch_hook is not None:
            try:
                batch_hook(parts, t, keys)
            except Exception:
                log.exception("message hook failed on %s", self.conn)
                self.close(CloseCode.INTERNAL_ERROR, "internal error")
        elif hook is not None:
            try:
                for (part, text), key in zip(parts, keys, strict=True):
                    hook(part, text, t, key)
            except Exception:
                log.exception("message hook failed on %s", self.conn)
                self.close(CloseCode.INTERNAL_ERROR, "internal error")

    def _invalid_text(self, reason: str) -> None:
        self.close(CloseCode.INVALID_DATA, reason)

    def close(self, code: int, reason: str) -> None:
        """Close the connection through the library, once; ignore whatever follows."""
        if self.closing:
            return
        self.closing = True
        asyncio.get_running_loop().create_task(self.ws.close(code, reason[:120]))
