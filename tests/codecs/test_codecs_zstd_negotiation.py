"""x-wslab-zstd negotiation: one table row per test, grammar, server and client rules."""

from __future__ import annotations

import pytest

from wslab.codecs.extheader import Param, parse_extensions
from wslab.codecs.zstd_dict import DictionarySet, train_dictionary_set
from wslab.codecs.zstd_negotiation import (
    EXTENSION_NAME,
    AgreedZstd,
    ServerZstdLimits,
    ZstdParams,
    client_check_response,
    rsv1_conflict,
    server_accept,
    server_try_offer,
    zstd_limits_from_config,
    zstd_offer_from_config,
)
from wslab.config import CompressionConfig
from wslab.errors import ConfigError, NegotiationError, OfferDeclined


@pytest.fixture(scope="module")
def dset() -> DictionarySet:
    samples = {k: [f'{{"type":"{k}","n":{i},"text":"hello {k} {i % 7}"}}'.encode()
                   for i in range(40)] for k in ("chat", "tick")}
    return train_dictionary_set(samples, 1024)


@pytest.fixture(scope="module")
def other() -> DictionarySet:
    samples = {"x": [f'{{"x":{i},"pad":"{"z" * (i % 9)}"}}'.encode() for i in range(40)]}
    return train_dictionary_set(samples, 1024)


# --- grammar ----------------------------------------------------------------------------

GOOD_ID = "0123456789abcdef"
WINDOW = 15
BAD_OFFERS: list[tuple[list[Param], str]] = [
    ([("mode", "stream"), ("mode", "stream")], "duplicate parameter mode"),
    ([("dict", GOOD_ID), ("dict", GOOD_ID)], "duplicate parameter dict"),
    ([("level", "3")], "unknown parameter level"),
    ([("mode", None)], "mode needs a value"),
    ([("dict", None)], "dict needs a value"),
    ([("mode", "Stream")], "is not stream or message"),
    ([("mode", "frames")], "is not stream or message"),
    ([("dict", "0123456789ABCDEF")], "not 16 lowercase hex"),
    ([("dict", "0123456789abcde")], "not 16 lowercase hex"),
    ([("dict", "0123456789abcdef0")], "not 16 lowercase hex"),
    ([("mode", "stream"), ("dict", GOOD_ID)], "dict goes with mode=message"),
    ([("max_window_log", None)], "max_window_log needs a value"),
    ([("max_window_log", "015")], "without leading zeros"),
    ([("max_window_log", "+15")], "without leading zeros"),
    ([("max_window_log", "9")], "outside 10..27"),
    ([("max_window_log", "28")], "outside 10..27"),
    ([("max_window_log", "15"), ("max_window_log", "15")], "duplicate parameter"),
]


@pytest.mark.parametrize(("params", "fragment"), BAD_OFFERS)
def test_invalid_offers_name_what_is_wrong(params: list[Param], fragment: str) -> None:
    with pytest.raises(NegotiationError, match=fragment):
        ZstdParams.from_params(params)
    # ... and the server refuses such an offer rather than failing the handshake.
    assert server_try_offer_raw(params) == "refused"


def server_try_offer_raw(params: list[Param]) -> str:
    limits = ServerZstdLimits(WINDOW, stream=True, message=True)
    header = "; ".join([EXTENSION_NAME, *(k if v is None else f"{k}={v}" for k, v in params)])
    declined: list[str] = []
    got = server_accept(header, limits, declined)
    return "refused" if got is None and len(declined) == 1 else "accepted"


GOOD_OFFERS: list[tuple[list[Param], ZstdParams]] = [
    ([], ZstdParams("message")),
    ([("mode", "message")], ZstdParams("message")),
    ([("mode", "stream")], ZstdParams("stream")),
    ([("dict", GOOD_ID)], ZstdParams("message", GOOD_ID)),
    ([("dict", GOOD_ID), ("mode", "message")], ZstdParams("message", GOOD_ID)),
    ([("max_window_log", "10")], ZstdParams("message", None, 10)),
    ([("mode", "stream"), ("max_window_log", "27")], ZstdParams("stream", None, 27)),
]


@pytest.mark.parametrize(("params", "expected"), GOOD_OFFERS)
def test_valid_offers_parse(params: list[Param], expected: ZstdParams) -> None:
    assert ZstdParams.from_params(params) == expected


