"""One probe connection: frames read as they are, messages inflated with what was agreed.

What lives here: :class:`ProbeConn`, a :class:`~wslab.harness.probe_wire.RawConn` with the
agreed permessage-deflate, and :class:`Message`, a data message as it came (inflated
payload, its size on the wire, RSV1, how many frames). A ``ProbeConn`` reassembles
fragments, inflates with the agreed window and context rules, answers pings (or not:
``answer_pings``), times pongs, and records what the server did on its own (its pings,
its close) and what it did wrong (``problems``: masked frames, RSV1 without an extension,
a message that does not inflate, a pong that does not echo its ping). What must not live
here: the probes themselves (``probe_behaviour.py``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from wslab.codecs.deflate import DeflateDecoder
from wslab.codecs.deflate_params import AgreedDeflate
from wslab.errors import WslabError
from wslab.harness.probe_wire import ProbeStepError, RawConn
from wslab.wire import Opcode

INFLATE_LIMIT = 1 << 26
"""The largest message the probe inflates (64 MiB): a compressed bomb stops there."""


@dataclass
class Message:
    """One data message as it came: payload (inflated), and how it travelled."""

    opcode: int
    payload: bytes
    wire_payload: int
    compressed: bool
    frames: int
    at: float


@dataclass
class ProbeConn:
    """An open connection with what was agreed on it (see the module docstring)."""

    raw: RawConn
    deflate: AgreedDeflate | None = None
    answer_pings: bool = True
    server_pings: list[float] = field(default_factory=list)
    pongs: list[tuple[float, bytes]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    opened: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    _decoder: DeflateDecoder | None = None

    def __post_init__(self) -> None:
        if self.deflate is not None:
            self._decoder = self.deflate.decoder_for("client")

    async def send_text(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        await self.raw.send(Opcode.TEXT, data)

    async def next_message(self, timeout: float, *, inflate: bool = True) -> Message:
        """The next data message; control frames in between are handled.

        Raises:
            ProbeStepError: ``timeout``, ``dropped``, ``closed`` (kind ``close:<code>``).
        """
        got = await self._next(timeout, inflate, until_pong=False)
        assert got is not None
        return got

    async def _next(self, timeout: float, inflate: bool, *, until_pong: bool,
                    ) -> Message | None:
        """The next data message, or None as soon as a pong came (``until_pong``)."""
        deadline = time.monotonic() + timeout
        parts: list[bytes] = []
        opcode, compressed, wire, frames = 0, False, 0, 0
        while True:
            frame = await self.raw.read_frame(max(0.0, deadline - time.monotonic()))
            if frame.masked:
                self._problem("the server masks its frames (RFC 6455 5.1 forbids it)")
            if await self._control(frame.opcode, frame.payload):
                if until_pong and frame.opcode == Opcode.PONG and not parts:
                    return None
                continue
            if not parts and frame.opcode != Opcode.CONT:
                opcode, compressed = frame.opcode, frame.rsv1
            wire += len(frame.payload)
            frames += 1
            parts.append(frame.payload)
            if frame.fin:
                break
        payload = b"".join(parts)
        if compressed and inflate:
            payload = self._inflate(payload)
        return Message(opcode, payload, wire, compressed, frames, time.monotonic())

    def _inflate(self, payload: bytes) -> bytes:
        if self._decoder is None:
            self._problem("a message with RSV1 set although no extension was agreed "
                          "(RFC 6455 5.2)")
            return payload
        try:
            return self._decoder.decode(payload, INFLATE_LIMIT)
        except WslabError as exc:
            self._problem(f"a compressed message does not inflate with the agreed window "
                          f"and context rules (RFC 7692 7.2.2): {exc}")
            return payload

    async def _control(self, opcode: int, payload: bytes) -> bool:
        now = time.monotonic()
        if opcode == Opcode.PING:
            self.server_pings.append(now)
            if self.answer_pings:
                await self.raw.send(Opcode.PONG, payload)
            return True
        if opcode == Opcode.PONG:
            self.pongs.append((now, payload))
            return True
        if opcode == Opcode.CLOSE:
            self.closed_at = now
            raise ProbeStepError(f"close:{self.raw.closed}", f"the server closed with "
                                 f"{self.raw.closed}")
        return False

    async def wait_pong(self, payload: bytes, timeout: float) -> float:
        """Send a ping and wait for its pong, reading (and dropping) data meanwhile."""
        seen = len(self.pongs)
        started = time.monotonic()
        await self.raw.send(Opcode.PING, payload)
        deadline = started + timeout
        while True:
            for at, got in self.pongs[seen:]:
                if got != payload:
                    self._problem("a pong did not echo its ping's payload (RFC 6455 5.5.3)")
                return at - started
            await self._next(max(0.0, deadline - time.monotonic()), False, until_pong=True)

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    async def close(self) -> None:
        await self.raw.close()


Opener = Callable[[], Awaitable[ProbeConn]]
"""Opens a fresh probe connection (the probes that need several take one)."""
