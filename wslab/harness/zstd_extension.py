"""``x-wslab-zstd`` on the websockets extension API: the extension and its two factories.

What lives here: :class:`ZstdExtension` (a :class:`~wslab.harness.extension.SelectiveSender`,
so the session's frame keys and the :class:`~wslab.compressor.FrameCompressor` decide,
compress and learn per frame exactly as with permessage-deflate and as in the simulator),
:class:`ServerZstdFactory` and :class:`ClientZstdFactory` (the handshake, following the
tables of ``wslab/codecs/zstd_negotiation.py``), and the permessage-deflate factories that
stand behind them as the fallback (:class:`DeflateFallbackServerFactory`,
:class:`DeflateFallbackClientFactory`: the library's negotiation, refusing to join a
connection that already agreed on ``x-wslab-zstd``, since both give RSV1 a meaning).

What must not live here: the negotiation rules (sans-I/O, in ``zstd_negotiation.py``),
the codecs (``zstd.py``, ``zstd_dict.py``), which messages to compress (the selector).

Windows: each side compresses with at most the smaller of its own ``zstd_window_log`` and
the agreed ``max_window_log``, and its decoder refuses frames that need a larger window
than agreed (1002), so a peer cannot make it allocate more.

Sending builds the codec on the first compressed frame, with the codecs the simulator
builds for the same config (:class:`~wslab.codecs.zstd.ZstdEncoder` with ``stream=True``,
:class:`~wslab.codecs.zstd_dict.ZstdDictSetEncoder`), so live frames are byte for byte the
simulator's. Per-message codecs keep no state between messages, so one encoder and one
decoder per (mode, set, level) serve every connection of the process: a server does not
hold a copy of the dictionaries per connection. A stream keeps one context per
connection and direction.

Receiving maps codec errors onto close codes (the framing table of
``zstd_negotiation.py``): output past ``max_size`` raises the library's
``PayloadTooBig`` (1009); bytes that do not decompress, an RSV1 fragment and a
per-message frame without its content size raise ``ProtocolError`` (1002). A text message
that decompresses to invalid UTF-8 is closed with 1007 by the library itself.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

import zstandard
from websockets.exceptions import NegotiationError as WsNegotiationError
from websockets.exceptions import PayloadTooBig as WsPayloadTooBig
from websockets.exceptions import ProtocolError
from websockets.extensions.base import (
    ClientExtensionFactory,
    Extension,
    ServerExtensionFactory,
)
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import CONT, CTRL_OPCODES, Frame
from websockets.typing import ExtensionName, ExtensionParameter

from wslab.codecs.base import MessageDecoder, MessageEncoder
from wslab.codecs.zstd import ZstdDecoder, ZstdEncoder
from wslab.codecs.zstd_dict import DictionarySet, ZstdDictSetDecoder, ZstdDictSetEncoder
from wslab.codecs.zstd_negotiation import (
    EXTENSION_NAME,
    AgreedZstd,
    ServerZstdLimits,
    ZstdParams,
    client_check_response,
    rsv1_conflict,
    server_params,
)
from wslab.compressor import FrameCompressor
from wslab.errors import DecodeError, NegotiationError, PayloadTooBig
from wslab.harness.extension import (
    SelectiveClientDeflateFactory,
    SelectiveSender,
    SelectiveServerDeflateFactory,
)

_SHARED_MAX = 8
_shared: OrderedDict[tuple[str, str, str, int, int], object] = OrderedDict()


def _shared_codec(kind: str, agreed: AgreedZstd, level: int, window_log: int,
                  build: Callable[[], object]) -> object:
    """One stateless per-message codec per (kind, set, level, window) for the process."""
    key = (kind, agreed.mode, agreed.dict_id or "", level, window_log)
    codec = _shared.get(key)
    if codec is None:
        codec = _shared[key] = build()
        if len(_shared) > _SHARED_MAX:
            _shared.popitem(last=False)
    else:
        _shared.move_to_end(key)
    return codec


def _names(extensions: Sequence[Extension]) -> list[str]:
    return [str(ext.name) for ext in extensions]


class ZstdExtension(SelectiveSender, Extension):
    """A negotiated ``x-wslab-zstd``: compresses what the selector picks, decodes RSV1.

    Args:
        agreed: The negotiated mode, window (and set).
        level: The zstd level this side compresses with (each sender picks its own).
        window_log: This side's own largest window (its config); it compresses with the
            smaller of this and the agreed one, and refuses frames past the agreed one.
    """

    name = ExtensionName(EXTENSION_NAME)

    def __init__(self, agreed: AgreedZstd, level: int, window_log: int) -> None:
        self.agreed = agreed
        self.level = level
        self.window_log = min(window_log, agreed.window_log)
        self.keys = deque()
        self.compressor = FrameCompressor(self._new_encoder)
        self._decoder: MessageDecoder | None = None

    def __repr__(self) -> str:
        return (f"ZstdExtension(mode={self.agreed.mode}, dict={self.agreed.dict_id}, "
                f"level={self.level}, window_log={self.window_log})")

    def _new_encoder(self) -> MessageEncoder:
        agreed, level, window = self.agreed, self.level, self.window_log
        if agreed.mode == "stream":
            return ZstdEncoder(level, stream=True, window_log=window)
        sets = agreed.dictionaries
        if sets is not None:
            enc = _shared_codec("enc", agreed, level, window,
                                lambda: ZstdDictSetEncoder(sets, level, window_log=window))
        else:
            enc = _shared_codec("enc", agreed, level, window,
                                lambda: ZstdEncoder(level, window_log=window))
        assert isinstance(enc, ZstdEncoder | ZstdDictSetEncoder)
        return enc

    @property
    def decoder(self) -> MessageDecoder:
        """The codec reading the peer's compressed messages (built on first use)."""
        if self._decoder is None:
            agreed = self.agreed
            sets, limit = agreed.dictionaries, agreed.window_log
            if agreed.mode == "stream":
                self._decoder = ZstdDecoder(stream=True, max_window_log=limit)
            elif sets is not None:
                dec = _shared_codec("dec", agreed, 0, limit,
                                    lambda: ZstdDictSetDecoder(sets, max_window_log=limit))
                assert isinstance(dec, ZstdDictSetDecoder)
                self._decoder = dec
            else:
                plain = _shared_codec("dec", agreed, 0, limit,
                                      lambda: ZstdDecoder(max_window_log=limit))
                assert isinstance(plain, ZstdDecoder)
                self._decoder = plain
        return self._decoder

    def encode(self, frame: Frame) -> Frame:
        """Compress a data frame unless the selector says to skip it."""
        if frame.opcode in CTRL_OPCODES:
            return frame
        return self.encode_data(frame)

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        """Decompress a frame with RSV1 set; pass everything else through."""
        if frame.opcode in CTRL_OPCODES:
            return frame  # the library refuses RSV1 on a control frame itself (1002)
        if frame.opcode is CONT:
            if frame.rsv1:
                raise ProtocolError(f"{EXTENSION_NAME}: RSV1 set on a continuation frame")
            return frame
        if not frame.rsv1:
            return frame
        if not frame.fin:
            raise ProtocolError(f"{EXTENSION_NAME}: a compressed message must be one frame "
                                "(RSV1 set on a fragment)")
        data = bytes(frame.data)
        if self.agreed.mode == "message":
            _check_content_size(data)
        try:
            out = self.decoder.decode(data, max_size)
        except PayloadTooBig:
            raise WsPayloadTooBig(None, max_size if max_size is not None else 0) from None
        except DecodeError as exc:
            raise ProtocolError(f"{EXTENSION_NAME}: {exc}") from None
        return Frame(frame.opcode, out, True, False, frame.rsv2, frame.rsv3)


