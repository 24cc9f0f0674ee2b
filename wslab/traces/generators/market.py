"""Market-data feed traffic: trades and order-book depth for a few instruments.

What lives here: :func:`market_stream`, the stream behind ``generate("market")``.

Modelling choices (the shape is loosely that of public exchange WebSocket feeds; no
exchange's schema is copied):

* The client subscribes to 2-5 instruments, receives a 20-level book snapshot for each,
  then only incremental updates. Prices and quantities are decimal strings, as such
  feeds send them to avoid float rounding, and each update carries a sequence number.
* Market activity clusters: trades arrive as a two-state Markov-modulated Poisson process
  (calm about 2 per second, bursts about 40 per second). Each trade is followed within a
  few milliseconds by a burst of 1-4 ``market.depth`` updates touching 1-8 price levels
  near the top of the book (a level set to quantity ``"0"`` is removed). Independent of
  trades, quotes are refreshed by a Poisson process of depth updates.
* The mid price follows a random walk on the instrument's tick grid; a ``market.ticker``
  summary per instrument is pushed every second.

Everything is ``s2c`` and ``normal``, apart from the subscription and heartbeats the
client sends (``c2s``; heartbeats ``background``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from wslab.priority import BACKGROUND, NORMAL
from wslab.traces.generators._common import (
    EPOCH_MS,
    Event,
    bursty,
    periodic,
    poisson,
    text,
    timeline,
)
from wslab.traces.model import Message

# (symbol, starting price, tick size, decimals of price, typical quantity)
_INSTRUMENTS = (
    ("BTC-USD", 43125.5, 0.5, 1, 0.05),
    ("ETH-USD", 2291.25, 0.05, 2, 0.8),
    ("SOL-USD", 98.412, 0.001, 3, 25.0),
    ("EUR-USD", 1.09345, 0.00001, 5, 100000.0),
    ("AAPL", 185.64, 0.01, 2, 100.0),
    ("XAU-USD", 2063.1, 0.1, 1, 2.0),
)


class _Book:
    """One instrument's price walk and formatting."""

    def __init__(self, rng: random.Random, spec: tuple[str, float, float, int, float]) -> None:
        self.rng = rng
        self.symbol, price, self.tick, self.dec, self.qty = spec
        self.mid_ticks = round(price / self.tick)
        self.volume = 0.0
        self.last = price
        self.seq = rng.randint(10**8, 10**9)

    def px(self, ticks: int) -> str:
        return f"{ticks * self.tick:.{self.dec}f}"

    def q(self) -> str:
        return f"{self.rng.lognormvariate(0, 1.2) * self.qty:.4f}"

    def levels(self, side: int, count: int, spread: int = 12) -> list[list[str]]:
        start = self.mid_ticks + side
        picks = sorted(self.rng.sample(range(spread), min(count, spread)))
        return [[self.px(start + side * k), "0" if self.rng.random() < 0.15 else self.q()]
                for k in picks]

    def move(self) -> None:
        self.mid_ticks += round(self.rng.gauss(0, 2))


def market_stream(rng: random.Random) -> Iterator[Message]:
    """An endless, time-ordered market-data trace; see the module docstring."""
    books = [_Book(rng, spec) for spec in rng.sample(_INSTRUMENTS, rng.randint(2, 5))]
    trade_id = [rng.randint(10**6, 10**7)]

    def ms(t: float) -> int:
        return EPOCH_MS + int(t * 1000)

    def depth(t: float, b: _Book, bids: int, asks: int) -> Event:
        b.seq += 1
        return text(t, "s2c", "market.depth", NORMAL,
                    {"e": "depth", "s": b.symbol, "u": b.seq, "E": ms(t),
                     "b": b.levels(-1, bids), "a": b.levels(1, asks)})

    def on_trade(t: float) -> list[Event]:
        b = rng.choice(books)
        b.move()
        trade_id[0] += 1
        side = rng.choice(("buy", "sell"))
        price = b.mid_ticks + (1 if side == "buy" else -1)
        qty = b.q()
        b.volume += float(qty)
        b.last = price * b.tick
        out = [text(t, "s2c", "market.trade", NORMAL,
                    {"e": "trade", "s": b.symbol, "id": trade_id[0], "p": b.px(price),
                     "q": qty, "side": side, "T": ms(t)})]
        for _ in range(rng.randint(1, 4)):
            t += rng.uniform(0.0005, 0.008)
            out.append(depth(t, b, rng.randint(0, 4), rng.randint(1, 4)))
        return out

    def on_quote(t: float) -> list[Event]:
        b = rng.choice(books)
        return [depth(t, b, rng.randint(1, 3), rng.randint(0, 3))]

    def on_ticker(t: float) -> list[Event]:
        out: list[Event] = []
        for b in books:
            out.append(text(t, "s2c", "market.ticker", NORMAL,
                            {"e": "ticker", "s": b.symbol, "last": b.px(round(b.last / b.tick)),
                             "bid": b.px(b.mid_ticks - 1), "ask": b.px(b.mid_ticks + 1),
                             "vol": f"{b.volume:.4f}", "E": ms(t)}))
            t += 0.0001
        return out

    def on_heartbeat(t: float) -> list[Event]:
        return [text(t, "c2s", "market.ping", BACKGROUND, {"op": "ping"}),
                text(t + rng.uniform(0.01, 0.05), "s2c", "market.pong", BACKGROUND,
                     {"op": "pong"})]

    def opening(t: float) -> list[Event]:
        out: list[Event] = [text(t, "c2s", "market.subscribe", NORMAL,
                                 {"op": "subscribe", "channels": ["trades", "depth"],
                                  "symbols": [b.symbol for b in books]})]
        for b in books:
            t += rng.uniform(0.03, 0.1)
            out.append(text(t, "s2c", "market.snapshot", NORMAL,
                            {"e": "snapshot", "s": b.symbol, "u": b.seq,
                             "b": [[b.px(b.mid_ticks - k), b.q()] for k in range(1, 21)],
                             "a": [[b.px(b.mid_ticks + k), b.q()] for k in range(1, 21)]}))
        return out

    yield from timeline([
        (iter([0.0]), opening),
        (bursty(rng, 2.0, 40.0, 20.0, 3.0, start=0.5), on_trade),
        (poisson(rng, 6.0, start=0.5), on_quote),
        (periodic(rng, 1.0, 0.005), on_ticker),
        (periodic(rng, 30.0, 0.01), on_heartbeat),
    ])
