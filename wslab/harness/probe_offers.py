"""What ``wslab probe`` offers a server, and the rules its answers are held to. Sans-I/O.

What lives here: the offer matrix (:data:`OFFERS`: each RFC 7692 parameter alone, every
``server_max_window_bits`` and ``client_max_window_bits`` value 8..15, the value-less
``client_max_window_bits`` browsers send, and wslab's ``x-wslab-zstd`` modes), the table of
checks an answer must pass (:data:`CHECKS`, one row per rule with its section), and
:func:`judge`, which turns one offer and the server's answer into a :class:`Verdict`
(what was agreed, which rules were broken). Parameter grammar and types come from
``wslab.codecs`` (``extheader``, ``deflate_params``, ``negotiation``, ``zstd_params``),
never parsed again here. What must not live here: sockets, timing (``probe_wire.py``).

The checks, as the client side of each RFC states them (``v`` offered, ``w`` answered):

| check                      | section          | an answer breaks it when                  |
|----------------------------|------------------|-------------------------------------------|
| header-grammar             | RFC 6455 9.1     | Sec-WebSocket-Extensions does not parse   |
| extension-not-offered      | RFC 6455 4.1     | it names an extension the client did not  |
|                            |                  | offer                                     |
| one-answer                 | RFC 7692 5       | an extension is answered more than once   |
| one-rsv1-extension         | RFC 6455 5.2     | two extensions that both use RSV1         |
| parameter-repeated         | RFC 7692 7       | a parameter appears twice                 |
| unknown-parameter          | RFC 7692 7       | a parameter RFC 7692 does not define      |
| bad-value                  | RFC 7692 7.1     | a flag with a value, a window not 8..15   |
|                            |                  | in plain decimal, a window without value  |
| server-window-larger       | RFC 7692 7.1.2.1 | server_max_window_bits w > offered v      |
| server-window-missing      | RFC 7692 7.1.2.1 | v offered, the answer accepts without it  |
| client-window-not-offered  | RFC 7692 7.1.2.2 | client_max_window_bits, never offered     |
| client-window-larger       | RFC 7692 7.1.2.2 | client_max_window_bits w > offered v      |
| server-nct-dropped         | RFC 7692 7.1.1.1 | server_no_context_takeover offered, the   |
|                            |                  | answer accepts without it                 |
| zstd-answer                | x-wslab-zstd     | the answer breaks ``zstd_params.py``'s    |
|                            |                  | grammar or does not match the offer       |
| subprotocol-not-offered    | RFC 6455 4.1     | Sec-WebSocket-Protocol names one the      |
|                            |                  | client did not offer                      |
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from wslab.codecs import zstd_negotiation
from wslab.codecs.deflate_params import (
    EXTENSION_NAME as DEFLATE,
)
from wslab.codecs.deflate_params import (
    AgreedDeflate,
    DeflateParams,
)
from wslab.codecs.extheader import ExtensionOffer, parse_extensions
from wslab.codecs.negotiation import client_check_response
from wslab.codecs.zstd_params import EXTENSION_NAME as ZSTD
from wslab.codecs.zstd_params import RSV1_EXTENSIONS, ZstdParams
from wslab.errors import NegotiationError

_DEFLATE_PARAMS = ("server_no_context_takeover", "client_no_context_takeover",
                   "server_max_window_bits", "client_max_window_bits")


@dataclass(frozen=True)
class Offer:
    """One row of the matrix: a label, and either deflate or zstd parameters."""

    label: str
    deflate: DeflateParams | None = None
    zstd: ZstdParams | None = None

    @property
    def header(self) -> str:
        if self.deflate is not None:
            return self.deflate.header()
        assert self.zstd is not None
        return self.zstd.header()

    @property
    def extension(self) -> str:
        return DEFLATE if self.deflate is not None else ZSTD


def _offers() -> tuple[Offer, ...]:
    rows = [Offer("permessage-deflate", DeflateParams()),
            Offer("browser (client_max_window_bits)", DeflateParams(client_max_window_bits=True)),
            Offer("server_no_context_takeover", DeflateParams(server_no_context_takeover=True)),
            Offer("client_no_context_takeover", DeflateParams(client_no_context_takeover=True))]
    rows += [Offer(f"server_max_window_bits={b}", DeflateParams(server_max_window_bits=b))
             for b in range(8, 16)]
    rows += [Offer(f"client_max_window_bits={b}", DeflateParams(client_max_window_bits=b))
             for b in range(8, 16)]
    rows += [Offer(f"x-wslab-zstd mode={m}", zstd=ZstdParams(m)) for m in ("stream", "message")]
    return tuple(rows)


OFFERS: tuple[Offer, ...] = _offers()
"""The matrix, in the order it is reported. The first two rows are the ones clients send
most (no parameter; Chromium's and Firefox's value-less ``client_max_window_bits``)."""
BROWSER_OFFER = OFFERS[1]


@dataclass
class Answer:
    """What a check reads: the offer, the answer's elements (None: did not parse) and the
    subprotocols offered and chosen."""

    offer: Offer
    text: str | None
    elements: list[ExtensionOffer] | None
    grammar_error: str | None = None
    subprotocols: tuple[str, ...] = ()
    chosen_subprotocol: str | None = None

    def params(self, name: str) -> list[tuple[str, str | None]]:
        """The raw parameters of the first answered element named ``name``."""
        for element in self.elements or ():
            if element.name == name:
                return list(element.params)
        return []

    def answered(self, name: str) -> bool:
        return any(e.name == name for e in self.elements or ())


def _values(answer: Answer, param: str) -> list[str | None]:
    return [v for k, v in answer.params(DEFLATE) if k == param]


def _bits(answer: Answer, param: str) -> int | None:
    """The answered window if it is one clean value in 8..15 (else the bad-value check
    speaks, and the window checks stay silent)."""
    values = _values(answer, param)
    if len(values) != 1 or values[0] is None or not values[0].isdigit():
        return None
    bits = int(values[0])
    return bits if 8 <= bits <= 15 and not values[0].startswith("0") else None


def _deflate_answered(answer: Answer) -> bool:
    return answer.offer.deflate is not None and answer.answered(DEFLATE)


def _grammar(a: Answer) -> str | None:
    return a.grammar_error


def _not_offered(a: Answer) -> str | None:
    extra = sorted({e.name for e in a.elements or ()} - {a.offer.extension})
    return f"answers {', '.join(extra)}, which was not offered" if extra else None


def _one_answer(a: Answer) -> str | None:
    counts = Counter(e.name for e in a.elements or ())
    twice = sorted(n for n, c in counts.items() if c > 1)
    return f"answers {', '.join(twice)} more than once" if twice else None


def _one_rsv1(a: Answer) -> str | None:
    both = sorted({e.name for e in a.elements or ()} & RSV1_EXTENSIONS)
    return f"agrees on {' and '.join(both)}: both give RSV1 a meaning" if len(both) > 1 else None


def _repeated(a: Answer) -> str | None:
    if not _deflate_answered(a):
        return None
    counts = Counter(k for k, _ in a.params(DEFLATE))
    twice = sorted(k for k, c in counts.items() if c > 1)
    return f"repeats {', '.join(twice)}" if twice else None


def _unknown(a: Answer) -> str | None:
    if not _deflate_answered(a):
        return None
    unknown = sorted({k for k, _ in a.params(DEFLATE)} - set(_DEFLATE_PARAMS))
    return f"unknown parameter {', '.join(unknown)}" if unknown else None


def _bad_value(a: Answer) -> str | None:
    if not _deflate_answered(a):
        return None
    seen: dict[str, str | None] = {}
    for key, value in a.params(DEFLATE):
        if key in _DEFLATE_PARAMS:
            seen.setdefault(key, value)
    try:
        DeflateParams.from_params(list(seen.items()), response=True)
    except NegotiationError as exc:
        return str(exc)
    return None


def _server_larger(a: Answer) -> str | None:
    offered = a.offer.deflate.server_max_window_bits if a.offer.deflate else None
    got = _bits(a, "server_max_window_bits") if _deflate_answered(a) else None
    if offered is not None and got is not None and got > offered:
        return f"server_max_window_bits={got} answered to an offer of {offered}"
    return None


def _server_missing(a: Answer) -> str | None:
    offered = a.offer.deflate.server_max_window_bits if a.offer.deflate else None
    if offered is not None and _deflate_answered(a) \
            and not _values(a, "server_max_window_bits"):
        return f"accepts server_max_window_bits={offered} without answering it"
    return None


def _client_not_offered(a: Answer) -> str | None:
    offered = a.offer.deflate.client_max_window_bits if a.offer.deflate else None
    if _deflate_answered(a) and offered is None and _values(a, "client_max_window_bits"):
        return "answers client_max_window_bits, which the offer did not carry"
    return None


def _client_larger(a: Answer) -> str | None:
    offered = a.offer.deflate.client_max_window_bits if a.offer.deflate else None
    got = _bits(a, "client_max_window_bits") if _deflate_answered(a) else None
    if isinstance(offered, int) and offered is not True and got is not None and got > offered:
        return f"client_max_window_bits={got} answered to an offer of {offered}"
    return None


def _nct_dropped(a: Answer) -> str | None:
    if a.offer.deflate is not None and a.offer.deflate.server_no_context_takeover \
            and _deflate_answered(a) \
            and "server_no_context_takeover" not in {k for k, _ in a.params(DEFLATE)}:
        return "accepts server_no_context_takeover without answering it"
    return None


def _zstd(a: Answer) -> str | None:
    if a.offer.zstd is None or not a.answered(ZSTD):
        return None
    try:
        zstd_negotiation.client_check_response(a.offer.zstd, a.params(ZSTD))
    except NegotiationError as exc:
        return str(exc)
    return None


def _subprotocol(a: Answer) -> str | None:
    chosen = a.chosen_subprotocol
    if chosen is not None and chosen not in a.subprotocols:
        return f"chooses subprotocol {chosen!r}, which was not offered"
    return None


@dataclass(frozen=True)
class Check:
    """One rule an answer must keep."""

    name: str
    section: str
    rule: str
    test: Callable[[Answer], str | None]


CHECKS: tuple[Check, ...] = (
    Check("header-grammar", "RFC 6455 9.1", "Sec-WebSocket-Extensions parses", _grammar),
    Check("extension-not-offered", "RFC 6455 4.1", "only offered extensions are answered",
          _not_offered),
    Check("one-answer", "RFC 7692 5", "an extension is answered once", _one_answer),
    Check("one-rsv1-extension", "RFC 6455 5.2", "one extension gives RSV1 its meaning",
          _one_rsv1),
    Check("parameter-repeated", "RFC 7692 7", "no parameter twice", _repeated),
    Check("unknown-parameter", "RFC 7692 7", "only the four RFC 7692 parameters", _unknown),
    Check("bad-value", "RFC 7692 7.1", "flags without value, windows 8..15 in decimal",
          _bad_value),
    Check("server-window-larger", "RFC 7692 7.1.2.1",
          "server_max_window_bits answered <= offered", _server_larger),
    Check("server-window-missing", "RFC 7692 7.1.2.1",
          "an offered server_max_window_bits is answered when accepted", _server_missing),
    Check("client-window-not-offered", "RFC 7692 7.1.2.2",
          "client_max_window_bits only when offered", _client_not_offered),
    Check("client-window-larger", "RFC 7692 7.1.2.2",
          "client_max_window_bits answered <= offered", _client_larger),
    Check("server-nct-dropped", "RFC 7692 7.1.1.1",
          "an offered server_no_context_takeover is answered when accepted", _nct_dropped),
    Check("zstd-answer", "x-wslab-zstd", "the answer follows wslab/codecs/zstd_params.py "
          "and matches the offer", _zstd),
    Check("subprotocol-not-offered", "RFC 6455 4.1", "only an offered subprotocol is chosen",
          _subprotocol),
)


@dataclass
class Verdict:
    """One offer's outcome: ``outcome`` is agreed, declined (101 without it), refused
    (another HTTP status) or a ``probe_wire.FAILURES`` key."""

    offer: Offer
    outcome: str
    status: int | None = None
    answer: str | None = None
    agreed: dict[str, Any] | None = None
    violations: list[dict[str, str]] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"offer": self.offer.label, "sent": self.offer.header, "outcome": self.outcome,
                "status": self.status, "answer": self.answer, "agreed": self.agreed,
                "violations": self.violations, "note": self.note}


def read_answer(offer: Offer, text: str | None, subprotocols: Sequence[str] = (),
                chosen: str | None = None) -> Answer:
    """Parse an extensions header for the checks (a grammar error is kept, not raised)."""
    if text is None:
        return Answer(offer, None, [], None, tuple(subprotocols), chosen)
    try:
        return Answer(offer, text, parse_extensions(text), None, tuple(subprotocols), chosen)
    except NegotiationError as exc:
        return Answer(offer, text, None, str(exc), tuple(subprotocols), chosen)


def violations(answer: Answer) -> list[dict[str, str]]:
    """Every broken rule of :data:`CHECKS`, as ``{check, section, detail}``."""
    found = []
    for check in CHECKS:
        detail = check.test(answer)
        if detail:
            found.append({"check": check.name, "section": check.section, "detail": detail})
    return found


def deflate_agreement(offer: DeflateParams, text: str) -> AgreedDeflate:
    """What a client that offered ``offer`` agrees to from ``text`` (raises as
    :func:`wslab.codecs.negotiation.client_check_response` does)."""
    return client_check_response(offer, text)


def agreed_dict(agreed: AgreedDeflate) -> dict[str, Any]:
    return {"server_max_window_bits": agreed.server_max_window_bits,
            "client_max_window_bits": agreed.client_max_window_bits,
            "server_no_context_takeover": agreed.server_no_context_takeover,
            "client_no_context_takeover": agreed.client_no_context_takeover}


def judge(offer: Offer, status: int | None, failure: str | None, text: str | None,
          subprotocols: Sequence[str] = (), chosen: str | None = None) -> Verdict:
    """One offer's :class:`Verdict` from how its handshake ended."""
    if failure is not None:
        return Verdict(offer, failure, status)
    if status != 101:
        return Verdict(offer, "refused", status, text,
                       note=f"HTTP {status}: the server fails the handshake instead of "
                       "declining the extension")
    answer = read_answer(offer, text, subprotocols, chosen)
    broken = violations(answer)
    verdict = Verdict(offer, "declined", status, text, violations=broken)
    if not answer.answered(offer.extension):
        return verdict
    verdict.outcome = "agreed"
    if broken:
        return verdict
    try:
        if offer.deflate is not None:
            verdict.agreed = agreed_dict(deflate_agreement(offer.deflate, text or ""))
        elif offer.zstd is not None:
            zstd = ZstdParams.from_params(answer.params(ZSTD), response=True)
            verdict.agreed = {"mode": zstd.mode, "max_window_log": zstd.max_window_log,
                              "dict": zstd.dict_id}
    except NegotiationError as exc:  # legal, but a zlib client cannot comply (8 bits)
        verdict.note = str(exc)
    return verdict
