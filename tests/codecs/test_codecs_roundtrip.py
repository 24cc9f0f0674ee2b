"""Round trips, decompression bombs, corrupt input and the memory formula, for every codec."""

from __future__ import annotations

import json
import tracemalloc
import zlib

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from wslab.codecs import (
    DeflateDecoder,
    DeflateEncoder,
    ZstdDecoder,
    ZstdEncoder,
    deflate_memory_bytes,
    train_dictionary,
)
from wslab.errors import DecodeError, PayloadTooBig, WslabError

MiB = 1 << 20
SAMPLES = [json.dumps({"type": "tick", "sym": s, "px": i * 1.25, "qty": i % 7}).encode()
           for i in range(300) for s in ("EURUSD", "BTCUSD")]
DICTIONARY = train_dictionary(SAMPLES, 4096)

messages_st = st.lists(
    st.one_of(st.binary(max_size=1500),
              st.sampled_from(SAMPLES),
              st.binary(max_size=40).map(lambda b: b * 50)),
    max_size=12,
)


@settings(max_examples=120, deadline=None)
@given(st.integers(9, 15), st.integers(1, 9), st.integers(-1, 9), st.booleans(), messages_st)
def test_deflate_round_trip(bits: int, mem: int, level: int, nct: bool,
                           messages: list[bytes]) -> None:
    enc = DeflateEncoder(bits, mem, level, nct)
    dec = DeflateDecoder(bits, nct)
    assert [dec.decode(enc.encode(m), max_size=MiB) for m in messages] == messages


@settings(max_examples=40, deadline=None)
@given(st.booleans(), messages_st)
def test_deflate_decoder_for_8_bits_reads_a_9_bit_encoder(nct: bool,
                                                          messages: list[bytes]) -> None:
    enc, dec = DeflateEncoder(9, 1, 6, nct), DeflateDecoder(8, nct)
    assert [dec.decode(enc.encode(m)) for m in messages] == messages


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["message", "stream", "dict"]), st.integers(-3, 9), messages_st)
def test_zstd_round_trip(mode: str, level: int, messages: list[bytes]) -> None:
    dictionary = DICTIONARY if mode == "dict" else None
    enc = ZstdEncoder(level, stream=mode == "stream", dictionary=dictionary)
    dec = ZstdDecoder(stream=mode == "stream", dictionary=dictionary)
    assert [dec.decode(enc.encode(m), max_size=MiB) for m in messages] == messages


@pytest.mark.parametrize("mode", ["message", "stream", "dict"])
def test_zstd_large_messages_come_back_whole(mode: str) -> None:
    # Regression: stream decoding used to stop at 16 KiB of a block's output.
    dictionary = DICTIONARY if mode == "dict" else None
    enc = ZstdEncoder(3, stream=mode == "stream", dictionary=dictionary)
    dec = ZstdDecoder(stream=mode == "stream", dictionary=dictionary)
    big = b"".join(SAMPLES) * 3
    for message in [big[:33_371], big, b"", SAMPLES[0], big[:200_000]]:
        assert dec.decode(enc.encode(message), max_size=4 * MiB) == message


def test_dictionary_helps_small_messages() -> None:
    plain, primed = ZstdEncoder(3), ZstdEncoder(3, dictionary=DICTIONARY)
    assert sum(len(primed.encode(m)) for m in SAMPLES[:50]) < 0.6 * sum(
        len(plain.encode(m)) for m in SAMPLES[:50])


# --- bombs --------------------------------------------------------------------------------

BOMB = bytes(64 * MiB)


def _peak_during(fn: object) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooBig):
            fn()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("nct", [False, True])
def test_deflate_bomb_stops_at_max_size(nct: bool) -> None:
    frame = DeflateEncoder(15, 8, 9, nct).encode(BOMB)
    assert len(frame) < 100_000
    dec = DeflateDecoder(15, nct)
    peak = _peak_during(lambda: dec.decode(frame, max_size=MiB))
    assert peak < 4 * MiB
    if nct:  # each message starts afresh, so the connection can go on
        assert dec.decode(DeflateEncoder(15, 8, 6, True).encode(b"ok")) == b"ok"
    else:
        with pytest.raises(DecodeError, match="unusable"):
            dec.decode(b"\x00")


