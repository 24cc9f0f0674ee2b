"""permessage-deflate negotiation rules (RFC 7692 section 7.1), one table row per test."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import NegotiationError as TheirNegotiationError
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from wslab.codecs.negotiation import (
    AgreedDeflate,
    DeflateParamError,
    DeflateParams,
    OfferDeclined,
    ResponseRejected,
    ServerDeflateLimits,
    WindowParam,
    client_check_response,
    offer_from_config,
    server_accept,
    server_params_from_config,
    server_try_offer,
)
from wslab.config import CompressionConfig
from wslab.errors import NegotiationError

P = DeflateParams
L = ServerDeflateLimits

# --- parameter validation -------------------------------------------------------------

@pytest.mark.parametrize(
    ("params", "response", "fragment"),
    [
        ([("server_max_window_bits", "08")], False, "leading zeros"),
        ([("server_max_window_bits", "16")], False, "outside 8..15"),
        ([("server_max_window_bits", "7")], False, "outside 8..15"),
        ([("client_max_window_bits", "+9")], False, "decimal"),
        ([("server_max_window_bits", None)], False, "server_max_window_bits needs a value"),
        ([("client_max_window_bits", None)], True, "client_max_window_bits needs a value"),
        ([("server_no_context_takeover", "1")], False, "takes no value"),
        ([("client_no_context_takeover", "x")], True, "takes no value"),
        ([("x_param", None)], False, "unknown parameter x_param"),
        ([("client_max_window_bits", "9"), ("client_max_window_bits", "9")], False,
         "duplicate parameter client_max_window_bits"),
    ],
)
def test_invalid_params_name_the_parameter(
    params: list[tuple[str, str | None]], response: bool, fragment: str
) -> None:
    with pytest.raises(DeflateParamError, match=fragment) as caught:
        P.from_params(params, response=response)
    assert caught.value.parameter == params[-1][0]


def test_valid_params_parse() -> None:
    got = P.from_params([("client_max_window_bits", None), ("server_max_window_bits", "10"),
                         ("server_no_context_takeover", None)])
    assert got == P(server_no_context_takeover=True, server_max_window_bits=10,
                    client_max_window_bits=True)
    assert got.header() == ("permessage-deflate; server_no_context_takeover; "
                            "server_max_window_bits=10; client_max_window_bits")


def test_direct_construction_checks_ranges() -> None:
    with pytest.raises(ValueError):
        P(server_max_window_bits=16)
    with pytest.raises(ValueError):
        P(server_max_window_bits=True)
    with pytest.raises(ValueError):
        L(server_max_window_bits=8)


windows = st.one_of(st.none(), st.integers(8, 15))


@settings(max_examples=150, deadline=None)
@given(st.booleans(), st.booleans(), windows, st.one_of(windows, st.just(True)))
def test_params_header_round_trip(a: bool, b: bool, s: int | None, c: WindowParam) -> None:
    params = P(a, b, s, c)
    assert P.from_params(params.to_params()) == params


# --- server rules: (offer, limits) -> response and effective windows ------------------

SERVER_TABLE = [
    # offer, limits, expected response, (server bits, client bits)
    (P(), L(), P(), (15, 15)),
    (P(server_no_context_takeover=True), L(), P(server_no_context_takeover=True), (15, 15)),
    (P(), L(server_no_context_takeover=True), P(server_no_context_takeover=True), (15, 15)),
    (P(client_no_context_takeover=True), L(), P(client_no_context_takeover=True), (15, 15)),
    (P(), L(client_no_context_takeover=True), P(client_no_context_takeover=True), (15, 15)),
    (P(), L(server_max_window_bits=10), P(server_max_window_bits=10), (10, 15)),
    (P(server_max_window_bits=12), L(), P(server_max_window_bits=12), (12, 15)),
    (P(server_max_window_bits=12), L(server_max_window_bits=10),
     P(server_max_window_bits=10), (10, 15)),
    (P(server_max_window_bits=9), L(server_max_window_bits=12),
     P(server_max_window_bits=9), (9, 15)),
    (P(), L(client_max_window_bits=10), P(), (15, 15)),
    (P(client_max_window_bits=True), L(), P(), (15, 15)),
    (P(client_max_window_bits=True), L(client_max_window_bits=10),
     P(client_max_window_bits=10), (15, 10)),
    (P(client_max_window_bits=True), L(client_max_window_bits=8),
     P(client_max_window_bits=8), (15, 8)),
    (P(client_max_window_bits=11), L(), P(client_max_window_bits=11), (15, 11)),
    (P(client_max_window_bits=11), L(client_max_window_bits=9),
     P(client_max_window_bits=9), (15, 9)),
    (P(client_max_window_bits=9), L(client_max_window_bits=12),
     P(client_max_window_bits=9), (15, 9)),
]


@pytest.mark.parametrize(("offer", "limits", "response", "bits"), SERVER_TABLE)
def test_server_rule(offer: P, limits: L, response: P, bits: tuple[int, int]) -> None:
    result = server_accept([offer.to_offer()], limits)
    assert result is not None
    got_response, agreed = result
    assert got_response == response
    assert (agreed.server_max_window_bits, agreed.client_max_window_bits) == bits
    assert agreed.server_no_context_takeover == response.server_no_context_takeover
    assert agreed.client_no_context_takeover == response.client_no_context_takeover
    # A client that made this offer accepts the answer and reaches the same agreement,
    # except that a zlib client cannot be held to an 8-bit window.
    if bits[1] > 8:
        assert client_check_response(offer, got_response) == agreed
    else:
        with pytest.raises(NegotiationError, match="8-bit window"):
            client_check_response(offer, got_response)


@pytest.mark.parametrize(
    ("header", "limits", "reason", "parameter"),
    [
        ("permessage-deflate; server_max_window_bits=8", L(), "zlib cannot compress with 8",
         "server_max_window_bits"),
        ("permessage-deflate", L(client_max_window_bits=10, require_client_max_window_bits=True),
         "requires it", "client_max_window_bits"),
        ("permessage-deflate; server_max_window_bits=016", L(), "leading zeros",
         "server_max_window_bits"),
        ("permessage-deflate; foo", L(), "unknown parameter foo", "foo"),
    ],
)
def test_server_declines(header: str, limits: L, reason: str, parameter: str) -> None:
    declined: list[str] = []
    assert server_accept(header, limits, declined) is None
    assert len(declined) == 1 and reason in declined[0]
    # the same refusal, one offer at a time, is an exception naming the parameter
    with pytest.raises(DeflateParamError, match=reason) as caught:
        server_try_offer(P.from_params(server_accept_params(header)), limits)
    assert caught.value.parameter == parameter
    if "unknown" not in reason and "zeros" not in reason:
        assert isinstance(caught.value, OfferDeclined)


def server_accept_params(header: str) -> list[tuple[str, str | None]]:
    from wslab.codecs.extheader import parse_extensions

    (element,) = parse_extensions(header)
    return list(element.params)


def test_server_takes_first_acceptable_offer_and_skips_others() -> None:
    header = ("x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=8, "
              "permessage-deflate; client_max_window_bits")
    declined: list[str] = []
    result = server_accept(header, L(client_max_window_bits=12), declined)
    assert result is not None
    assert result[0] == P(client_max_window_bits=12)
    assert declined == [declined[0]] and declined[0].startswith("offer 1:")


def test_server_accept_no_deflate_offer() -> None:
    assert server_accept("x-other; a=1", L()) is None


def test_server_accept_bad_header_raises() -> None:
    with pytest.raises(NegotiationError):
        server_accept("permessage-deflate; =", L())


# --- client rules -----------------------------------------------------------------------

CLIENT_OK = [
    # offer, response, (server bits, client bits, server nct, client nct)
    (P(), P(), (15, 15, False, False)),
    (P(), P(server_max_window_bits=10), (10, 15, False, False)),
    (P(server_max_window_bits=12), P(server_max_window_bits=12), (12, 15, False, False)),
    (P(server_max_window_bits=12), P(server_max_window_bits=9), (9, 15, False, False)),
    (P(client_max_window_bits=True), P(), (15, 15, False, False)),
    (P(client_max_window_bits=True), P(client_max_window_bits=9), (15, 9, False, False)),
    (P(client_max_window_bits=11), P(), (15, 11, False, False)),
    (P(client_max_window_bits=11), P(client_max_window_bits=10), (15, 10, False, False)),
    (P(server_no_context_takeover=True), P(server_no_context_takeover=True),
     (15, 15, True, False)),
    (P(), P(server_no_context_takeover=True), (15, 15, True, False)),
    (P(), P(client_no_context_takeover=True), (15, 15, False, True)),
    (P(client_no_context_takeover=True), P(), (15, 15, False, True)),
]


@pytest.mark.parametrize(("offer", "response", "expected"), CLIENT_OK)
def test_client_accepts(offer: P, response: P, expected: tuple[int, int, bool, bool]) -> None:
    agreed = client_check_response(offer, response.to_offer())
    assert (agreed.server_max_window_bits, agreed.client_max_window_bits,
            agreed.server_no_context_takeover, agreed.client_no_context_takeover) == expected


CLIENT_ERRORS = [
    # offer, response, message fragment, the parameter the error names (None: no single one)
    (P(server_no_context_takeover=True), "permessage-deflate", "drops server_no_context",
     "server_no_context_takeover"),
    (P(server_max_window_bits=10), "permessage-deflate", "lacks server_max_window_bits",
     "server_max_window_bits"),
    (P(server_max_window_bits=10), "permessage-deflate; server_max_window_bits=11",
     "exceeds the offered 10", "server_max_window_bits"),
    (P(), "permessage-deflate; client_max_window_bits=10", "was not offered",
     "client_max_window_bits"),
    # RFC 7692 7.1.2.2: the answer must be the same or smaller than the offered value
    (P(client_max_window_bits=11), "permessage-deflate; client_max_window_bits=13",
     "client_max_window_bits=13 exceeds the offered 11", "client_max_window_bits"),
    (P(client_max_window_bits=9), "permessage-deflate; client_max_window_bits=15",
     "client_max_window_bits=15 exceeds the offered 9", "client_max_window_bits"),
    (P(client_max_window_bits=True), "permessage-deflate; client_max_window_bits",
     "needs a value", "client_max_window_bits"),
    (P(client_max_window_bits=True), "permessage-deflate; client_max_window_bits=8",
     "zlib cannot compress", "client_max_window_bits"),
    (P(), "permessage-deflate, permessage-deflate", "exactly one", None),
    (P(), "permessage-deflate; bogus", "unknown parameter bogus", "bogus"),
]


@pytest.mark.parametrize(("offer", "response", "fragment", "parameter"), CLIENT_ERRORS)
def test_client_rejects(offer: P, response: str, fragment: str, parameter: str | None) -> None:
    with pytest.raises(NegotiationError, match=fragment) as caught:
        client_check_response(offer, response)
    if parameter is not None:
        assert isinstance(caught.value, DeflateParamError)
        assert caught.value.parameter == parameter


def test_a_larger_client_window_than_offered_is_refused_not_returned() -> None:
    """The answer's window is an exception raised, never an agreement to use."""
    offer = P(client_max_window_bits=10)
    for answered in range(11, 16):
        with pytest.raises(ResponseRejected) as caught:
            client_check_response(offer, P(client_max_window_bits=answered))
        assert caught.value.parameter == "client_max_window_bits"
        assert f"={answered}" in str(caught.value)


