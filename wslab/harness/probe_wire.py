"""Raw WebSocket I/O for ``wslab probe``: one opening handshake, then frames, every step timed out.

What lives here: the target of a probe (:class:`Target`, from a URL, loopback unless
allowed), :func:`open_handshake` (writes the request bytes itself and reads the answer as
it comes, so a server that answers garbage, drops the connection or never answers is a
result, not an exception), and :class:`RawConn`, the client side of an open connection that
writes masked frames and reads the server's frames *as they are on the wire* (RSV1 and the
compressed size visible, which a WebSocket library hides). What must not live here: the
meaning of an answer (``probe_offers.py``), what the probe does on a connection
(``probe_behaviour.py``), compression (``wslab.codecs``).

How each step can end (:data:`FAILURES`; ``HandshakeResult.failure`` holds the key):

| key          | what happened                                                        |
|--------------|----------------------------------------------------------------------|
| refused      | nothing listens there (connection refused, unreachable)             |
| timeout      | no complete answer within the step's timeout                         |
| dropped      | the server closed the connection before a complete answer            |
| garbage      | the bytes that came back are not an HTTP/1.1 response                |
| too-large    | the response head is over 64 KiB                                     |
| bad-accept   | 101 with a ``Sec-WebSocket-Accept`` that does not prove the key      |
|              | (RFC 6455 section 4.1)                                               |
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import os
import ssl
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from websockets.utils import apply_mask

from wslab.errors import WslabError
from wslab.wire import Opcode

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HEAD_LIMIT = 64 * 1024
USER_AGENT = "wslab-probe"

FAILURES: dict[str, str] = {
    "refused": "nothing accepts connections there",
    "timeout": "no complete answer within the timeout",
    "dropped": "the server closed the connection before a complete answer",
    "garbage": "the answer is not an HTTP/1.1 response",
    "too-large": f"the response head is over {HEAD_LIMIT // 1024} KiB",
    "bad-accept": "Sec-WebSocket-Accept does not prove the key (RFC 6455 section 4.1)",
}


class ProbeStepError(Exception):
    """A step on an open connection failed: ``kind`` is a :data:`FAILURES` key or a close."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Target:
    """Where to probe: ``ws://`` or ``wss://`` host, port and request path."""

    host: str
    port: int
    path: str
    secure: bool = False

    @property
    def url(self) -> str:
        scheme = "wss" if self.secure else "ws"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{self.path}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost`` or a loopback address)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_target(url: str, *, allow_remote: bool = False) -> Target:
    """The :class:`Target` of ``url``.

    Raises:
        WslabError: Not a ws:// or wss:// URL, or a host other than loopback without
            ``allow_remote``.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise WslabError(f"probe: {url!r} is not a ws:// or wss:// URL")
    try:
        port = parts.port or (443 if parts.scheme == "wss" else 80)
    except ValueError as exc:
        raise WslabError(f"probe: {url!r} has a bad port: {exc}") from None
    host = parts.hostname
    if not allow_remote and not is_loopback(host):
        raise WslabError(f"probe: {host} is not a loopback address; pass --allow-remote to "
                         "probe a server on another machine (only your own servers)")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(host, port, path, parts.scheme == "wss")


@dataclass
class HandshakeResult:
    """How one opening handshake ended (``failure`` is None when an HTTP answer came)."""

    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    failure: str | None = None
    detail: str = ""
    seconds: float = 0.0

    def header(self, name: str) -> str | None:
        """A header's value; repeated lines joined with ``, `` (None: absent)."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    @property
    def upgraded(self) -> bool:
        return self.failure is None and self.status == 101

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "reason": self.reason, "failure": self.failure,
                "detail": self.detail, "seconds": round(self.seconds, 4),
                "extensions": self.header("Sec-WebSocket-Extensions"),
                "subprotocol": self.header("Sec-WebSocket-Protocol"),
                "server": self.header("Server")}


def _request(target: Target, key: str, extensions: str | None,
             subprotocols: tuple[str, ...], origin: str | None) -> bytes:
    host = f"[{target.host}]" if ":" in target.host else target.host
    lines = [f"GET {target.path} HTTP/1.1", f"Host: {host}:{target.port}",
             "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
             "Sec-WebSocket-Version: 13", f"User-Agent: {USER_AGENT}"]
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    if subprotocols:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
    if origin:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_head(head: bytes, result: HandshakeResult) -> None:
    text = head.decode("latin-1")
    status_line, *lines = text.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        result.failure, result.detail = "garbage", f"first line {status_line[:60]!r}"
        return
    result.status = int(parts[1])
    result.reason = parts[2] if len(parts) > 2 else ""
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            result.failure, result.detail = "garbage", f"header line {line[:60]!r}"
            return
        result.headers.append((name, value.strip()))