def _check_content_size(data: bytes) -> None:
    """A per-message frame must declare its content size (the receiver bounds it first)."""
    try:
        declared = zstandard.get_frame_parameters(data).content_size
    except zstandard.ZstdError as exc:
        raise ProtocolError(f"{EXTENSION_NAME}: zstd frame header does not parse "
                            f"({exc})") from None
    if declared == zstandard.CONTENTSIZE_UNKNOWN:
        raise ProtocolError(f"{EXTENSION_NAME}: a per-message zstd frame must declare "
                            "its content size")


class ServerZstdFactory(ServerExtensionFactory):
    """Accepts ``x-wslab-zstd`` offers within ``limits`` (``zstd_negotiation`` tables).

    Args:
        limits: The modes, window and dictionary sets this server accepts.
        level: The zstd level the server compresses with.
    """

    name = ExtensionName(EXTENSION_NAME)

    def __init__(self, limits: ServerZstdLimits, level: int) -> None:
        self.limits = limits
        self.level = level

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], ZstdExtension]:
        """The answer and the extension, or NegotiationError to refuse this offer."""
        conflict = rsv1_conflict(EXTENSION_NAME, _names(accepted_extensions))
        if conflict is not None:
            raise WsNegotiationError(conflict)
        try:
            result = server_params(params, self.limits)
        except NegotiationError as exc:
            raise WsNegotiationError(str(exc)) from None
        ext = ZstdExtension(result, self.level, self.limits.max_window_log)
        return list(result.response.to_params()), ext


