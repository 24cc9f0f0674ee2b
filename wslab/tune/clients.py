"""Which configs a client population can negotiate: ``--clients browser|custom``.

What lives here: the client populations (:data:`CLIENTS`), the rules that exclude a results
row for browsers (:data:`BROWSER_RULES`, one table below), :func:`client_exclusions` (the
rule each row breaks, if any) and :func:`holdable_config` (the config a sweep should start
from so that its rows are ones the population can be held to). What must not live here:
choosing a row or wording the recommendation (``recommend*.py``), simulating, I/O.

``custom`` means clients you build yourself (for instance with Python ``websockets``, Node
``ws`` or wslab's own client): they can be given any permessage-deflate setting and the
``x-wslab-zstd`` extension, so nothing is excluded. ``browser`` (the default) means the
page's own ``WebSocket`` object in today's engines. What each offers in
``Sec-WebSocket-Extensions``, and how it compresses its own messages:

| engine                    | offers                                     | compresses with    |
|---------------------------|--------------------------------------------|--------------------|
| Chromium (Chrome, Edge)   | permessage-deflate; client_max_window_bits | 6/8, every message |
| Firefox (Gecko)           | permessage-deflate                         | 6/8, every one (1) |
| Safari 15+ (NSURLSession) | permessage-deflate                         | not published (2)  |

6/8: zlib level 6 (``Z_DEFAULT_COMPRESSION``, -1, which both pass) and memLevel 8.
(1) Every non-empty message; with ``client_no_context_takeover`` one that deflates larger
is sent plain.
(2) Closed source; Safari before 15 offered only ``x-webkit-deflate-frame``.

Sources: Chromium ``net/websockets/websocket_deflater.cc`` (``deflateInit2`` with
``Z_DEFAULT_COMPRESSION`` and memLevel 8), ``websocket_deflate_predictor_impl.cc`` (the
predictor always answers "deflate"), ``websocket_deflate_parameters.cc`` (it honours
``client_no_context_takeover`` in a response); Firefox
``netwerk/protocol/websocket/WebSocketChannel.cpp`` (``SetupRequest`` offers bare
``permessage-deflate``; ``PMCECompression`` uses level -1 and memLevel 8 and applies
``client_no_context_takeover``); the offers as captured in python-websockets/websockets#1109
(Chrome against Firefox) and whatwg/html#852; Safari's NSURLSession offer in
wandenberg/nginx-push-stream-module#295 and gorilla/websocket#696, its older
``x-webkit-deflate-frame`` in python-websockets/websockets#244.

What follows for the rows of a results table, under ``browser``:

| rule              | a row is excluded when                                          |
|-------------------|-----------------------------------------------------------------|
| ``zstd``          | ``compression.algorithm`` is ``zstd-stream`` or ``zstd-dict``   |
| ``client_window`` | permessage-deflate with ``client_max_window_bits`` below 15     |

Why. ``zstd``: ``x-wslab-zstd`` is wslab's own extension and a browser offers only
permessage-deflate, so the connection would fall back and the row's bytes, CPU and memory
would not be what the browser gets (doing better in a browser takes a JS/wasm decoder and
compression at the application layer). ``client_window``: Firefox and Safari do not offer
``client_max_window_bits``, and a server may answer with it only when it was offered
(RFC 7692 section 7.1.2.2); those browsers compress with a 15-bit window, so the server's
decompressor needs the full 32 KiB per connection and the row's memory per connection (and
its client-to-server bytes) would be wrong for them. :func:`holdable_config` gives the
window a browser population really uses (15), for the config a sweep starts from.

Kept, because a server can hold every browser to them or they are the server's own:
``server_max_window_bits`` (a server may send it unasked, RFC 7692 section 7.1.2.1),
``server_no_context_takeover`` (the server's own compressor), ``client_no_context_takeover``
(a server may request it unasked, section 7.1.1.2, and Chromium and Firefox honour it), and
the server's ``mem_level``, ``level``, ``policy`` and ``threshold_bytes`` (its own send
side). The simulator also applies those four to the client's messages, while a browser
compresses every message at level 6 with memLevel 8; the recommendation says so when the
chosen row's client-to-server figures rest on that (:func:`browser_send_caveat`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from wslab.config import TuningConfig
from wslab.errors import WslabError

Clients = Literal["browser", "custom"]
CLIENTS: tuple[Clients, ...] = ("browser", "custom")
"""The client populations a recommendation can be made for."""

BROWSER_WINDOW_BITS = 15
"""The client window a browser population compresses with (none offers a smaller one)."""
BROWSER_MEM_LEVEL = 8
"""zlib memLevel of Chromium's and Firefox's compressors."""
BROWSER_LEVEL = 6
"""zlib level of Chromium's and Firefox's compressors (``Z_DEFAULT_COMPRESSION``)."""


@dataclass(frozen=True, slots=True)
class ClientRule:
    """One reason a client population cannot be held to a row.

    Attributes:
        name: Short id (``zstd``, ``client_window``).
        excludes: Row -> True when the rule excludes it (a row is a mapping of flattened
            config columns).
        cannot: What the population cannot do, and why (the explanation says
            "Browsers cannot <cannot>.").
    """

    name: str
    excludes: Callable[[Mapping[str, Any]], bool]
    cannot: str


def _number(row: Mapping[str, Any], column: str, default: float) -> float:
    value = row.get(column, default)
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return default if out != out else out


def _zstd(row: Mapping[str, Any]) -> bool:
    return str(row.get("compression.algorithm", "")).startswith("zstd")


def _client_window(row: Mapping[str, Any]) -> bool:
    return (str(row.get("compression.algorithm", "")) == "permessage-deflate"
            and _number(row, "compression.client_max_window_bits", BROWSER_WINDOW_BITS)
            < BROWSER_WINDOW_BITS)


BROWSER_RULES: tuple[ClientRule, ...] = (
    ClientRule("zstd", _zstd,
               "negotiate x-wslab-zstd, wslab's own extension: they offer only "
               "permessage-deflate"),
    ClientRule("client_window", _client_window,
               "be held to a client_max_window_bits below 15: Firefox and Safari do not offer "
               "it, so they compress with a 32 KiB window the server must hold"),
)
"""The module table's rules for ``browser``; ``custom`` has none."""

