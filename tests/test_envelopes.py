"""Batch envelopes: byte-exact round trips, fit checks, the auto choice, bad frames."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wslab import envelopes
from wslab.errors import DecodeError, WslabError

json_docs = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=10,
)
spacing = st.sampled_from(["", " ", "\n", "\t ", "\r\n"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(json_docs, spacing, spacing, st.booleans()), min_size=1, max_size=8))
def test_json_array_round_trip_is_byte_exact(items: list[tuple[object, str, str, bool]]) -> None:
    payloads = [
        (lead + json.dumps(doc, ensure_ascii=ascii_only) + trail).encode()
        for doc, lead, trail, ascii_only in items
    ]
    frame = envelopes.encode("json-array", payloads, [True] * len(payloads))
    assert json.loads(frame) == [json.loads(p) for p in payloads]  # a real JSON array
    assert envelopes.decode("json-array", frame) == [(p, True) for p in payloads]
    assert envelopes.encoded_size("json-array", [len(p) for p in payloads]) == len(frame)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=300), st.booleans()), min_size=1, max_size=10))
def test_length_prefixed_round_trip(items: list[tuple[bytes, bool]]) -> None:
    frame = envelopes.encode("length-prefixed", [p for p, _ in items], [t for _, t in items])
    assert envelopes.decode("length-prefixed", frame) == items
    assert envelopes.encoded_size("length-prefixed", [len(p) for p, _ in items]) == len(frame)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=50).filter(lambda s: "\n" not in s), min_size=1, max_size=10))
def test_ndjson_round_trip(texts: list[str]) -> None:
    payloads = [t.encode() for t in texts]
    frame = envelopes.encode("ndjson", payloads, [True] * len(payloads))
    assert envelopes.decode("ndjson", frame) == [(p, True) for p in payloads]
    assert envelopes.encoded_size("ndjson", [len(p) for p in payloads]) == len(frame)


def test_leb128_lengths_at_boundaries() -> None:
    for size in (0, 127, 128, 16383, 16384, 70000):
        frame = envelopes.encode("length-prefixed", [b"x" * size], [False])
        prefix = {0: 1, 127: 1, 128: 2, 16383: 2, 16384: 3, 70000: 3}[size]
        assert len(frame) == 1 + prefix + size
        assert envelopes.decode("length-prefixed", frame) == [(b"x" * size, False)]


def test_auto_picks_the_most_compact_envelope_that_fits() -> None:
    assert envelopes.choose_envelope([(b'{"a":1}', True), (b"[1]", True)]) == "json-array"
    assert envelopes.choose_envelope([(b'{"a":1}', True), (b"hello", True)]) == "ndjson"
    assert envelopes.choose_envelope([(b"a\nb", True)]) == "length-prefixed"
    assert envelopes.choose_envelope([(b"{}", True), (b"\x00", False)]) == "length-prefixed"


@pytest.mark.parametrize(
    ("envelope", "payload", "is_text", "words"),
    [
        ("ndjson", b"two\nlines", True, "newline"),
        ("json-array", b"not json", True, "JSON documents"),
        ("json-array", b"{}", False, "binary"),
        ("ndjson", b"abc", False, "binary"),
    ],
)
def test_envelope_that_cannot_carry_a_message_is_a_clear_error(
    envelope: str, payload: bytes, is_text: bool, words: str
) -> None:
    with pytest.raises(WslabError, match=words) as info:
        envelopes.check_envelope(envelope, [(b"{}", True), (payload, is_text)])
    assert "message 1" in str(info.value)


@pytest.mark.parametrize(
    ("envelope", "frame"),
    [
        ("json-array", b"{}"),
        ("json-array", b"[]"),
        ("json-array", b"[1 2]"),
        ("json-array", b"[1,]"),
        ("json-array", b"[\xff]"),
        ("length-prefixed", b""),
        ("length-prefixed", b"\x02\x01a"),
        ("length-prefixed", b"\x01\x05ab"),
        ("length-prefixed", b"\x01\x80"),
        ("length-prefixed", b"\x00" + b"\xff" * 10 + b"\x01"),
    ],
)
def test_malformed_frames_raise_decode_error(envelope: str, frame: bytes) -> None:
    with pytest.raises(DecodeError):
        envelopes.decode(envelope, frame)


def test_subprotocol_names() -> None:
    assert envelopes.subprotocol("json-array") == "wslab.v1.json-array"
    assert envelopes.envelope_of("wslab.v1.length-prefixed") == "length-prefixed"
    assert envelopes.envelope_of("wslab.v1.bogus") is None
    assert envelopes.envelope_of("graphql-ws") is None
    assert envelopes.envelope_of(None) is None