# Every offer a client can make against every answer a server can give (window values
# absent, 8, 9, 12, 15), checked against python-websockets' own client (which cannot offer
# a client window of 8, as no zlib client can compress with it; wslab carries 8 as 9).
_WINDOWS = (None, 8, 9, 12, 15)
OFFERS = [P(a, b, s, c) for a, b, s, c in itertools.product(
    (False, True), (False, True), _WINDOWS, (None, 9, 12, 15, True))]
ANSWERS = [P(a, b, s, c) for a, b, s, c in itertools.product(
    (False, True), (False, True), _WINDOWS, _WINDOWS)]


def test_client_check_agrees_with_websockets_on_every_offer_and_answer() -> None:
    disagreements = []
    for offer in OFFERS:
        theirs = ClientPerMessageDeflateFactory(
            server_no_context_takeover=offer.server_no_context_takeover,
            client_no_context_takeover=offer.client_no_context_takeover,
            server_max_window_bits=offer.server_max_window_bits,
            client_max_window_bits=offer.client_max_window_bits)
        for answer in ANSWERS:
            try:
                ext = theirs.process_response_params(list(answer.to_params()), [])
                their: tuple[object, ...] | str = (
                    ext.remote_max_window_bits, ext.local_max_window_bits,
                    ext.remote_no_context_takeover, ext.local_no_context_takeover)
            except TheirNegotiationError:
                their = "rejected"
            try:
                agreed = client_check_response(offer, answer)
                ours: tuple[object, ...] | str = (
                    agreed.server_max_window_bits, agreed.client_max_window_bits,
                    agreed.server_no_context_takeover, agreed.client_no_context_takeover)
            except ResponseRejected:
                ours = "rejected"
            if ours != their:
                disagreements.append((offer.header(), answer.header(), ours, their))
    assert disagreements == []