class ClientZstdFactory(ClientExtensionFactory):
    """Offers one ``x-wslab-zstd`` element and checks the server's answer against it.

    Args:
        offer: The element to offer (its ``max_window_log`` is also the largest window
            this client compresses with; None: the agreed one).
        level: The zstd level the client compresses with.
        dictionaries: The set the offer names (required when it names one).
    """

    name = ExtensionName(EXTENSION_NAME)

    def __init__(self, offer: ZstdParams, level: int,
                 dictionaries: DictionarySet | None = None) -> None:
        if offer.dict_id is not None and (dictionaries is None
                                          or dictionaries.id != offer.dict_id):
            raise ValueError(f"the offer names dictionary set {offer.dict_id}; pass that set")
        self.offer = offer
        self.level = level
        self.dictionaries = dictionaries

    def get_request_params(self) -> list[ExtensionParameter]:
        """The offer's parameters."""
        return list(self.offer.to_params())

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> ZstdExtension:
        """The extension for an answer that matches the offer; NegotiationError otherwise."""
        conflict = rsv1_conflict(EXTENSION_NAME, _names(accepted_extensions))
        if conflict is not None:
            raise WsNegotiationError(conflict)
        try:
            agreed = client_check_response(self.offer, params, self.dictionaries)
        except NegotiationError as exc:
            raise WsNegotiationError(str(exc)) from None
        return ZstdExtension(agreed, self.level, self.offer.max_window_log or agreed.window_log)


class DeflateFallbackServerFactory(SelectiveServerDeflateFactory):
    """wslab's permessage-deflate, refused on a connection that agreed on x-wslab-zstd."""

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        """Refuse after zstd; otherwise negotiate as the library does."""
        conflict = rsv1_conflict(str(self.name), _names(accepted_extensions))
        if conflict is not None:
            raise WsNegotiationError(conflict)
        return super().process_request_params(params, accepted_extensions)


class DeflateFallbackClientFactory(SelectiveClientDeflateFactory):
    """The client's permessage-deflate offer behind x-wslab-zstd; both at once fail."""

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> PerMessageDeflate:
        """Fail a server that answered both; otherwise check as the library does."""
        conflict = rsv1_conflict(str(self.name), _names(accepted_extensions))
        if conflict is not None:
            raise WsNegotiationError(conflict)
        return super().process_response_params(params, accepted_extensions)

