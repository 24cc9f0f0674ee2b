"""ColumnRecorder gives back exactly the tables a plain Recorder builds from the same events."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from wslab.batching import Pending
from wslab.harness.loadlog import ColumnRecorder, ConnectionLog
from wslab.harness.recorder import (
    FRAME_COLUMNS,
    RECV_COLUMNS,
    SENT_COLUMNS,
    Recorder,
    join_stream,
    message_key,
)
from wslab.pipeline import OutFrame
from wslab.traces.model import Message
from wslab.wire import Opcode

PRIOS = ("critical", "normal", "background")


def trace_messages(n: int) -> list[Message]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        body = bytes(rng.randrange(256) for _ in range(rng.choice((0, 3, 40, 130, 300))))
        text = i % 4 != 0
        payload = body.hex().encode() if text else body
        out.append(Message(i * 0.01, "c2s", f"k{i % 5}", PRIOS[i % 3], payload, text))
    return out


class Both:
    """Feeds the same events to a Recorder and a ColumnRecorder."""

    def __init__(self, messages: list[Message], conns: list[str], sent: int = 0,
                 received: int = 0) -> None:
        self.messages = messages
        self.plain = Recorder()
        self.cols = ColumnRecorder(messages)
        self.logs: dict[str, ConnectionLog] = {c: self.cols.new_log(c, sent, received)
                                               for c in conns}
        self.frames = dict.fromkeys(conns, 0)
        self.received = dict.fromkeys(conns, 0)
        self.seq: dict[tuple[str, str], int] = {}

    def send(self, conn: str, indices: list[int], t: float, flushed: float, key: str,
             wire: int | None = None, compressed: bool = False) -> None:
        pending = []
        for i in indices:
            m = self.messages[i]
            seq = self.seq.get((conn, m.priority), 0)
            self.seq[(conn, m.priority)] = seq + 1
            pending.append(Pending(i, seq, t + 0.001 * len(pending), m.priority, m.type,
                                   m.payload, m.is_text))
        frame = self.frames[conn]
        self.frames[conn] = frame + 1
        size = sum(len(p.payload) for p in pending)
        self.plain.on_sent_frame(conn, "c2s", pending, frame, flushed)
        self.plain.on_frame_coded(conn, "c2s", frame, key, size,
                                  size if wire is None else wire, compressed)
        frame_sent = OutFrame(b"\0" * size, Opcode.TEXT, pending, flushed, "test", key)
        self.logs[conn].on_sent([frame_sent], [(size if wire is None else wire)
                                               if compressed else None])

    def receive(self, conn: str, t: float, payloads: list[bytes]) -> None:
        frame = self.received[conn]
        self.received[conn] = frame + 1
        if len(payloads) == 1:
            self.plain.on_received(conn, "s2c", t, payloads[0], frame)
            self.logs[conn].on_received(t, message_key(payloads[0]), frame)
        else:  # a batch frame: its messages logged in one call, as the load client does
            self.plain.on_received_frame(conn, "s2c", t, [(p, True) for p in payloads], frame)
            self.logs[conn].on_received_many(t, [message_key(p) for p in payloads], frame)


def by_conn(table: pd.DataFrame, conns: list[str]) -> pd.DataFrame:
    """Rows grouped by connection in ``conns`` order, each connection's own order kept."""
    order = {c: n for n, c in enumerate(conns)}
    ranked = table.assign(_c=table["conn"].map(order)).sort_values("_c", kind="stable")
    return ranked.drop(columns="_c").reset_index(drop=True)


def assert_same(columnar: pd.DataFrame, plain: pd.DataFrame, conns: list[str],
                columns: tuple[str, ...]) -> None:
    assert list(columnar.columns) == list(columns)
    expected = by_conn(plain, conns)
    assert len(columnar) == len(expected)
    for name in columns:
        got, want = columnar[name].tolist(), expected[name].tolist()
        assert got == want, name


