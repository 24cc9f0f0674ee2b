"""Proof against a real peer: python-websockets' own permessage-deflate implementation.

Our encoder's output must decode with websockets' ``PerMessageDeflate`` and websockets'
output with our decoder, for every window size zlib can compress with, with and without
context takeover; and both negotiators must reach the same agreement from the same
headers.
"""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.headers import build_extension, parse_extension

from wslab.codecs.deflate import DeflateDecoder, DeflateEncoder
from wslab.codecs.extheader import parse_extensions
from wslab.codecs.negotiation import (
    DeflateParams,
    ServerDeflateLimits,
    client_check_response,
    offer_from_config,
    server_accept,
    server_params_from_config,
)
from wslab.config import CompressionConfig

MAX_SIZE = 1 << 20


def _messages() -> list[tuple[Opcode, bytes]]:
    rng = random.Random(7692)
    users = ["ana", "bo", "chen", "dara", "eli"]
    out: list[tuple[Opcode, bytes]] = []
    for i in range(40):
        chat = {"type": "chat.message", "seq": i, "room": "general",
                "user": rng.choice(users), "text": "hi " * rng.randint(1, 20)}
        out.append((Opcode.TEXT, json.dumps(chat).encode()))
        if i % 7 == 0:
            out.append((Opcode.BINARY, rng.randbytes(rng.randint(1, 3000))))
        if i % 11 == 0:
            out.append((Opcode.TEXT, b""))
    big = json.dumps([{"id": i, "price": rng.random(), "sym": rng.choice(users)}
                      for i in range(2000)]).encode()
    assert len(big) > 100_000
    out.insert(5, (Opcode.TEXT, big[:100_000]))
    out.append((Opcode.BINARY, rng.randbytes(100_000)))
    return out


MESSAGES = _messages()
CASES = list(itertools.product(range(9, 16), [False, True]))


@pytest.mark.parametrize(("bits", "no_takeover"), CASES)
def test_websockets_decodes_our_encoder(bits: int, no_takeover: bool) -> None:
    ours = DeflateEncoder(window_bits=bits, mem_level=5, level=6, no_context_takeover=no_takeover)
    theirs = PerMessageDeflate(remote_no_context_takeover=no_takeover,
                               local_no_context_takeover=False,
                               remote_max_window_bits=bits, local_max_window_bits=15)
    for opcode, message in MESSAGES:
        frame = Frame(opcode, ours.encode(message), rsv1=True)
        got = theirs.decode(frame, max_size=MAX_SIZE)
        assert (got.data, got.rsv1) == (message, False)


@pytest.mark.parametrize(("bits", "no_takeover"), CASES)
def test_our_decoder_reads_websockets(bits: int, no_takeover: bool) -> None:
    theirs = PerMessageDeflate(remote_no_context_takeover=False,
                               local_no_context_takeover=no_takeover,
                               remote_max_window_bits=15, local_max_window_bits=bits,
                               compress_settings={"memLevel": 5})
    ours = DeflateDecoder(window_bits=bits, no_context_takeover=no_takeover)
    for opcode, message in MESSAGES:
        frame = theirs.encode(Frame(opcode, message))
        assert frame.rsv1
        assert ours.decode(bytes(frame.data), max_size=MAX_SIZE) == message


def _their_server(limits: ServerDeflateLimits) -> ServerPerMessageDeflateFactory:
    return ServerPerMessageDeflateFactory(
        server_no_context_takeover=limits.server_no_context_takeover,
        client_no_context_takeover=limits.client_no_context_takeover,
        server_max_window_bits=limits.server_max_window_bits,
        client_max_window_bits=limits.client_max_window_bits,
        require_client_max_window_bits=limits.require_client_max_window_bits,
    )


def _their_client(offer: DeflateParams) -> ClientPerMessageDeflateFactory:
    return ClientPerMessageDeflateFactory(
        server_no_context_takeover=offer.server_no_context_takeover,
        client_no_context_takeover=offer.client_no_context_takeover,
        server_max_window_bits=offer.server_max_window_bits,
        client_max_window_bits=offer.client_max_window_bits,
    )


