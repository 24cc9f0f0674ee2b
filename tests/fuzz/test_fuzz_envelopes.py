"""Batch envelope decoder on arbitrary bytes: messages or DecodeError, bounded memory."""

from __future__ import annotations

import json

import pytest
from fuzz.strategies import bounded_peak, fuzz_settings, outcome
from hypothesis import example, given
from hypothesis import strategies as st

from wslab import envelopes
from wslab.errors import DecodeError


@pytest.mark.timeout(60)
@pytest.mark.parametrize("envelope", envelopes.ENVELOPES)
@fuzz_settings(300)
@given(frame=st.binary(max_size=512))
@example(frame=b"")
@example(frame=b"[]")
@example(frame=b"[ , ]")
@example(frame=b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f")
def test_decode_arbitrary_bytes_gives_messages_or_decode_error(envelope: str,
                                                               frame: bytes) -> None:
    got = outcome(lambda: envelopes.decode(envelope, frame), (DecodeError,))
    if isinstance(got, BaseException):
        return
    assert got, "a well-formed envelope carries at least one message"
    for payload, is_text in got:
        assert isinstance(payload, bytes) and isinstance(is_text, bool)
    # What was accepted fits inside the frame: decoding never invents bytes.
    assert sum(len(p) for p, _ in got) <= len(frame)
    if envelope != "length-prefixed":
        assert all(is_text for _, is_text in got)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("envelope", envelopes.ENVELOPES)
@fuzz_settings(150)
@given(data=st.data())
def test_encode_then_decode_is_byte_exact(envelope: str, data: st.DataObject) -> None:
    if envelope == "length-prefixed":
        messages = data.draw(st.lists(st.tuples(st.binary(max_size=64), st.booleans()),
                                      min_size=1, max_size=6))
    elif envelope == "ndjson":
        texts = st.text(max_size=30).filter(lambda s: "\n" not in s)
        messages = [(t.encode(), True) for t in data.draw(st.lists(texts, min_size=1,
                                                                    max_size=6))]
    else:
        docs = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                            lambda inner: st.lists(inner, max_size=3), max_leaves=6)
        messages = [(json.dumps(d).encode(), True)
                    for d in data.draw(st.lists(docs, min_size=1, max_size=6))]
    frame = envelopes.encode(envelope, [p for p, _ in messages], [t for _, t in messages])
    assert len(frame) == envelopes.encoded_size(envelope, [len(p) for p, _ in messages])
    assert envelopes.decode(envelope, frame) == messages


@pytest.mark.timeout(30)
@pytest.mark.parametrize("claim", [2 ** 60, 2 ** 63 - 1, 2 ** 32])
def test_length_prefix_claiming_a_huge_message_allocates_nothing(claim: int) -> None:
    # flag byte, LEB128 length, then only three bytes of "payload": about 10-14 bytes.
    leb = bytearray()
    n = claim
    while True:
        leb.append((n & 0x7F) | (0x80 if n >> 7 else 0))
        n >>= 7
        if not n:
            break
    frame = b"\x00" + bytes(leb) + b"abc"
    assert len(frame) <= 14
    with bounded_peak(64 * 1024), pytest.raises(DecodeError, match="claims"):
        envelopes.decode("length-prefixed", frame)


@pytest.mark.timeout(30)
def test_length_prefix_longer_than_64_bits_is_refused() -> None:
    frame = b"\x01" + b"\xff" * 20 + b"\x01"
    with bounded_peak(64 * 1024), pytest.raises(DecodeError, match="64 bits"):
        envelopes.decode("length-prefixed", frame)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("frame", [
    b"[" * 100_000 + b"]" * 100_000,
    b"[1," + b"[" * 100_000 + b"]" * 100_000 + b"]",
])
def test_deeply_nested_json_array_is_a_decode_error(frame: bytes) -> None:
    with pytest.raises(DecodeError):
        envelopes.decode("json-array", frame)