def test_params_round_trip_through_the_header() -> None:
    for params in (ZstdParams("stream"), ZstdParams("message"), ZstdParams("message", GOOD_ID),
                   ZstdParams("stream", None, 12), ZstdParams("message", GOOD_ID, 20)):
        (element,) = parse_extensions(params.header())
        assert element.name == EXTENSION_NAME
        assert ZstdParams.from_params(element.params) == params
    assert ZstdParams("message", GOOD_ID, 16).header() == (
        f"x-wslab-zstd; mode=message; dict={GOOD_ID}; max_window_log=16")


def test_direct_construction_checks_values() -> None:
    with pytest.raises(ValueError):
        ZstdParams("stream", GOOD_ID)
    with pytest.raises(ValueError):
        ZstdParams("message", "nothex")
    with pytest.raises(ValueError):
        ZstdParams("frames")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ZstdParams("stream", None, 9)
    with pytest.raises(ValueError):
        ServerZstdLimits(28)


# --- server rules ------------------------------------------------------------------------

# (offer, what the server accepts) -> answer header or "refuse"
SERVER_TABLE: list[tuple[str, str, str]] = [
    ("stream", "stream", "x-wslab-zstd; mode=stream; max_window_log=15"),
    ("stream", "message", "refuse"),
    ("stream", "set", "refuse"),
    ("message", "message", "x-wslab-zstd; mode=message; max_window_log=15"),
    ("message", "stream", "refuse"),
    ("message", "set", "refuse"),
    ("dict", "set", "x-wslab-zstd; mode=message; dict={id}; max_window_log=15"),
    ("dict", "message", "refuse"),  # no silent fallback to a plain frame
    ("dict", "other-set", "refuse"),  # a set the server does not hold
    ("dict", "stream", "refuse"),
]


@pytest.mark.parametrize(("offer", "accepts", "answer"), SERVER_TABLE)
def test_server_table(offer: str, accepts: str, answer: str, dset: DictionarySet,
                      other: DictionarySet) -> None:
    params = {"stream": ZstdParams("stream"), "message": ZstdParams("message"),
              "dict": ZstdParams("message", dset.id)}[offer]
    limits = {"stream": ServerZstdLimits(WINDOW, stream=True),
              "message": ServerZstdLimits(WINDOW, message=True),
              "set": ServerZstdLimits.holding(dset, max_window_log=WINDOW),
              "other-set": ServerZstdLimits.holding(other, max_window_log=WINDOW)}[accepts]
    if answer == "refuse":
        with pytest.raises(OfferDeclined) as refused:
            server_try_offer(params, limits)
        assert refused.value.parameter == ("dict" if offer == "dict" else "mode")
    else:
        got = server_try_offer(params, limits)
        assert isinstance(got, AgreedZstd)
        assert got.response.header() == answer.format(id=dset.id)
        assert got.mode == params.mode
        assert (got.dictionaries is dset) == (offer == "dict")


def test_refusal_names_the_missing_set(dset: DictionarySet, other: DictionarySet) -> None:
    with pytest.raises(OfferDeclined) as refused:
        server_try_offer(ZstdParams("message", dset.id),
                         ServerZstdLimits.holding(other, max_window_log=WINDOW))
    text = str(refused.value)
    assert refused.value.parameter == "dict" and dset.id in text and other.id in text


def test_server_takes_the_first_acceptable_offer_in_client_order(dset: DictionarySet,
                                                                 other: DictionarySet) -> None:
    header = (f"x-wslab-zstd; dict={other.id}, x-wslab-zstd; mode=bogus, "
              f"permessage-deflate, x-wslab-zstd; dict={dset.id}, x-wslab-zstd; mode=stream")
    declined: list[str] = []
    got = server_accept(header, ServerZstdLimits.holding(dset, stream=True, max_window_log=12),
                        declined)
    assert got is not None and got.dict_id == dset.id
    assert len(declined) == 2 and declined[0].startswith("offer 1:") and "bogus" in declined[1]
    assert server_accept("permessage-deflate", ServerZstdLimits(WINDOW, stream=True)) is None


# (offered max_window_log, server's limit) -> the answer's and the agreement's window
WINDOW_TABLE: list[tuple[int | None, int, int]] = [
    (None, 15, 15),
    (12, 15, 12),
    (15, 12, 12),
    (15, 15, 15),
    (27, 10, 10),
]


@pytest.mark.parametrize(("offered", "limit", "agreed"), WINDOW_TABLE)
def test_window_table(offered: int | None, limit: int, agreed: int) -> None:
    for offer in (ZstdParams("stream", None, offered), ZstdParams("message", None, offered)):
        got = server_try_offer(offer, ServerZstdLimits(limit, stream=True, message=True))
        assert isinstance(got, AgreedZstd)
        assert got.window_log == agreed == got.response.max_window_log
        # ... and the client accepts exactly that answer.
        back = client_check_response(offer, got.response.to_params())
        assert back.window_log == agreed


