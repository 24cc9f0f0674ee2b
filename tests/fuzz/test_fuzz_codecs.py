"""Header parser, negotiation and decompressors on arbitrary input."""

from __future__ import annotations

import zlib
from functools import partial

import pytest
import zstandard
from fuzz.strategies import bounded_peak, fuzz_settings, outcome
from hypothesis import example, given
from hypothesis import strategies as st

from wslab.codecs.deflate import DeflateDecoder, DeflateEncoder
from wslab.codecs.deflate_params import ServerDeflateLimits
from wslab.codecs.extheader import TOKEN_CHARS, format_extensions, parse_extensions
from wslab.codecs.negotiation import server_accept
from wslab.codecs.zstd import ZstdDecoder
from wslab.errors import DecodeError, NegotiationError, PayloadTooBig

# Text built from the grammar's own pieces finds the interesting corners far more often
# than uniform Unicode does; both are tried.
_PIECES = st.sampled_from([
    "permessage-deflate", "x-webkit-deflate-frame", "server_no_context_takeover",
    "client_no_context_takeover", "server_max_window_bits", "client_max_window_bits",
    "=", ";", ",", " ", "\t", '"', "\\", "8", "9", "10", "15", "16", "0", "012", "x",
    "\u00e9", "\x00", "\r\n",
])
header_text = st.text(max_size=200) | st.lists(_PIECES, max_size=30).map("".join)
LIMITS = [
    ServerDeflateLimits(),
    ServerDeflateLimits(server_no_context_takeover=True, client_no_context_takeover=True,
                        server_max_window_bits=10, client_max_window_bits=9,
                        require_client_max_window_bits=True),
]


@pytest.mark.timeout(60)
@fuzz_settings(400)
@given(text=header_text)
@example(text="")
@example(text=" , ,")
@example(text='permessage-deflate; client_max_window_bits="1\\5"')
def test_parse_extensions_gives_offers_or_negotiation_error(text: str) -> None:
    got = outcome(lambda: parse_extensions(text), (NegotiationError,))
    if isinstance(got, BaseException):
        return
    assert got
    for offer in got:
        assert offer.name and set(offer.name) <= TOKEN_CHARS
        for key, value in offer.params:
            assert key and set(key) <= TOKEN_CHARS
            assert value is None or (value and set(value) <= TOKEN_CHARS)
    # What parsed formats back to a header that parses to the same offers.
    assert parse_extensions(format_extensions(got)) == got


@pytest.mark.timeout(60)
@pytest.mark.parametrize("limits", LIMITS, ids=["defaults", "strict"])
@fuzz_settings(300)
@given(text=header_text)
@example(text="permessage-deflate; server_max_window_bits=8")
@example(text="permessage-deflate; client_max_window_bits; client_max_window_bits")
def test_server_accept_answers_declines_or_raises_negotiation_error(
        limits: ServerDeflateLimits, text: str) -> None:
    declined: list[str] = []
    got = outcome(lambda: server_accept(text, limits, declined), (NegotiationError,))
    if isinstance(got, BaseException) or got is None:
        return
    response, agreed = got
    # The answer is one the server's own limits allow (RFC 7692 section 7.1).
    if limits.server_max_window_bits is not None:
        assert agreed.server_max_window_bits <= limits.server_max_window_bits
    if limits.server_no_context_takeover:
        assert response.server_no_context_takeover
    assert 9 <= agreed.server_max_window_bits <= 15


def _deflate(payload: bytes) -> bytes:
    return DeflateEncoder(window_bits=15).encode(payload)


compressed_ish = (st.binary(max_size=300)
                  | st.binary(max_size=3000).map(_deflate)
                  | st.binary(max_size=300).map(lambda b: zstandard.ZstdCompressor().compress(b))
                  | st.binary(max_size=300).map(lambda b: zlib.compress(b)[2:-4]))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("no_context_takeover", [False, True])
@fuzz_settings(250)
@given(messages=st.lists(compressed_ish, min_size=1, max_size=3),
       max_size=st.none() | st.integers(0, 4096))
@example(messages=[b"\x03\x00"], max_size=0)
@example(messages=[_deflate(b"a" * 100_000)], max_size=1000)
def test_deflate_decoder_gives_bytes_or_decode_error(
        no_context_takeover: bool, messages: list[bytes], max_size: int | None) -> None:
    decoder = DeflateDecoder(window_bits=15, no_context_takeover=no_context_takeover)
    for data in messages:
        got = outcome(partial(decoder.decode, data, max_size), (DecodeError, PayloadTooBig))
        if isinstance(got, bytes) and max_size is not None:
            assert len(got) <= max_size


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["frame", "stream"])
@fuzz_settings(250)
@given(messages=st.lists(compressed_ish, min_size=1, max_size=3),
       max_size=st.none() | st.integers(0, 4096))
@example(messages=[b""], max_size=10)
@example(messages=[zstandard.ZstdCompressor().compress(b"z" * 100_000)], max_size=1000)
def test_zstd_decoder_gives_bytes_or_decode_error(
        mode: str, messages: list[bytes], max_size: int | None) -> None:
    decoder = ZstdDecoder(stream=mode == "stream")
    for data in messages:
        got = outcome(partial(decoder.decode, data, max_size), (DecodeError, PayloadTooBig))
        if isinstance(got, bytes) and max_size is not None:
            assert len(got) <= max_size


@pytest.mark.timeout(30)
def test_deflate_bomb_stops_at_max_size_without_inflating() -> None:
    bomb = _deflate(b"\x00" * (64 << 20))  # 64 MiB of zeros in about 64 KiB
    assert len(bomb) < 128 * 1024
    decoder = DeflateDecoder()
    with bounded_peak(4 << 20), pytest.raises(PayloadTooBig):
        decoder.decode(bomb, max_size=1 << 20)
    with pytest.raises(DecodeError, match="unusable"):  # its window is lost: never reused
        decoder.decode(_deflate(b"x"), max_size=1 << 20)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("declare", [True, False])
def test_zstd_bomb_stops_at_max_size_without_inflating(declare: bool) -> None:
    zeros = b"\x00" * (64 << 20)
    cctx = zstandard.ZstdCompressor(write_content_size=declare)
    if declare:
        bomb = cctx.compress(zeros)
    else:  # a streamed frame: its header does not say how big the content is
        obj = cctx.compressobj()
        bomb = obj.compress(zeros) + obj.flush()
    assert len(bomb) < 64 * 1024
    with bounded_peak(4 << 20), pytest.raises(PayloadTooBig):
        ZstdDecoder().decode(bomb, max_size=1 << 20)