def test_deflate_limit_is_exact() -> None:
    payload = DeflateEncoder().encode(b"a" * 1000)
    assert DeflateDecoder().decode(payload, max_size=1000) == b"a" * 1000
    with pytest.raises(PayloadTooBig, match="max_size=999"):
        DeflateDecoder().decode(payload, max_size=999)


@pytest.mark.parametrize("mode", ["message", "message-no-size", "stream", "dict"])
def test_zstd_bomb_stops_at_max_size(mode: str) -> None:
    if mode == "message-no-size":
        frame = zstandard.ZstdCompressor(level=3, write_content_size=False).compress(BOMB)
        dec = ZstdDecoder()
    else:
        dictionary = DICTIONARY if mode == "dict" else None
        frame = ZstdEncoder(3, stream=mode == "stream", dictionary=dictionary).encode(BOMB)
        dec = ZstdDecoder(stream=mode == "stream", dictionary=dictionary)
    assert len(frame) < 100_000
    peak = _peak_during(lambda: dec.decode(frame, max_size=MiB))
    assert peak < 4 * MiB


def test_zstd_limit_is_exact() -> None:
    for stream in (False, True):
        payload = ZstdEncoder(stream=stream).encode(b"abc" * 1000)
        assert ZstdDecoder(stream=stream).decode(payload, max_size=3000) == b"abc" * 1000
        with pytest.raises(PayloadTooBig):
            ZstdDecoder(stream=stream).decode(payload, max_size=2999)


def test_zstd_rle_block_refused_before_inflating() -> None:
    # A hand-built frame: magic, descriptor (no content size), a 128 KiB window
    # (exponent 7: 1 << (10 + 7)), then one last RLE block of 100000 copies of "x".
    header = bytes.fromhex("28b52ffd") + bytes([0x00, 7 << 3])
    rle = ((100_000 << 3) | (1 << 1) | 1).to_bytes(3, "little") + b"x"
    frame = header + rle
    assert ZstdDecoder().decode(frame) == b"x" * 100_000
    with pytest.raises(PayloadTooBig):
        ZstdDecoder().decode(frame, max_size=99_999)


# --- corrupt and truncated input -----------------------------------------------------------

def test_zstd_rejects_truncated_and_extra_data() -> None:
    frame = ZstdEncoder().encode(b"hello world " * 50)
    dec = ZstdDecoder()
    for bad, fragment in [(frame[:-3], "inside a block"), (frame[:4], "frame header"),
                          (frame + frame, "more than one frame"), (b"", "empty"),
                          (frame[:-1] + b"\xff", "does not decompress")]:
        with pytest.raises(DecodeError, match=fragment):
            dec.decode(bad)
    assert dec.decode(frame) == b"hello world " * 50  # per-message decoders carry on


def test_zstd_stream_rejects_partial_block_then_stays_failed() -> None:
    enc, dec = ZstdEncoder(stream=True), ZstdDecoder(stream=True)
    first = enc.encode(b"first message " * 20)
    with pytest.raises(DecodeError, match="inside a block"):
        dec.decode(first[:-2])
    with pytest.raises(DecodeError, match="unusable"):
        dec.decode(enc.encode(b"second"))


def test_deflate_rejects_garbage() -> None:
    with pytest.raises(DecodeError, match="does not inflate"):
        DeflateDecoder().decode(b"\xff\xff\xff\xff")