def _agreement(ext: PerMessageDeflate, side: str) -> tuple[Any, ...]:
    """websockets' extension as (server bits, client bits, server nct, client nct)."""
    if side == "server":
        return (ext.local_max_window_bits, ext.remote_max_window_bits,
                ext.local_no_context_takeover, ext.remote_no_context_takeover)
    return (ext.remote_max_window_bits, ext.local_max_window_bits,
            ext.remote_no_context_takeover, ext.local_no_context_takeover)


CONFIGS = [
    CompressionConfig(server_max_window_bits=s, client_max_window_bits=c,
                      server_no_context_takeover=snct, client_no_context_takeover=cnct)
    for s, c, snct, cnct in itertools.product([9, 12, 15], [8, 10, 12, 15],
                                              [False, True], [False, True])
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: (
    f"s{c.server_max_window_bits}c{c.client_max_window_bits}"
    f"{'-snct' if c.server_no_context_takeover else ''}"
    f"{'-cnct' if c.client_no_context_takeover else ''}"))
def test_both_negotiators_agree_on_our_config(cfg: CompressionConfig) -> None:
    offer = offer_from_config(cfg)
    header = offer.header()
    limits = server_params_from_config(cfg)

    # Server side: websockets parses our header and answers as our server does.
    [(name, params)] = parse_extension(header)
    their_params, their_ext = _their_server(limits).process_request_params(params, [])
    result = server_accept(header, limits)
    assert result is not None
    response, agreed = result
    assert sorted(their_params) == sorted(response.to_params())
    ours = (agreed.server_max_window_bits, agreed.client_max_window_bits,
            agreed.server_no_context_takeover, agreed.client_no_context_takeover)
    assert _agreement(their_ext, "server") == ours

    # Client side: both clients accept that answer and conclude the same.
    answer_header = build_extension([(name, list(response.to_params()))])
    [(_, answer)] = parse_extension(answer_header)
    their_client_ext = _their_client(offer).process_response_params(answer, [])
    assert _agreement(their_client_ext, "client") == ours
    assert client_check_response(offer, answer_header) == agreed


THEIR_OFFERS = [
    {},
    {"client_max_window_bits": True},
    {"client_max_window_bits": 10},
    {"server_max_window_bits": 11, "client_max_window_bits": True},
    {"server_no_context_takeover": True},
    {"client_no_context_takeover": True, "server_max_window_bits": 9},
]
LIMITS = [
    ServerDeflateLimits(),
    ServerDeflateLimits(server_max_window_bits=12, client_max_window_bits=12),
    ServerDeflateLimits(server_max_window_bits=10, server_no_context_takeover=True),
    ServerDeflateLimits(client_max_window_bits=9, client_no_context_takeover=True),
]


@pytest.mark.parametrize("their_offer", THEIR_OFFERS, ids=str)
@pytest.mark.parametrize("limits", LIMITS, ids=lambda lim: str(lim.__dict__))
def test_our_server_answers_websockets_client(
    their_offer: dict[str, Any], limits: ServerDeflateLimits
) -> None:
    client = ClientPerMessageDeflateFactory(**their_offer)
    header = build_extension([(client.name, list(client.get_request_params()))])
    assert [o.name for o in parse_extensions(header)] == ["permessage-deflate"]

    result = server_accept(header, limits)
    [(_, params)] = parse_extension(header)
    their_params, their_ext = _their_server(limits).process_request_params(params, [])
    assert result is not None
    response, agreed = result
    assert sorted(their_params) == sorted(response.to_params())
    ours = (agreed.server_max_window_bits, agreed.client_max_window_bits,
            agreed.server_no_context_takeover, agreed.client_no_context_takeover)
    assert _agreement(their_ext, "server") == ours
    # And the websockets client accepts what our server said.
    accepted = client.process_response_params(list(response.to_params()), [])
    assert _agreement(accepted, "client") == ours