RULES: dict[str, tuple[ClientRule, ...]] = {"browser": BROWSER_RULES, "custom": ()}


def check_clients(clients: str) -> Clients:
    """``clients`` if known, else a one-line error naming the known populations."""
    for known in CLIENTS:
        if clients == known:
            return known
    raise WslabError(f"unknown clients {clients!r}; known: {', '.join(CLIENTS)}")


def client_exclusions(df: pd.DataFrame, clients: str) -> pd.Series:
    """Per row: the name of the first rule that excludes it for ``clients``, or ``""``."""
    rules = RULES[check_clients(clients)]
    out = pd.Series("", index=df.index, dtype=object)
    if not rules or df.empty:
        return out
    for i, row in zip(df.index, records(df), strict=True):
        for rule in rules:
            if rule.excludes(row):
                out[i] = rule.name
                break
    return out


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``df`` as plain dicts keyed by column name."""
    return [{str(k): v for k, v in r.items()} for r in df.to_dict(orient="records")]


def rule(clients: str, name: str) -> ClientRule:
    """The rule called ``name`` of a population."""
    for r in RULES[check_clients(clients)]:
        if r.name == name:
            return r
    raise KeyError(name)


def holdable_config(config: TuningConfig, clients: str) -> TuningConfig:
    """``config`` with what the population cannot be held to replaced by what it gets.

    For ``browser``: ``compression.client_max_window_bits`` 15 (what Firefox and Safari
    compress with). The algorithm is left alone: a sweep may still hold zstd points, so
    the recommendation can say what they would have saved.
    """
    if check_clients(clients) == "browser":
        return config.updated({"compression.client_max_window_bits": BROWSER_WINDOW_BITS})
    return config


def browser_send_caveat(row: Mapping[str, Any]) -> str | None:
    """A sentence when a deflate row's client-side figures assume server-like settings.

    The simulator compresses the client's messages with the row's ``mem_level``, ``level``
    and ``policy``; a browser uses memLevel 8, level 6 and compresses every message.
    ``None`` when the row is not permessage-deflate or already matches a browser.
    """
    if str(row.get("compression.algorithm", "")) != "permessage-deflate":
        return None
    mem = int(_number(row, "compression.mem_level", BROWSER_MEM_LEVEL))
    level = int(_number(row, "compression.level", BROWSER_LEVEL))
    level = BROWSER_LEVEL if level == -1 else level
    policy = str(row.get("compression.policy", "always"))
    if (mem, level, policy) == (BROWSER_MEM_LEVEL, BROWSER_LEVEL, "always"):
        return None
    return (f"Client-to-server figures assume the client compresses like the server "
            f"(memLevel {mem}, level {level}, policy {policy}); a browser compresses every "
            f"message with memLevel {BROWSER_MEM_LEVEL} and level {BROWSER_LEVEL}.")
