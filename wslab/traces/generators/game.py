"""Real-time multiplayer game traffic for one player's connection.

What lives here: :func:`game_stream`, the stream behind ``generate("game")``. Shared helpers
are in ``_common``.

Modelling choices:

* The server simulates at a fixed tick rate picked from 20, 30 or 60 Hz (the range
  browser and mobile action games commonly use) and sends one ``game.delta`` per tick,
  a little late by scheduling jitter (up to 2 ms). A delta lists only the entities in the
  player's area of interest that moved, as quantised integers (centimetres and
  hundredths of a radian) so consecutive deltas look alike, the usual bandwidth-saving
  practice. Every 5 s a full ``game.snapshot`` (keyframe) lists every visible entity.
* Entities wander with random-walk velocities; they enter and leave the area of interest.
* The client sends ``game.input`` (``critical``) while the player is active, at its own
  frame-driven rate (about 60 Hz with jitter), and not at all during idle spells: activity
  alternates with exponential spells. Inputs carry a sequence number, a key bitmask and
  aim, as client-side prediction schemes do.
* Gameplay events (spawn, kill, pickup) arrive as a Poisson process; a ping/pong pair
  every second measures latency.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from wslab.priority import CRITICAL, NORMAL
from wslab.traces.generators._common import Event, periodic, poisson, text, timeline
from wslab.traces.model import Message


def game_stream(rng: random.Random) -> Iterator[Message]:
    """An endless, time-ordered game trace for one player; see the module docstring."""
    hz = rng.choice((20, 30, 60))
    period = 1.0 / hz
    ents: dict[int, list[float]] = {}
    next_id = [100]
    tick = [0]
    seq = [0]

    def spawn() -> None:
        next_id[0] += 1
        ents[next_id[0]] = [rng.uniform(-5000, 5000), rng.uniform(-5000, 5000),
                            rng.uniform(-math.pi, math.pi), rng.gauss(0, 150), rng.gauss(0, 150)]

    for _ in range(rng.randint(8, 20)):
        spawn()

    def step() -> list[list[int]]:
        moved: list[list[int]] = []
        for eid, e in ents.items():
            if rng.random() < 0.25:  # standing still this tick
                continue
            e[3] += rng.gauss(0, 40)
            e[4] += rng.gauss(0, 40)
            e[3] *= 0.98
            e[4] *= 0.98
            e[0] += e[3] * period
            e[1] += e[4] * period
            e[2] = math.atan2(e[4], e[3])
            moved.append([eid, round(e[0]), round(e[1]), round(e[2] * 100)])
        if rng.random() < 0.01 and len(ents) > 4:
            del ents[rng.choice(list(ents))]
        if rng.random() < 0.01 and len(ents) < 32:
            spawn()
        return moved

    def on_tick(t: float) -> list[Event]:
        tick[0] += 1
        moved = step()
        if tick[0] % (5 * hz) == 1:
            full = [[eid, round(e[0]), round(e[1]), round(e[2] * 100), 100, 0]
                    for eid, e in ents.items()]
            return [text(t, "s2c", "game.snapshot", NORMAL,
                         {"t": "snap", "tick": tick[0], "e": full})]
        return [text(t, "s2c", "game.delta", NORMAL,
                     {"t": "d", "tick": tick[0], "ack": seq[0], "e": moved})]

    def inputs() -> Iterator[float]:
        t = 0.0
        while True:
            active_until = t + rng.expovariate(1 / 20.0)
            while t < active_until:
                t += rng.uniform(0.012, 0.022)
                yield t
            t += rng.expovariate(1 / 4.0)

    aim = [0.0]

    def on_input(t: float) -> list[Event]:
        seq[0] += 1
        aim[0] = (aim[0] + rng.gauss(0, 0.05)) % (2 * math.pi)
        keys = rng.choices((0, 1, 2, 4, 8, 5, 9, 16), (3, 6, 2, 2, 2, 2, 1, 1))[0]
        return [text(t, "c2s", "game.input", CRITICAL,
                     {"t": "in", "seq": seq[0], "k": keys, "aim": round(aim[0] * 1000),
                      "dt": 16})]

    def on_event(t: float) -> list[Event]:
        kind = rng.choices(("spawn", "kill", "pickup", "score"), (2, 3, 4, 1))[0]
        ids = list(ents)
        body: dict[str, object] = {"t": "ev", "ev": kind, "tick": tick[0],
                                   "who": rng.choice(ids)}
        if kind == "kill":
            body["by"] = rng.choice(ids)
            body["weapon"] = rng.choice(("rifle", "blaster", "railgun", "melee"))
        return [text(t, "s2c", "game.event", NORMAL, body)]

    def on_ping(t: float) -> list[Event]:
        sent = round(t * 1000)
        return [text(t, "c2s", "game.ping", NORMAL, {"t": "ping", "c": sent}),
                text(t + rng.uniform(0.02, 0.08), "s2c", "game.pong", NORMAL,
                     {"t": "pong", "c": sent, "tick": tick[0]})]

    hello: list[Event] = [text(0.0, "s2c", "game.welcome", NORMAL,
                               {"t": "welcome", "hz": hz, "map": "arena-2", "you": 101})]
    yield from timeline([
        (iter([0.0]), lambda _t: hello),
        (periodic(rng, period, 0.002), on_tick),
        (inputs(), on_input),
        (poisson(rng, 0.5), on_event),
        (periodic(rng, 1.0, 0.01), on_ping),
    ])