def test_zstd_dict_mismatch_is_a_decode_error() -> None:
    frame = ZstdEncoder(dictionary=DICTIONARY).encode(SAMPLES[3])
    with pytest.raises(DecodeError):
        ZstdDecoder().decode(frame)


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match=r"9\.\.15"):
        DeflateEncoder(window_bits=8)
    with pytest.raises(ValueError, match=r"8\.\.15"):
        DeflateDecoder(window_bits=16)
    with pytest.raises(ValueError, match="pick one"):
        ZstdDecoder(stream=True, dictionary=DICTIONARY)
    with pytest.raises(WslabError, match="at least 8"):
        train_dictionary(SAMPLES[:3])
    with pytest.raises(ValueError):
        zlib.compressobj(6, zlib.DEFLATED, -8)  # why 8-bit encoders are refused


# --- memory ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("bits", "mem", "compressor"),
    [(15, 8, 128 * 1024 + 128 * 1024), (14, 7, 64 * 1024 + 64 * 1024),
     (13, 6, 32 * 1024 + 32 * 1024), (12, 5, 16 * 1024 + 16 * 1024),
     (11, 4, 8 * 1024 + 8 * 1024), (10, 3, 4 * 1024 + 4 * 1024), (9, 2, 2048 + 2048)],
)
def test_memory_formula(bits: int, mem: int, compressor: int) -> None:
    # zlib: deflate (1 << (wbits + 2)) + (1 << (memLevel + 9)), inflate 1 << wbits; the
    # websockets docs' presets (15/8 .. 9/2) each pair a window with memLevel = wbits - 7.
    assert deflate_memory_bytes(bits, mem, decoder=False) == compressor
    assert deflate_memory_bytes(bits, mem) == compressor + (1 << bits)
    # Each preset step halves the estimate, as in the docs' table (316 KiB .. 33 KiB there,
    # which also counts the fixed per-connection state the formula leaves out).
    if bits > 9:
        assert deflate_memory_bytes(bits, mem) == 2 * deflate_memory_bytes(bits - 1, mem - 1)


def _raw(payload: bytes, flush: int) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -12, 5)
    out = c.compress(payload) + c.flush(flush)
    return out[:-4] if flush == zlib.Z_SYNC_FLUSH else out


@pytest.mark.parametrize("no_context", [False, True])
@pytest.mark.parametrize("zlib_sender", [False, True])
def test_decode_many_reads_what_decode_reads_one_at_a_time(no_context: bool,
                                                           zlib_sender: bool) -> None:
    """Including a message that sets BFINAL (a new stream follows it)."""

    texts = [b'{"n": %d, "pad": "%s"}' % (i, b"ab" * i) for i in range(40)]
    encoder = DeflateEncoder(12, 5, 6, no_context_takeover=no_context)
    wires = [encoder.encode(t) for t in texts[:20]]
    wires.append(_raw(texts[20], zlib.Z_FINISH))  # BFINAL: the stream ends here
    wires += [_raw(t, zlib.Z_SYNC_FLUSH) for t in texts[21:]]
    one = DeflateDecoder(12, no_context, zlib_sender=zlib_sender)
    want = [one.decode(w) for w in wires]
    assert want == texts
    ticks = iter(range(0, 10**6, 7))
    bodies, took = DeflateDecoder(12, no_context, zlib_sender=zlib_sender).decode_many(
        wires, lambda: next(ticks))
    assert bodies == want
    assert took == [7] * len(wires)


def test_encode_many_gives_encodes_bytes_and_asks_the_selector_in_order() -> None:

    texts = [b"x" * (i % 7) + b'{"k": %d}' % i for i in range(60)]
    keys = [f"t{i % 3}" for i in range(60)]
    one = DeflateEncoder(11, 4, 6)
    seen: list[tuple[str, int, int]] = []
    wires, took = DeflateEncoder(11, 4, 6).encode_many(
        texts, keys, lambda: 0, lambda k, p: len(p) % 2 == 0,
        lambda k, a, b: seen.append((k, a, b)))
    want = [one.encode(t) if len(t) % 2 == 0 else None for t in texts]
    assert wires == want
    assert seen == [(k, len(t), len(w)) for k, t, w in zip(keys, texts, want, strict=True)
                    if w is not None]
    assert len(took) == len(texts)