def scripted(sent_room: int = 0, received_room: int = 0) -> tuple[Both, list[str]]:
    """Three connections, interleaved: single and multi-message frames, compressed and not,
    messages received one per frame and several per frame."""
    messages = trace_messages(60)
    conns = ["c-0", "c-1", "c-2"]
    both = Both(messages, conns, sent_room, received_room)
    rng = random.Random(3)
    t = 100.0
    next_index = {c: n for n, c in enumerate(conns)}
    for step in range(90):
        conn = conns[rng.randrange(3)]
        t += 0.002
        if rng.random() < 0.6:
            k = rng.choice((1, 1, 2, 5, 17))
            indices = [(next_index[conn] + 3 * j) % len(messages) for j in range(k)]
            next_index[conn] = (indices[-1] + 3) % len(messages)
            compressed = step % 4 == 0
            size = sum(len(messages[i].payload) for i in indices)
            both.send(conn, indices, t, t + 0.0005, f"k{step % 4}" if k == 1 else "batch",
                      wire=size // 3 if compressed else None, compressed=compressed)
        else:
            k = rng.choice((1, 1, 3))
            both.receive(conn, t, [messages[rng.randrange(len(messages))].payload
                                   for _ in range(k)])
    return both, conns


def test_tables_equal_the_plain_recorders() -> None:
    both, conns = scripted()
    assert_same(both.cols.sent_frame(), both.plain.sent_frame(), conns, SENT_COLUMNS)
    assert_same(both.cols.received_frame(), both.plain.received_frame(), conns, RECV_COLUMNS)
    assert_same(both.cols.coded_frame(), both.plain.coded_frame(), conns, FRAME_COLUMNS)
    # the script really did exercise what it claims
    sent = both.plain.sent_frame()
    assert sent.groupby(["conn", "frame"]).size().max() > 1
    assert set(sent["conn"]) == set(conns)
    assert both.plain.coded_frame()["compressed"].any()
    assert both.plain.received_frame().groupby(["conn", "frame"]).size().max() > 1


def test_tables_join_the_same_way() -> None:
    """join_stream reads both recorders' tables to the same rows and counts."""
    both, conns = scripted()
    received = pd.DataFrame(
        [(c, "c2s", 200.0 + n, message_key(both.messages[int(i)].payload),
          len(both.messages[int(i)].payload), n)
         for n, (c, i) in enumerate(zip(both.plain.sent_frame()["conn"],
                                        both.plain.sent_frame()["index"], strict=True))
         if n % 7],  # every seventh lost
        columns=list(RECV_COLUMNS))
    rows_cols, counts_cols = join_stream(both.cols.sent_frame(), received)
    rows_plain, counts_plain = join_stream(by_conn(both.plain.sent_frame(), conns), received)
    assert counts_cols == counts_plain
    assert counts_cols["lost"] > 0
    assert rows_cols["delivered"].tolist() == rows_plain["delivered"].tolist()


@pytest.mark.parametrize(("sent_room", "received_room"), [(0, 0), (1000, 1000)])
def test_growth_past_the_preallocated_size_keeps_every_row(sent_room: int,
                                                           received_room: int) -> None:
    both, conns = scripted(sent_room, received_room)
    for _ in range(3):  # large multi-message frames, far past 16 rows each
        both.send("c-1", list(range(40)), 500.0, 500.1, "batch")
    for n in range(70):
        both.receive("c-2", 600.0 + n, [both.messages[n % 60].payload])
    both.receive("c-0", 700.0, [m.payload for m in both.messages[:45]])  # grows in one go
    if sent_room == 0:
        assert len(both.logs["c-1"].sent_t) > 16  # it did grow
        assert len(both.logs["c-2"].recv_t) > 16
        assert len(both.logs["c-0"].recv_t) >= 45
    assert_same(both.cols.sent_frame(), both.plain.sent_frame(), conns, SENT_COLUMNS)
    assert_same(both.cols.received_frame(), both.plain.received_frame(), conns, RECV_COLUMNS)
    assert_same(both.cols.coded_frame(), both.plain.coded_frame(), conns, FRAME_COLUMNS)
    assert both.logs["c-1"].sent_n == len(both.plain.sent_frame().query("conn == 'c-1'"))


def test_an_empty_recorder_gives_empty_tables_with_the_columns() -> None:
    cols = ColumnRecorder(trace_messages(3))
    cols.new_log("c-0")
    assert list(cols.sent_frame().columns) == list(SENT_COLUMNS) and cols.sent_frame().empty
    assert list(cols.received_frame().columns) == list(RECV_COLUMNS)
    assert list(cols.coded_frame().columns) == list(FRAME_COLUMNS)
    assert cols.coded_frame().empty and cols.received_frame().empty


def header(n: int, masked: bool) -> int:
    """RFC 6455 section 5.2, counted by hand."""
    if n <= 125:
        h = 2
    elif n <= 0xFFFF:
        h = 2 + 2
    else:
        h = 2 + 8
    return h + (4 if masked else 0)


@pytest.mark.parametrize("masked", [True, False])
def test_sent_frame_totals_count_rfc6455_headers(masked: bool) -> None:
    sizes = [0, 1, 125, 126, 127, 65535, 65536, 70000]
    log = ConnectionLog()
    compressed = [False, True, False, True, False, False, True, False]
    frames = [OutFrame(b"\0" * (n * 2 if c else n), Opcode.BINARY, [], 0.0, "test", "k")
              for n, c in zip(sizes, compressed, strict=True)]
    assert log.on_sent(frames, [n if c else None
                                for n, c in zip(sizes, compressed, strict=True)]) == 0
    totals = log.sent_frame_totals(masked)
    assert totals == {
        "data_frames": len(sizes),
        "data_bytes": sum(n + header(n, masked) for n in sizes),
        "data_payload_bytes": sum(sizes),
        "compressed_frames": 3,
    }
    # the boundaries by hand: 125 -> 2, 126 -> 4, 65535 -> 4, 65536 -> 10 (+4 masked)
    mask = 4 if masked else 0
    assert [header(n, masked) - mask for n in (125, 126, 65535, 65536)] == [2, 4, 4, 10]
