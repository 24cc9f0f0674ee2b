"""Chat traffic as one client of a group-chat service sees it.

What lives here: :func:`chat_stream`, the infinite message stream behind ``generate("chat")``.
Nothing else: shared arrival processes and text pools are in ``_common``.

Modelling choices (no particular product is copied):

* The envelopes follow the JSON shape common to chat gateways: a ``type`` field, a room id,
  a message id, the author, the text and a server timestamp in milliseconds.
* The user sits in a handful of rooms. Messages from others arrive as a bursty process
  (conversations cluster: a two-state Markov-modulated Poisson process, calm about one
  message per 4 s, bursts about 3 per second). Most are preceded by a ``typing`` indicator
  a few seconds before; some are followed by read receipts from other members.
* The user writes too (about one in six messages): a ``typing`` notice, the send, and the
  server's acknowledgement with the assigned id. After reading a burst the client sends a
  ``read`` marker. Presence changes (online / away / offline) trickle in, and an
  application heartbeat runs every 25 s.
* Text is Zipf-ish in length (log-normal word count) with some other languages, emoji
  (including skin-tone and ZWJ sequences and flags), a few multi-line messages and links.

Priorities: messages, acks and presence are ``normal``; typing indicators, receipts, read
markers and heartbeats are ``background``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from wslab.priority import BACKGROUND, NORMAL
from wslab.traces.generators._common import (
    EPOCH_MS,
    Event,
    bursty,
    ident,
    periodic,
    poisson,
    sentence,
    text,
    timeline,
)
from wslab.traces.model import Message

_ROOM_NAMES = ("general", "random", "dev", "ops-alerts", "design", "café", "チーム", "standup")
_FIRST = ("Ana", "Ben", "Chloé", "Dmitri", "Eun-ji", "Farah", "Göran", "Hiro", "Iris",
          "José", "Kofi", "Lena", "Mateo", "Nadia", "Olu", "Priya", "Quinn", "Rūta")


def chat_stream(rng: random.Random) -> Iterator[Message]:
    """An endless, time-ordered chat trace for one client; see the module docstring."""
    rooms = rng.sample(_ROOM_NAMES, rng.randint(3, 6))
    people = [(ident(rng, "u", 32), name) for name in rng.sample(_FIRST, rng.randint(6, 14))]
    me = ident(rng, "u", 32)
    state = {"msg": 1000, "unread": 0}

    def ms(t: float) -> int:
        return EPOCH_MS + int(t * 1000)

    def next_id() -> str:
        state["msg"] += 1
        return f"m_{state['msg']:08d}"

    def incoming(t: float) -> list[Event]:
        room = rng.choice(rooms)
        uid, name = rng.choice(people)
        out: list[Event] = []
        if rng.random() < 0.6:
            out.append(text(t, "s2c", "chat.typing", BACKGROUND,
                            {"type": "typing", "room": room, "user": uid, "on": True}))
            t += rng.uniform(0.8, 6.0)
        mid = next_id()
        body: dict[str, object] = {"type": "message", "room": room, "id": mid,
                                   "from": {"id": uid, "name": name},
                                   "text": sentence(rng), "ts": ms(t)}
        if rng.random() < 0.1:
            body["reply_to"] = f"m_{max(1001, state['msg'] - rng.randint(1, 30)):08d}"
        if rng.random() < 0.08:
            body["reactions"] = {rng.choice(("👍", "😂", "🎉", "❤️")): rng.randint(1, 5)}
        out.append(text(t, "s2c", "chat.message", NORMAL, body))
        state["unread"] += 1
        if state["unread"] >= rng.randint(3, 8):
            state["unread"] = 0
            out.append(text(t + rng.uniform(0.5, 20.0), "c2s", "chat.read", BACKGROUND,
                            {"type": "read", "room": room, "upto": mid}))
        return out

    def outgoing(t: float) -> list[Event]:
        room = rng.choice(rooms)
        nonce = ident(rng, "n", 32)
        out: list[Event] = [text(t, "c2s", "chat.typing", BACKGROUND,
                                 {"type": "typing", "room": room, "on": True})]
        t += rng.uniform(1.0, 12.0)
        out.append(text(t, "c2s", "chat.send", NORMAL,
                        {"type": "send", "room": room, "nonce": nonce, "text": sentence(rng)}))
        t += rng.uniform(0.02, 0.15)
        mid = next_id()
        out.append(text(t, "s2c", "chat.ack", NORMAL,
                        {"type": "ack", "nonce": nonce, "id": mid, "ts": ms(t)}))
        for uid, _ in rng.sample(people, rng.randint(0, 3)):
            t += rng.expovariate(0.2)
            out.append(text(t, "s2c", "chat.receipt", BACKGROUND,
                            {"type": "receipt", "room": room, "id": mid, "user": uid,
                             "ts": ms(t)}))
        return out

    def presence(t: float) -> list[Event]:
        uid, name = rng.choice(people)
        status = rng.choices(("online", "away", "offline"), (5, 3, 2))[0]
        return [text(t, "s2c", "chat.presence", NORMAL,
                     {"type": "presence", "user": uid, "name": name, "status": status,
                      "ts": ms(t)})]

    def heartbeat(t: float) -> list[Event]:
        return [text(t, "c2s", "chat.ping", BACKGROUND, {"type": "ping"}),
                text(t + rng.uniform(0.02, 0.12), "s2c", "chat.pong", BACKGROUND,
                     {"type": "pong"})]

    hello: list[Event] = [text(0.0, "s2c", "chat.hello", NORMAL,
                               {"type": "hello", "user": me, "rooms": rooms,
                                "heartbeat_ms": 25000})]
    yield from timeline([
        (iter([0.0]), lambda _t: hello),
        (bursty(rng, 0.25, 3.0, 60.0, 15.0), incoming),
        (bursty(rng, 0.04, 0.5, 90.0, 20.0), outgoing),
        (poisson(rng, 0.05), presence),
        (periodic(rng, 25.0, 0.05), heartbeat),
    ])
