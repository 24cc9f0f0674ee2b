"""A mixed trace: one connection multiplexing several kinds of traffic.

What lives here: :func:`mixed_stream`, the stream behind ``generate("mixed")``.

Modelling choice: many applications run one WebSocket per client and multiplex features
over it (a trading screen with a chat pane and analytics, a game client with chat). This
trace merges, by time, independent chat, market-data and telemetry streams with an order
channel: the client places ``critical`` orders (``order.place``) and the server confirms
them (``order.ack``, also ``critical``) and reports fills. Together the three priorities
all occur: ``critical`` orders, ``normal`` chat and market data, ``background`` telemetry,
typing indicators and receipts. Each part draws from its own seeded random stream, so a
part's content does not depend on how the parts interleave.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator

from wslab.priority import CRITICAL, NORMAL
from wslab.traces.generators._common import EPOCH_MS, Event, bursty, ident, text, timeline
from wslab.traces.generators.chat import chat_stream
from wslab.traces.generators.market import market_stream
from wslab.traces.generators.telemetry import telemetry_stream
from wslab.traces.model import Message


def _orders(rng: random.Random) -> Iterator[Message]:
    """Order placement and confirmation: bursts of activity, a few orders per minute."""
    symbols = ("BTC-USD", "ETH-USD", "EUR-USD", "AAPL")

    def place(t: float) -> list[Event]:
        cid = ident(rng, "o", 40)
        sym = rng.choice(symbols)
        qty = f"{rng.lognormvariate(0, 1):.4f}"
        out = [text(t, "c2s", "order.place", CRITICAL,
                    {"type": "place", "cid": cid, "s": sym, "side": rng.choice(("buy", "sell")),
                     "q": qty, "kind": rng.choice(("limit", "market")), "tif": "GTC"})]
        t += rng.uniform(0.005, 0.04)
        oid = rng.getrandbits(48)
        out.append(text(t, "s2c", "order.ack", CRITICAL,
                        {"type": "ack", "cid": cid, "id": oid, "status": "open",
                         "ts": EPOCH_MS + int(t * 1000)}))
        if rng.random() < 0.7:
            t += rng.expovariate(0.5)
            out.append(text(t, "s2c", "order.fill", NORMAL,
                            {"type": "fill", "id": oid, "q": qty, "ts": EPOCH_MS + int(t * 1000)}))
        return out

    yield from timeline([(bursty(rng, 0.02, 0.5, 120.0, 20.0), place)])


def mixed_stream(rng: random.Random) -> Iterator[Message]:
    """An endless, time-ordered mixed trace; see the module docstring."""
    parts = [random.Random(rng.getrandbits(64)) for _ in range(4)]
    yield from heapq.merge(
        chat_stream(parts[0]),
        market_stream(parts[1]),
        telemetry_stream(parts[2]),
        _orders(parts[3]),
        key=lambda m: m.t,
    )