# --- agreement helpers and config mapping ------------------------------------------------

def test_agreed_builds_codecs_per_side() -> None:
    agreed = AgreedDeflate(server_max_window_bits=10, client_max_window_bits=12,
                           server_no_context_takeover=True)
    enc = agreed.encoder_for("server", mem_level=4, level=1)
    assert (enc.window_bits, enc.no_context_takeover, enc.mem_level, enc.level) == (10, True, 4, 1)
    dec = agreed.decoder_for("client")  # the client reads what the server sent
    assert (dec.window_bits, dec.no_context_takeover) == (10, True)
    assert agreed.encoder_for("client").window_bits == 12
    assert agreed.decoder_for("server").window_bits == 12
    msgs = [b"hello hello hello", b"", b"hello again"]
    assert [dec.decode(enc.encode(m)) for m in msgs] == msgs
    with pytest.raises(NegotiationError, match="8-bit"):
        AgreedDeflate(client_max_window_bits=8).encoder_for("client")


def test_config_mapping_defaults() -> None:
    cfg = CompressionConfig()  # 12/12, context takeover both ways
    offer = offer_from_config(cfg)
    assert offer == P(server_max_window_bits=12, client_max_window_bits=12)
    limits = server_params_from_config(cfg)
    assert limits == L(server_max_window_bits=12, client_max_window_bits=12)
    result = server_accept(offer.header(), limits)
    assert result is not None
    assert client_check_response(offer, result[0]) == result[1]
    assert (result[1].server_max_window_bits, result[1].client_max_window_bits) == (12, 12)


def test_config_mapping_edges() -> None:
    cfg = CompressionConfig(server_max_window_bits=15, client_max_window_bits=8,
                            server_no_context_takeover=True, client_no_context_takeover=True)
    offer = offer_from_config(cfg)
    assert offer == P(True, True, None, 9)  # 15 is the default, 8 is carried as 9
    limits = server_params_from_config(cfg)
    assert limits == L(True, True, None, 9)
    cfg15 = CompressionConfig(client_max_window_bits=15)
    assert offer_from_config(cfg15).client_max_window_bits is True
