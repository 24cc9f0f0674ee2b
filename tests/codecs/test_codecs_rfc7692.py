"""RFC 7692's own examples: section 7.1.3 negotiation and section 7.2.3 payload bytes."""

from __future__ import annotations

import pytest

from wslab.codecs.deflate import DeflateDecoder, DeflateEncoder
from wslab.codecs.negotiation import (
    DeflateParams,
    ServerDeflateLimits,
    client_check_response,
    server_accept,
)

HELLO_ONE_BLOCK = bytes.fromhex("f248cdc9c90700")  # 7.2.3.1
HELLO_AGAIN_SHARED_WINDOW = bytes.fromhex("f200110000")  # 7.2.3.2


def test_7_2_3_1_hello_compresses_to_the_rfc_bytes() -> None:
    enc = DeflateEncoder(window_bits=15, mem_level=8, level=-1)
    payload = enc.encode(b"Hello")
    assert payload == HELLO_ONE_BLOCK
    # The whole frame of the example: FIN + RSV1 + text opcode, then the length.
    assert bytes([0xC1, len(payload)]) + payload == bytes.fromhex("c107f248cdc9c90700")


def test_7_2_3_1_fragments_join_to_one_message() -> None:
    fragments = [bytes.fromhex("f248cd"), bytes.fromhex("c9c90700")]
    assert DeflateDecoder().decode(b"".join(fragments)) == b"Hello"


def test_7_2_3_2_context_takeover_shares_the_window() -> None:
    enc = DeflateEncoder(window_bits=15, mem_level=8, level=-1)
    assert [enc.encode(b"Hello"), enc.encode(b"Hello")] == [
        HELLO_ONE_BLOCK, HELLO_AGAIN_SHARED_WINDOW]
    dec = DeflateDecoder()
    assert dec.decode(HELLO_ONE_BLOCK) == b"Hello"
    assert dec.decode(HELLO_AGAIN_SHARED_WINDOW) == b"Hello"


def test_7_2_3_2_without_context_takeover_messages_repeat() -> None:
    enc = DeflateEncoder(window_bits=15, mem_level=8, level=-1, no_context_takeover=True)
    assert enc.encode(b"Hello") == enc.encode(b"Hello") == HELLO_ONE_BLOCK
    # A fresh decoder cannot read the second form: it refers back to the first message.
    fresh = DeflateDecoder(no_context_takeover=True)
    with pytest.raises(Exception, match="inflate"):
        fresh.decode(HELLO_AGAIN_SHARED_WINDOW)


@pytest.mark.parametrize(
    ("section", "payload"),
    [
        ("7.2.3.3 stored block", "000500faff48656c6c6f00"),
        ("7.2.3.4 BFINAL set", "f348cdc9c9070000"),
        ("7.2.3.5 two blocks", "f24805000000ffffcac9c90700"),
    ],
)
def test_7_2_3_other_sender_forms_decode(section: str, payload: str) -> None:
    assert DeflateDecoder().decode(bytes.fromhex(payload)) == b"Hello", section


def test_7_2_3_4_context_survives_a_bfinal_block() -> None:
    dec = DeflateDecoder()
    assert dec.decode(bytes.fromhex("f348cdc9c9070000")) == b"Hello"
    assert dec.decode(HELLO_AGAIN_SHARED_WINDOW) == b"Hello"


def test_7_2_3_6_empty_message_is_one_zero_byte() -> None:
    assert DeflateEncoder().encode(b"") == b"\x00"
    assert DeflateDecoder().decode(b"\x00") == b""


# --- section 7.1.3 style negotiations ---------------------------------------------------

def test_simplest_offer_and_answer() -> None:
    result = server_accept("permessage-deflate", ServerDeflateLimits())
    assert result is not None
    assert result[0].header() == "permessage-deflate"
    # The offer has no client_max_window_bits, so the answer must not carry one.
    assert result[0].client_max_window_bits is None


def test_offer_with_preference_and_fallback() -> None:
    header = ("permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
              "permessage-deflate; client_max_window_bits")
    first = server_accept(header, ServerDeflateLimits())
    assert first is not None and first[0].header() == (
        "permessage-deflate; server_max_window_bits=10")
    assert first[1].server_max_window_bits == 10
    # A server that limits clients to 9 bits still takes the first offer.
    limited = server_accept(header, ServerDeflateLimits(client_max_window_bits=9))
    assert limited is not None
    assert limited[0] == DeflateParams(server_max_window_bits=10, client_max_window_bits=9)
    offer = DeflateParams(server_max_window_bits=10, client_max_window_bits=True)
    assert client_check_response(offer, limited[0]) == limited[1]