# --- client rules ------------------------------------------------------------------------

W: Param = ("max_window_log", "15")
CLIENT_TABLE: list[tuple[ZstdParams, list[Param], str | None]] = [
    (ZstdParams("stream", None, 15), [("mode", "stream"), W], None),
    (ZstdParams("message", None, 15), [("mode", "message"), W], None),
    (ZstdParams("message", None, 15), [W], None),  # absent mode means message
    (ZstdParams("stream", None, 16), [("mode", "stream"), W], None),  # a smaller window
    (ZstdParams("stream"), [("mode", "stream"), W], None),  # none offered: any answer
    (ZstdParams("stream", None, 15), [("mode", "stream")], "max_window_log is missing"),
    (ZstdParams("stream", None, 14), [("mode", "stream"), W], "exceeds the offered 14"),
    (ZstdParams("stream"), [("mode", "message"), W], "mode=message, but the offer was"),
    (ZstdParams("stream"), [W], "mode=message, but the offer was"),
    (ZstdParams("message"), [("mode", "message"), ("dict", GOOD_ID), W], "offer named None"),
    (ZstdParams("stream"), [("mode", "stream"), ("mode", "stream")], "duplicate"),
    (ZstdParams("stream"), [("mode", "stream"), ("window", "20")], "unknown parameter"),
]


@pytest.mark.parametrize(("offer", "response", "error"), CLIENT_TABLE)
def test_client_table(offer: ZstdParams, response: list[Param], error: str | None) -> None:
    if error is None:
        assert client_check_response(offer, response).mode == offer.mode
    else:
        with pytest.raises(NegotiationError, match=error):
            client_check_response(offer, response)


def test_client_checks_the_dictionary_answer(dset: DictionarySet,
                                             other: DictionarySet) -> None:
    offer = ZstdParams("message", dset.id, WINDOW)
    agreed = client_check_response(offer, [("mode", "message"), ("dict", dset.id), W], dset)
    assert agreed.dictionaries is dset and agreed.algorithm == "zstd-dict"
    with pytest.raises(NegotiationError, match="dict=None"):
        client_check_response(offer, [("mode", "message"), W], dset)
    with pytest.raises(NegotiationError, match=f"dict={other.id}"):
        client_check_response(offer, [("mode", "message"), ("dict", other.id), W], dset)


# --- one RSV1 extension per connection ---------------------------------------------------

RSV1_TABLE: list[tuple[str, list[str], bool]] = [
    ("x-wslab-zstd", [], True),
    ("x-wslab-zstd", ["permessage-deflate"], False),
    ("permessage-deflate", ["x-wslab-zstd"], False),
    ("x-wslab-zstd", ["x-wslab-zstd"], False),
    ("x-wslab-zstd", ["x-other"], True),
    ("x-other", ["x-wslab-zstd"], True),
]


@pytest.mark.parametrize(("name", "accepted", "ok"), RSV1_TABLE)
def test_rsv1_rule(name: str, accepted: list[str], ok: bool) -> None:
    assert (rsv1_conflict(name, accepted) is None) == ok


# --- from the configuration --------------------------------------------------------------


def test_config_mapping(dset: DictionarySet) -> None:
    stream = CompressionConfig(algorithm="zstd-stream", zstd_window_log=13)
    dicts = CompressionConfig(algorithm="zstd-dict", zstd_window_log=17)
    assert zstd_offer_from_config(stream) == ZstdParams("stream", None, 13)
    assert zstd_limits_from_config(stream) == ServerZstdLimits(13, stream=True)
    assert zstd_offer_from_config(dicts, dset) == ZstdParams("message", dset.id, 17)
    limits = zstd_limits_from_config(dicts, dset)
    assert limits is not None and not limits.stream and not limits.message
    assert limits.max_window_log == 17
    assert list(limits.dictionaries) == [dset.id]
    for algorithm in ("none", "permessage-deflate"):
        assert zstd_offer_from_config(CompressionConfig(algorithm=algorithm)) is None
        assert zstd_limits_from_config(CompressionConfig(algorithm=algorithm)) is None
    with pytest.raises(ConfigError, match="--dictionaries"):
        zstd_offer_from_config(dicts)
    with pytest.raises(ConfigError, match="server"):
        zstd_limits_from_config(dicts, DictionarySet())
