"""x-wslab-zstd for python-websockets servers: zstd per WebSocket message, deflate behind it.

This file is shipped as ``zstd_extension.py`` by ``wslab export --target websockets`` for
configs that use zstd. It needs only ``websockets`` and ``zstandard`` (nothing from wslab)
and may be copied into any websockets (asyncio) server.

Who can speak it. No standard WebSocket extension carries zstd (RFC 7692 defines only
permessage-deflate); ``x-wslab-zstd`` is wslab's private one, marked by its ``x-`` prefix.
Only clients that implement it negotiate it: wslab's own client, or one written from the
rules below. Browsers cannot: the WebSocket API negotiates extensions itself and offers only
permessage-deflate, so a web page would need a JS/wasm zstd decoder and an application-level
scheme instead. That is what Discord's gateway does: the client asks for ``compress=
zlib-stream`` or ``compress=zstd-stream`` in the gateway URL and decompresses ordinary binary
messages itself (Discord developer docs, Gateway, "Transport Compression"; Discord
engineering blog 2024, "How Discord Reduced Websocket Traffic by 40%"). Every client that
does not offer x-wslab-zstd gets permessage-deflate from the fallback factory here.

Handshake: ``x-wslab-zstd [; mode=stream | mode=message] [; dict=<16 lowercase hex>]
[; max_window_log=<10..27>]``. Each parameter at most once; an absent mode means
``message``; ``dict`` (the id of a pre-shared dictionary file) only with ``message``;
``max_window_log`` is the largest zstd window (2^N bytes) the client allows in either
direction. An offer that breaks these rules, asks for a mode this server does not accept,
or names a dictionary file it does not hold is refused and the next offer is tried
(usually permessage-deflate). The answer always states the mode, the dict when one was
agreed, and ``max_window_log``: the smaller of the client's and this server's, which
neither side's frames may exceed. Only one of permessage-deflate and x-wslab-zstd is agreed
per connection: both use RSV1.

Frames: RSV1 set marks a compressed message, sent as one frame; RSV1 clear is a message
sent as it is (it does not touch the compression state). ``stream``: one zstd frame per
connection and direction that never ends; each message is flushed at a block boundary.
``message``: each message is one complete zstd frame that declares its content size,
primed with the dictionary its header names when a dictionary file was agreed. Receiving
never inflates past ``max_size`` (close 1009); undecodable data, or a frame needing a larger
window than agreed, closes with 1002.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zstandard
from websockets.exceptions import NegotiationError, PayloadTooBig, ProtocolError
from websockets.extensions.base import Extension, ServerExtensionFactory
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import CONT, CTRL_OPCODES, Frame
from websockets.typing import ExtensionName, ExtensionParameter

NAME = "x-wslab-zstd"
RSV1_USERS = ("permessage-deflate", NAME)
FIRST_DICT_ID = 32768  # ids below this are reserved by zstd for registered dictionaries
DICT_FORMAT = "wslab-zstd-dictionaries"
ID_PATTERN = re.compile(r"[0-9a-f]{16}")
BLOCK_MAX = 128 * 1024  # no zstd block yields more than this
WINDOW_LOGS = range(10, 28)  # 27: the largest window zstd decodes without being told to


def compressor(level: int, window_log: int,
               dictionary: zstandard.ZstdCompressionDict | None = None,
               ) -> zstandard.ZstdCompressor:
    """A compressor whose frames never need a window above 2^window_log bytes.

    The level's hash and chain tables are held to the window as well: larger tables would
    only cost memory for matches the window cannot reach.
    """
    base = zstandard.ZstdCompressionParameters.from_level(level)
    params = zstandard.ZstdCompressionParameters.from_level(
        level, window_log=min(base.window_log, window_log),
        hash_log=min(base.hash_log, window_log), chain_log=min(base.chain_log, window_log),
        write_content_size=1, write_checksum=0, write_dict_id=1)
    return zstandard.ZstdCompressor(dict_data=dictionary, compression_params=params)


class DictionaryFile:
    """A pre-shared dictionary file: one zstd dictionary per message type, and a fallback.

    The dictionary ids follow the file: the fallback gets FIRST_DICT_ID, the types (sorted)
    the ids after it, written into each dictionary's header, so that a frame's header names
    the dictionary that decodes it.
    """

    def __init__(self, path: str | Path) -> None:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            if doc.get("format") != DICT_FORMAT or doc.get("version") != 1:
                raise ValueError(f"not a version 1 {DICT_FORMAT} file")
            raw = {str(k): base64.b64decode(v, validate=True)
                   for k, v in doc["by_key"].items()}
            fallback = doc.get("fallback")
            self.fallback = (None if fallback is None
                             else base64.b64decode(fallback, validate=True))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a usable dictionary file ({exc})") from None
        digest = hashlib.sha256()
        for key in sorted(raw):
            digest.update(key.encode("utf-8") + b"\0" + len(raw[key]).to_bytes(4, "big"))
            digest.update(raw[key])
        digest.update(b"\1" + (self.fallback or b""))
        self.id = digest.hexdigest()[:16]
        if doc.get("id") != self.id:
            raise ValueError(f"{path}: content does not match its id {doc.get('id')!r}")
        self.by_id: dict[int, bytes] = {}
        self.id_of_type: dict[str, int] = {}
        if self.fallback is not None:
            self.by_id[FIRST_DICT_ID] = self._numbered(self.fallback, FIRST_DICT_ID)
        for n, key in enumerate(sorted(raw), start=1):
            self.by_id[FIRST_DICT_ID + n] = self._numbered(raw[key], FIRST_DICT_ID + n)
            self.id_of_type[key] = FIRST_DICT_ID + n

    @staticmethod
    def _numbered(raw: bytes, dict_id: int) -> bytes:
        return raw[:4] + dict_id.to_bytes(4, "little") + raw[8:]


class _Codecs:
    """Compressors and decompressors shared by every connection of one agreement.

    Per-message frames keep no state between messages, so one set serves all connections.
    """

    def __init__(self, level: int, window_log: int,
                 dictionaries: DictionaryFile | None) -> None:
        self.dictionaries = dictionaries
        self.max_window = 1 << window_log
        self.plain = compressor(level, window_log)
        self.compressors: dict[int, zstandard.ZstdCompressor] = {}
        self.decompressors: dict[int, zstandard.ZstdDecompressor] = {
            0: zstandard.ZstdDecompressor(max_window_size=self.max_window)}
        for dict_id, raw in (dictionaries.by_id.items() if dictionaries else ()):
            d = zstandard.ZstdCompressionDict(raw)
            self.compressors[dict_id] = compressor(level, window_log, d)
            self.decompressors[dict_id] = zstandard.ZstdDecompressor(
                dict_data=d, max_window_size=self.max_window)

    def compress(self, payload: bytes, kind: str | None) -> bytes:
        d = self.dictionaries
        dict_id = (d.id_of_type.get(kind or "", FIRST_DICT_ID if d.fallback else 0)
                   if d is not None else 0)
        return self.compressors.get(dict_id, self.plain).compress(payload)

    def decompress(self, data: bytes, limit: int | None) -> bytes:
        try:
            params = zstandard.get_frame_parameters(data)
        except zstandard.ZstdError as exc:
            raise ProtocolError(f"{NAME}: not a zstd frame ({exc})") from None
        if params.content_size == zstandard.CONTENTSIZE_UNKNOWN:
            raise ProtocolError(f"{NAME}: a per-message frame must declare its content size")
        if params.window_size > self.max_window:
            raise ProtocolError(f"{NAME}: frame needs a larger window than agreed")
        if limit is not None and params.content_size > limit:
            raise PayloadTooBig(params.content_size, limit)
        dctx = self.decompressors.get(params.dict_id)
        if dctx is None:
            raise ProtocolError(f"{NAME}: frame names dictionary {params.dict_id}, not agreed")
        try:  # the declared size is the output buffer: zstd cannot write past it
            out = dctx.decompress(data)
        except zstandard.ZstdError as exc:
            raise ProtocolError(f"{NAME}: frame does not decompress ({exc})") from None
        if len(out) != params.content_size:
            raise ProtocolError(f"{NAME}: frame holds other than its declared content size")
        return out


class _StreamReader:
    """One direction's never-ending zstd frame, inflated a few blocks at a time.

    The reader walks block headers itself: a block says how many input bytes it takes and
    can yield at most 128 KiB, so feeding zstd the blocks in small groups stops a bomb
    one group past the limit instead of after inflating all of it.
    """

    def __init__(self, window_log: int) -> None:
        self.max_window = 1 << window_log
        self.dobj = zstandard.ZstdDecompressor(max_window_size=self.max_window).decompressobj(
            read_across_frames=True)
        self.in_frame = False
        self.checksum = False
        self.broken = False

    def _header(self, data: bytes, pos: int) -> int:
        try:
            size = zstandard.frame_header_size(data[pos:])
            params = zstandard.get_frame_parameters(data[pos:])
        except zstandard.ZstdError as exc:
            raise ProtocolError(f"{NAME}: bad zstd frame header ({exc})") from None
        if pos + size > len(data):
            raise ProtocolError(f"{NAME}: message ends inside a frame header")
        if params.window_size > self.max_window:
            raise ProtocolError(f"{NAME}: frame needs a larger window than agreed")
        self.checksum = bool(params.has_checksum)
        self.in_frame = True
        return pos + size

    def read(self, data: bytes, limit: int | None) -> bytes:
        if self.broken:
            raise ProtocolError(f"{NAME}: stream unusable after an earlier bad message")
        self.broken = True  # until this message decodes completely
        out: list[bytes] = []
        produced = start = pos = bound = 0
        while pos < len(data):
            if not self.in_frame:
                pos = self._header(data, pos)
                continue
            if pos + 3 > len(data):
                raise ProtocolError(f"{NAME}: message ends inside a block header")
            head = int.from_bytes(data[pos:pos + 3], "little")
            last, kind, size = head & 1, (head >> 1) & 3, head >> 3
            if kind == 3 or size > BLOCK_MAX:
                raise ProtocolError(f"{NAME}: invalid zstd block")
            pos += 3 + (1 if kind == 1 else size) + (4 if last and self.checksum else 0)
            if pos > len(data):
                raise ProtocolError(f"{NAME}: message ends inside a block")
            bound += size if kind != 2 else BLOCK_MAX
            self.in_frame = not last
            if bound >= BLOCK_MAX or pos == len(data):
                produced += self._feed(data[start:pos], out)
                start, bound = pos, 0
                if limit is not None and produced > limit:
                    raise PayloadTooBig(None, limit)
        if start < len(data):
            produced += self._feed(data[start:], out)
        if limit is not None and produced > limit:
            raise PayloadTooBig(None, limit)
        self.broken = False
        return b"".join(out)

    def _feed(self, chunk: bytes, out: list[bytes]) -> int:
        try:
            got = self.dobj.decompress(chunk)
        except zstandard.ZstdError as exc:
            raise ProtocolError(f"{NAME}: data does not decompress ({exc})") from None
        out.append(got)
        return len(got)


class ZstdExtension(Extension):
    """One connection's agreed x-wslab-zstd.

    To pick a message type's dictionary for the next message, set ``kind`` before sending
    (see :func:`send_as`); without it the dictionary file's fallback is used.
    """

    name = ExtensionName(NAME)

    def __init__(self, mode: str, level: int, window_log: int, codecs: _Codecs,
                 min_size: int) -> None:
        self.mode = mode
        self.codecs = codecs
        self.min_size = min_size
        self.kind: str | None = None
        self.compressor = (compressor(level, window_log).compressobj()
                           if mode == "stream" else None)
        self.reader = _StreamReader(window_log) if mode == "stream" else None

    def encode(self, frame: Frame) -> Frame:
        if frame.opcode in CTRL_OPCODES:
            return frame
        kind, self.kind = self.kind, None
        # Fragments and small messages go out as they are (RSV1 clear).
        if frame.opcode is CONT or not frame.fin or len(frame.data) < self.min_size:
            return frame
        payload = bytes(frame.data)
        if self.compressor is not None:
            data = self.compressor.compress(payload) + self.compressor.flush(
                zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        else:
            data = self.codecs.compress(payload, kind)
        return Frame(frame.opcode, data, True, True, frame.rsv2, frame.rsv3)

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        if frame.opcode in CTRL_OPCODES or not frame.rsv1:
            return frame
        if frame.opcode is CONT or not frame.fin:
            raise ProtocolError(f"{NAME}: RSV1 on a fragment (compressed messages are one frame)")
        data = bytes(frame.data)
        out = (self.reader.read(data, max_size) if self.reader is not None
               else self.codecs.decompress(data, max_size))
        return Frame(frame.opcode, out, True, False, frame.rsv2, frame.rsv3)


def _parse_offer(params: Sequence[ExtensionParameter]) -> tuple[str, str | None, int | None]:
    seen: dict[str, str] = {}
    for key, value in params:
        if key in seen or key not in ("mode", "dict", "max_window_log") or value is None:
            raise NegotiationError(f"{NAME}: bad parameter {key}={value!r}")
        seen[key] = value
    mode, dict_id = seen.get("mode", "message"), seen.get("dict")
    if mode not in ("stream", "message"):
        raise NegotiationError(f"{NAME}: unknown mode {mode!r}")
    if dict_id is not None and (mode == "stream" or not ID_PATTERN.fullmatch(dict_id)):
        raise NegotiationError(f"{NAME}: bad dict {dict_id!r}")
    window = seen.get("max_window_log")
    if window is not None and not (window.isascii() and window.isdigit()
                                   and not window.startswith("0")
                                   and int(window) in WINDOW_LOGS):
        raise NegotiationError(f"{NAME}: bad max_window_log {window!r}")
    return mode, dict_id, None if window is None else int(window)


def _taken(accepted: Sequence[Extension]) -> bool:
    return any(ext.name in RSV1_USERS for ext in accepted)


class ZstdServerFactory(ServerExtensionFactory):
    """Accepts x-wslab-zstd offers in the modes it is given.

    Args:
        level: zstd level for what this server sends.
        max_window_log: The largest zstd window, 2^N bytes, this server uses and accepts.
        stream: Accept ``mode=stream``.
        message: Accept ``mode=message`` without a dictionary file.
        dictionaries: A dictionary file to accept ``mode=message; dict=ID`` with.
        min_size: Messages shorter than this go out uncompressed.
    """

    name = ExtensionName(NAME)

    def __init__(self, *, level: int = 3, max_window_log: int = 15, stream: bool = True,
                 message: bool = True, dictionaries: DictionaryFile | None = None,
                 min_size: int = 0) -> None:
        if max_window_log not in WINDOW_LOGS:
            raise ValueError(f"max_window_log must be 10..27, got {max_window_log}")
        self.level, self.stream, self.message = level, stream, message
        self.max_window_log = max_window_log
        self.dictionaries = dictionaries
        self.min_size = min_size
        self._codecs: dict[tuple[str, int], _Codecs] = {}

    def _shared(self, dict_id: str | None, window_log: int) -> _Codecs:
        key = (dict_id or "", window_log)
        if key not in self._codecs:
            self._codecs[key] = _Codecs(self.level, window_log,
                                        self.dictionaries if dict_id else None)
        return self._codecs[key]

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], ZstdExtension]:
        if _taken(accepted_extensions):
            raise NegotiationError(f"{NAME}: another extension already uses RSV1")
        mode, dict_id, offered = _parse_offer(params)
        if mode == "stream" and not self.stream:
            raise NegotiationError(f"{NAME}: mode=stream is not accepted here")
        if mode == "message" and dict_id is None and not self.message:
            raise NegotiationError(f"{NAME}: mode=message is not accepted here")
        if dict_id is not None and (self.dictionaries is None or dict_id != self.dictionaries.id):
            raise NegotiationError(f"{NAME}: dictionary file {dict_id} is not held here")
        window = self.max_window_log if offered is None else min(offered, self.max_window_log)
        answer: list[ExtensionParameter] = [("mode", mode)]
        if dict_id is not None:
            answer.append(("dict", dict_id))
        answer.append(("max_window_log", str(window)))
        ext = ZstdExtension(mode, self.level, window, self._shared(dict_id, window),
                            self.min_size)
        return answer, ext


class DeflateFallbackFactory(ServerPerMessageDeflateFactory):
    """The library's permessage-deflate, refused once x-wslab-zstd was agreed."""

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        if _taken(accepted_extensions):
            raise NegotiationError("permessage-deflate: x-wslab-zstd already uses RSV1")
        return super().process_request_params(params, accepted_extensions)


def server_extensions(zstd: dict[str, Any],
                      deflate: dict[str, Any] | None) -> list[ServerExtensionFactory]:
    """The factories to pass as ``serve(..., extensions=...)``: zstd first, deflate behind."""
    factories: list[ServerExtensionFactory] = [ZstdServerFactory(**zstd)]
    if deflate is not None:
        factories.append(DeflateFallbackFactory(**deflate))
    return factories


async def send_as(ws: Any, message: str | bytes, kind: str) -> None:
    """Send ``message`` compressed with the dictionary of message type ``kind``."""
    for ext in ws.protocol.extensions:
        if isinstance(ext, ZstdExtension):
            ext.kind = kind
    await ws.send(message)
