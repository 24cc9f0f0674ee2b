"""The Sec-WebSocket-Extensions grammar (RFC 6455 section 9.1): parse, format, errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wslab.codecs.extheader import (
    TOKEN_CHARS,
    ExtensionOffer,
    format_extensions,
    is_token,
    parse_extensions,
)
from wslab.errors import NegotiationError

PMD = "permessage-deflate"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("permessage-deflate", [ExtensionOffer(PMD)]),
        (
            "permessage-deflate; client_max_window_bits",
            [ExtensionOffer(PMD, (("client_max_window_bits", None),))],
        ),
        (
            "permessage-deflate;server_max_window_bits=10 ; client_no_context_takeover",
            [ExtensionOffer(PMD, (("server_max_window_bits", "10"),
                                  ("client_no_context_takeover", None)))],
        ),
        (  # quoted value, unescaped; tabs as whitespace; empty list elements skipped
            'permessage-deflate; server_max_window_bits="1\\0",\t, x-foo ;a = b',
            [ExtensionOffer(PMD, (("server_max_window_bits", "10"),)),
             ExtensionOffer("x-foo", (("a", "b"),))],
        ),
        (  # the RFC 7692 section 5.2 style of two offers, preferred first
            "permessage-deflate; client_max_window_bits=10, permessage-deflate",
            [ExtensionOffer(PMD, (("client_max_window_bits", "10"),)), ExtensionOffer(PMD)],
        ),
    ],
)
def test_parse_examples(header: str, expected: list[ExtensionOffer]) -> None:
    assert parse_extensions(header) == expected


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("", "lists no extension"),
        (" , ", "lists no extension"),
        ("permessage-deflate;", "parameter name"),
        ("permessage-deflate; a=", "a value for a"),
        ('permessage-deflate; a="b', "unterminated"),
        ('permessage-deflate; a="b c"', "not a token"),
        ('permessage-deflate; a=""', "not a token"),
        ("permessage-deflate x", "expected ',' or ';'"),
        ("perm@ssage", "expected ',' or ';'"),
        ("; a", "extension name"),
        ('permessage-deflate; a="\\', "dangling backslash"),
    ],
)
def test_parse_errors_say_what_and_where(header: str, fragment: str) -> None:
    with pytest.raises(NegotiationError) as info:
        parse_extensions(header)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_column_is_reported() -> None:
    with pytest.raises(NegotiationError, match="column 20"):
        parse_extensions("permessage-deflate x")


def test_format_rejects_non_tokens() -> None:
    with pytest.raises(ValueError, match="not a token"):
        ExtensionOffer(PMD, (("a", "b c"),)).format()
    with pytest.raises(ValueError, match="not a token"):
        ExtensionOffer("a b").format()


def test_format_examples() -> None:
    offers = [ExtensionOffer(PMD, (("server_no_context_takeover", None),
                                   ("server_max_window_bits", "9"))), ExtensionOffer("x")]
    text = format_extensions(offers)
    assert text == "permessage-deflate; server_no_context_takeover; server_max_window_bits=9, x"
    assert is_token("abc") and not is_token("") and not is_token("a,b")


tokens = st.text(alphabet=sorted(TOKEN_CHARS), min_size=1, max_size=12)
params = st.tuples(tokens, st.one_of(st.none(), tokens))
offer_st = st.builds(ExtensionOffer, tokens, st.lists(params, max_size=4).map(tuple))


@settings(max_examples=200, deadline=None)
@given(st.lists(offer_st, min_size=1, max_size=4))
def test_format_parse_round_trip(offers: list[ExtensionOffer]) -> None:
    assert parse_extensions(format_extensions(offers)) == offers


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_parser_never_crashes_otherwise(text: str) -> None:
    try:
        parsed = parse_extensions(text)
    except NegotiationError:
        return
    assert parsed and all(is_token(o.name) for o in parsed)