async def open_handshake(target: Target, *, extensions: str | None = None,
                         subprotocols: tuple[str, ...] = (), origin: str | None = None,
                         timeout: float = 3.0,
                         ) -> tuple[HandshakeResult, RawConn | None]:
    """Send one opening handshake and read the answer, each step within ``timeout``.

    Returns:
        The result, and the open connection when the server switched protocols (the
        caller closes it); otherwise None and the socket is closed here.
    """
    result = HandshakeResult()
    started = time.monotonic()
    key = base64.b64encode(os.urandom(16)).decode()
    writer: asyncio.StreamWriter | None = None
    try:
        try:
            context = ssl.create_default_context() if target.secure else None
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                target.host, target.port, ssl=context, limit=HEAD_LIMIT), timeout)
        except TimeoutError:
            result.failure, result.detail = "timeout", f"connecting took over {timeout:g} s"
            return result, None
        except OSError as exc:
            result.failure, result.detail = "refused", exc.strerror or str(exc)
            return result, None
        assert writer is not None
        writer.write(_request(target, key, extensions, subprotocols, origin))
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        except TimeoutError:
            result.failure = "timeout"
            result.detail = f"no complete response within {timeout:g} s"
            return result, None
        except asyncio.IncompleteReadError as exc:
            got = exc.partial
            result.failure = "garbage" if got and not got.startswith(b"HTTP/") else "dropped"
            result.detail = (f"closed after {len(got)} bytes: {got[:40]!r}" if got
                             else "closed without a byte")
            return result, None
        except asyncio.LimitOverrunError:
            result.failure, result.detail = "too-large", "no end of headers in 64 KiB"
            return result, None
        except OSError as exc:
            result.failure, result.detail = "dropped", exc.strerror or str(exc)
            return result, None
        _parse_head(head, result)
        if result.upgraded:
            expected = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            if result.header("Sec-WebSocket-Accept") != expected:
                result.failure = "bad-accept"
                result.detail = f"got {result.header('Sec-WebSocket-Accept')!r}"
                return result, None
            conn = RawConn(reader, writer)
            writer = None  # the connection owns it now
            return result, conn
        return result, None
    finally:
        result.seconds = time.monotonic() - started
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 0.5)


@dataclass(frozen=True)
class Frame:
    """One frame as the server sent it: ``wire`` counts header and payload bytes."""

    opcode: int
    payload: bytes
    fin: bool
    rsv1: bool
    wire: int
    masked: bool = False


def client_frame(opcode: int, payload: bytes, *, rsv1: bool = False, fin: bool = True) -> bytes:
    """A masked client frame (RFC 6455 section 5.2)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    mask = os.urandom(4)
    return head + mask + apply_mask(payload, mask)


class RawConn:
    """The client end of an open WebSocket connection, frame by frame.

    Reads refuse a frame longer than ``max_frame`` bytes (a hostile server cannot make
    the probe allocate more); every read has a timeout.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 max_frame: int = 128 * 1024 * 1024) -> None:
        self.reader, self.writer = reader, writer
        self.max_frame = max_frame
        self.closed: int | None = None  # the server's close code, once seen

    async def send(self, opcode: int, payload: bytes, *, rsv1: bool = False) -> None:
        """Write one frame and wait until the transport took it."""
        self.writer.write(client_frame(opcode, payload, rsv1=rsv1))
        await self.writer.drain()

    async def read_frame(self, timeout: float) -> Frame:
        """The next frame, within ``timeout`` seconds.

        Raises:
            ProbeStepError: ``timeout``, ``dropped`` (connection closed), ``too-large``.
        """
        try:
            return await asyncio.wait_for(self._read(), timeout)
        except TimeoutError:
            raise ProbeStepError("timeout", f"no frame within {timeout:g} s") from None
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise ProbeStepError("dropped", f"connection closed ({exc.__class__.__name__})") \
                from None

    async def _read(self) -> Frame:
        b1, b2 = await self.reader.readexactly(2)
        n = b2 & 0x7F
        extra = 2
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            extra += 2
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            extra += 8
        if n > self.max_frame:
            raise ProbeStepError("too-large", f"a frame of {n} bytes is over the probe's "
                                 f"cap of {self.max_frame}")
        masked = bool(b2 & 0x80)
        mask = await self.reader.readexactly(4) if masked else b""
        payload = await self.reader.readexactly(n)
        if masked:
            payload = apply_mask(payload, mask)
        opcode = b1 & 0x0F
        if opcode == Opcode.CLOSE:
            self.closed = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        return Frame(opcode, payload, bool(b1 & 0x80), bool(b1 & 0x40),
                     extra + len(mask) + n, masked)

    async def close(self, code: int = 1000, timeout: float = 1.0) -> None:
        """Send a close frame (unless the server closed), then drop the socket."""
        with contextlib.suppress(Exception):
            if self.closed is None:
                await asyncio.wait_for(self.send(Opcode.CLOSE, struct.pack("!H", code)),
                                       timeout)
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), timeout)

    def abort(self) -> None:
        """Drop the socket at once."""
        self.writer.transport.abort()
