"""Analytics and telemetry beacons sent from a web or mobile client over a WebSocket.

What lives here: :func:`telemetry_stream`, the stream behind ``generate("telemetry")``.

Modelling choices (the shape resembles common product-analytics SDKs without copying any
one of them):

* A user alternates between active spells and idle gaps (exponential lengths). While
  active, interaction events (clicks, views, scrolls, form events) occur as a Poisson
  process; the SDK buffers them and flushes a ``telemetry.batch`` of 1-12 events when the
  buffer fills or a flush timer (5 s) fires. Each event repeats a lot of context (anonymous
  id, session id, page, user agent), which is why such traffic compresses well.
* Page views carry performance timings (``telemetry.vitals``: LCP, INP, CLS, TTFB).
* Rare ``telemetry.error`` reports carry a message and a multi-line stack trace.
* The server acknowledges each batch (``telemetry.ack``) and now and then pushes a sampling
  configuration (``telemetry.config``).

Priorities: batches, vitals, acks and the keep-alive are ``background``; error reports and
configuration pushes are ``normal``. Nearly all bytes go ``c2s``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from wslab.priority import BACKGROUND, NORMAL
from wslab.traces.generators._common import (
    EPOCH_MS,
    Event,
    ident,
    periodic,
    poisson,
    text,
    timeline,
)
from wslab.traces.model import Message

_EVENTS = ("click", "view", "scroll", "hover", "input", "submit", "search", "add_to_cart")
_PAGES = ("/", "/pricing", "/docs/getting-started", "/blog/websocket-compression",
          "/app/dashboard", "/app/settings", "/checkout", "/search")
_ELEMENTS = ("button.primary", "a.nav-link", "div.card", "input#email", "li.result",
             "button#buy", "summary.faq")
_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
)
_ERRORS = ("TypeError: Cannot read properties of undefined (reading 'id')",
           "ReferenceError: chart is not defined", "NetworkError when attempting to fetch")


def _active_times(rng: random.Random) -> Iterator[float]:
    """Interaction times: Poisson at ~1.5/s inside active spells, nothing in idle gaps."""
    t = 0.0
    while True:
        end = t + rng.expovariate(1 / 90.0)
        while True:
            t += rng.expovariate(1.5)
            if t >= end:
                break
            yield t
        t = end + rng.expovariate(1 / 30.0)


def telemetry_stream(rng: random.Random) -> Iterator[Message]:
    """An endless, time-ordered telemetry trace; see the module docstring."""
    anon = ident(rng, "anon", 64)
    session = ident(rng, "s", 48)
    agent = rng.choice(_AGENTS)
    buffer: list[dict[str, object]] = []
    page = ["/"]
    batches = [0]
    last_flush = [0.0]
    sample = [1.0]

    def ms(t: float) -> int:
        return EPOCH_MS + int(t * 1000)

    def flush(t: float) -> list[Event]:
        if not buffer:
            return []
        batches[0] += 1
        n = batches[0]
        out = [text(t, "c2s", "telemetry.batch", BACKGROUND,
                    {"type": "batch", "seq": n, "sentAt": ms(t), "events": list(buffer)})]
        out.append(text(t + rng.uniform(0.03, 0.2), "s2c", "telemetry.ack", BACKGROUND,
                        {"type": "ack", "seq": n, "accepted": len(buffer)}))
        buffer.clear()
        last_flush[0] = t
        return out

    def on_interaction(t: float) -> list[Event]:
        out: list[Event] = []
        name = rng.choices(_EVENTS, (6, 2, 5, 3, 3, 1, 1, 1))[0]
        if name == "view":
            page[0] = rng.choice(_PAGES)
            out.append(text(t, "c2s", "telemetry.vitals", BACKGROUND,
                            {"type": "vitals", "page": page[0],
                             "lcp": round(rng.lognormvariate(7.3, 0.4)),
                             "inp": round(rng.lognormvariate(4.6, 0.6)),
                             "cls": round(rng.expovariate(12), 3),
                             "ttfb": round(rng.lognormvariate(5.3, 0.5))}))
        buffer.append({"event": name, "ts": ms(t), "anonymousId": anon, "sessionId": session,
                       "page": page[0], "element": rng.choice(_ELEMENTS),
                       "props": {"x": rng.randint(0, 1920), "y": rng.randint(0, 1080),
                                 "visible": rng.random() < 0.9},
                       "context": {"ua": agent, "locale": "en-GB", "tz": "Europe/Berlin",
                                   "screen": [1920, 1080], "sample": sample[0]}})
        if len(buffer) >= rng.randint(3, 12):
            out.extend(flush(t))
        return out

    def on_timer(t: float) -> list[Event]:
        return flush(t) if t - last_flush[0] >= 5.0 else []

    def on_error(t: float) -> list[Event]:
        frames = "\n".join(
            f"    at {rng.choice(('render', 'fetchJSON', 'onClick', 'update'))} "
            f"(https://app.example.com/static/js/main.{rng.getrandbits(32):08x}.js:"
            f"{rng.randint(1, 900)}:{rng.randint(1, 80)})"
            for _ in range(rng.randint(3, 9)))
        return [text(t, "c2s", "telemetry.error", NORMAL,
                     {"type": "error", "message": rng.choice(_ERRORS), "stack": frames,
                      "page": page[0], "sessionId": session, "ts": ms(t)})]

    def on_config(t: float) -> list[Event]:
        sample[0] = rng.choice((1.0, 0.5, 0.25, 0.1))
        return [text(t, "s2c", "telemetry.config", NORMAL,
                     {"type": "config", "sample": sample[0], "flushMs": 5000,
                      "maxBatch": 20})]

    def on_keepalive(t: float) -> list[Event]:
        return [text(t, "c2s", "telemetry.keepalive", BACKGROUND, {"type": "keepalive"})]

    yield from timeline([
        (_active_times(rng), on_interaction),
        (periodic(rng, 5.0, 0.05), on_timer),
        (poisson(rng, 1 / 240.0), on_error),
        (poisson(rng, 1 / 600.0), on_config),
        (periodic(rng, 30.0, 0.05), on_keepalive),
    ])
