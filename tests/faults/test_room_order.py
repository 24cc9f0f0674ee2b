"""Room forwarding under batching: messages from several room-mates share frames, and every
member still gets every message of every other member, in order within each class."""

from __future__ import annotations

import asyncio
import json

import pandas as pd
import pytest

from wslab.config import TuningConfig
from wslab.harness.client import LoadClient
from wslab.harness.recorder import join_stream, message_key
from wslab.harness.server import LiveServer
from wslab.traces.model import Message, Trace

PRIOS = ("critical", "normal", "background")
N = 60
LEAD_S = 0.5
"""The numbered messages start this long after a member's ``hello``, when all are in."""


def member_trace(member: int) -> Trace:
    hello = Message(0.0, "c2s", "chat", "normal", json.dumps({"hello": member}).encode(), True)
    return Trace([hello] + [Message(LEAD_S + i * 0.01, "c2s", "chat", PRIOS[i % 3],
                                    json.dumps({"from": member, "i": i}).encode(), True)
                            for i in range(N)])


@pytest.mark.timeout(60)
def test_room_forwarding_delivers_everything_in_order_within_each_class() -> None:
    config = TuningConfig().updated({"batching.strategy": "priority",
                                     "batching.envelope": "json-array"})

    async def main() -> tuple[list[LoadClient], dict[str, int], int]:
        async with LiveServer(config, scenario="room", rooms=1) as server:
            clients = [LoadClient(f"ws://127.0.0.1:{server.port}/", config,
                                  trace=member_trace(n), prefix=f"m{n}", drain_timeout=1.0,
                                  expect_s2c=2 * (N + 1))  # both mates' hello and messages
                       for n in range(3)]
            await asyncio.gather(*(c.run() for c in clients))
            received = pd.concat([c.recorder.received_frame() for c in clients],
                                 ignore_index=True)
            _, counts = join_stream(server.recorder.sent_frame(), received)
            return clients, counts, int(server.metrics.counts["frames_sent"])

    clients, counts, frames = asyncio.run(main())
    assert counts == {"lost": 0, "duplicated": 0, "reordered": 0}
    numbered = {message_key(m.payload): (n, m.priority, json.loads(m.payload)["i"])
                for n in range(3) for m in member_trace(n).messages[1:]}
    for n, client in enumerate(clients):
        heard = [numbered[k] for k in client.recorder.received_frame()["key"]
                 if k in numbered]
        for mate in (m for m in range(3) if m != n):
            for prio in PRIOS:
                sent = [i for i in range(N) if PRIOS[i % 3] == prio]
                got = [i for s, p, i in heard if s == mate and p == prio]
                assert got == sent, f"m{n} got {got} of m{mate}'s {prio} {sent}"
        assert len(heard) == 2 * N  # nothing of its own came back
    assert frames < 3 * 2 * N  # batching put several messages in some frames
