"""What a server really does on an open connection, found by sending to it and timing it.

What lives here: the probes, each a coroutine on a :class:`~wslab.harness.probe_conn.
ProbeConn` (or on fresh ones from an ``Opener``) that returns a plain dict with
``observed`` and a ``note``:

| probe            | how                                                           | needs    |
|------------------|---------------------------------------------------------------|----------|
| echo             | send a short text, see whether the same text comes back       | -        |
| threshold        | compressible texts of doubling size, then bisection: the      | echo,    |
|                  | smallest size the server sends back with RSV1 set             | deflate  |
| context takeover | the same text twice: the second comes back far smaller only   | echo,    |
|                  | when the server kept its window (the text repeats with a      | deflate  |
|                  | period within the agreed window, so its size does not matter) |          |
| max message      | sizes doubling up to a cap, then bisection to the byte: a     | -        |
|                  | message followed by a ping is accepted when the pong comes,   |          |
|                  | refused on a close (1009 or another code) or a drop           |          |
| ping             | pings with distinct payloads, the time to each pong (and      | -        |
|                  | whether the pong echoes the payload, RFC 6455 5.5.3)          |          |
| idle             | two idle connections for a bounded wait: one answers pings,   | -        |
|                  | one does not; the server's pings and closes on each           |          |

What must not live here: handshake bytes (``probe_wire.py``), reading and inflating
frames (``probe_conn.py``), judging answers (``probe_offers.py``), the matrix and the
report (``probe.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import statistics
import struct
import time
from dataclasses import dataclass
from typing import Any

from wslab.harness.probe_conn import Message, Opener, ProbeConn
from wslab.harness.probe_wire import ProbeStepError
from wslab.wire import Opcode

THRESHOLD_TOP = 16384
"""The largest size the threshold probe tries: a server that compresses nothing up to
here is reported as never compressing."""
TAKEOVER_RATIO = 0.8
"""Second copy / first copy below this: the server kept its window."""


@dataclass(frozen=True)
class BehaviourOptions:
    """Limits of the behaviour probes (seconds and bytes)."""

    timeout: float = 3.0
    idle_wait: float = 3.0
    size_cap: int = 64 << 20
    size_start: int = 1024
    pings: int = 5
    bandwidth: float = 50e6
    """Bytes per second assumed when a big message's step gets extra time."""

    def step_timeout(self, size: int) -> float:
        return self.timeout + size / self.bandwidth



def compressible(size: int) -> bytes:
    """ASCII that deflate shrinks at any size above a few bytes."""
    return (b"wslab probe " * (size // 12 + 1))[:size]


def periodic(size: int, period: int) -> bytes:
    """Hex text of ``size`` bytes repeating one pseudo-random block of ``period`` bytes:
    it compresses to about the block's cost, and a second copy costs almost nothing when
    the sender kept its window."""
    block = b""
    seed = b"wslab-probe-takeover"
    while len(block) < period:
        seed = hashlib.sha256(seed).digest()
        block += seed.hex().encode()
    block = block[:period]
    return (block * (size // period + 1))[:size]


async def echo(conn: ProbeConn, opts: BehaviourOptions) -> dict[str, Any]:
    """Whether the endpoint sends a text straight back."""
    text = b"wslab probe: echo?"
    try:
        await conn.send_text(text)
        got = await conn.next_message(opts.timeout)
    except ProbeStepError as exc:
        return {"observed": True, "echo": False, "note": f"no answer to a text: {exc}"}
    same = got.payload == text
    return {"observed": True, "echo": same,
            "note": "echoes messages" if same else "answers, but not with the same text"}


async def _roundtrip(conn: ProbeConn, payload: bytes, timeout: float, *,
                     check: bool = True) -> Message:
    await conn.send_text(payload)
    got = await conn.next_message(timeout)
    if check and got.payload != payload:
        raise ProbeStepError("not-echo", "the answer is not the message sent")
    return got


async def threshold(conn: ProbeConn, opts: BehaviourOptions) -> dict[str, Any]:
    """The smallest size the server compresses, from echoes (RSV1 set)."""
    sizes: dict[int, bool] = {}
    size = 1
    while size <= THRESHOLD_TOP:
        sizes[size] = (await _roundtrip(conn, compressible(size), opts.timeout)).compressed
        size *= 2
    on = sorted(s for s, c in sizes.items() if c)
    if not on:
        return {"observed": True, "compressed_from": None, "tried": sizes,
                "note": f"no message up to {THRESHOLD_TOP} bytes came back compressed"}
    lo = max((s for s, c in sizes.items() if not c and s < on[0]), default=0)
    hi = on[0]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (await _roundtrip(conn, compressible(mid), opts.timeout)).compressed:
            hi = mid
        else:
            lo = mid
    mixed = [s for s, c in sizes.items() if s > hi and not c]
    note = (f"messages of {hi} bytes and more come back compressed" if hi > 1
            else "every message comes back compressed")
    if mixed:
        note += f" (but not {mixed}: more than a size threshold decides)"
    return {"observed": True, "compressed_from": hi, "tried": sizes, "note": note}


async def context_takeover(conn: ProbeConn, opts: BehaviourOptions,
                           min_size: int = 1) -> dict[str, Any]:
    """Whether the server compresses a repeat against its previous message."""
    bits = conn.deflate.server_max_window_bits if conn.deflate else 15
    usable = (1 << bits) - 262  # zlib keeps MIN_LOOKAHEAD bytes out of reach
    period = max(16, min(200, usable // 2))
    size = max(min_size, 2 * period)
    text = periodic(size, period)
    # Unchecked: a server that keeps its window after agreeing not to sends a second
    # copy that does not inflate; its size still tells what it did.
    first = await _roundtrip(conn, text, opts.timeout, check=False)
    second = await _roundtrip(conn, text, opts.timeout, check=False)
    if not (first.compressed and second.compressed):
        return {"observed": False, "kept": None, "sizes": [first.wire_payload,
                                                            second.wire_payload],
                "note": f"a {size}-byte message came back uncompressed"}
    kept = second.wire_payload < TAKEOVER_RATIO * first.wire_payload
    agreed_reset = bool(conn.deflate and conn.deflate.server_no_context_takeover)
    note = ("the server keeps its window between messages" if kept
            else "the server starts every message from an empty window")
    if kept and agreed_reset:
        conn._problem("the server used its window across messages after agreeing "
                      "server_no_context_takeover (RFC 7692 7.1.1.1)")
    return {"observed": True, "kept": kept, "message_bytes": size,
            "sizes": [first.wire_payload, second.wire_payload], "note": note}


async def _accepts(conn: ProbeConn, size: int, opts: BehaviourOptions) -> tuple[bool, str]:
    """Send ``size`` bytes and a ping: (accepted, how it ended)."""
    token = struct.pack("!Q", size)
    try:
        await conn.raw.send(Opcode.BINARY, bytes(size))
        await conn.wait_pong(token, opts.step_timeout(size))
    except ProbeStepError as exc:
        if exc.kind == "timeout":
            raise
        return False, exc.kind
    except ConnectionError:
        return False, "dropped"
    return True, "pong"


async def max_message(open_conn: Opener, opts: BehaviourOptions) -> dict[str, Any]:
    """The largest message accepted, to the byte, up to ``opts.size_cap``."""
    conn = await open_conn()
    tries: list[tuple[int, bool, str]] = []

    async def attempt(size: int) -> bool:
        nonlocal conn
        ok, how = await _accepts(conn, size, opts)
        tries.append((size, ok, how))
        if not ok:
            await conn.close()
            conn = await open_conn()
        return ok

    try:
        lo, hi, size = 0, None, min(opts.size_start, opts.size_cap)
        while True:
            if await attempt(size):
                lo = size
                if size >= opts.size_cap:
                    break
                size = min(size * 2, opts.size_cap)
            else:
                hi = size
                break
        if hi is None:
            return {"observed": True, "largest_accepted": lo, "refused_at": None,
                    "capped": True, "tries": len(tries),
                    "note": f"accepted every size up to the cap of {opts.size_cap} bytes"}
        how = tries[-1][2]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if await attempt(mid):
                lo = mid
            else:
                hi = mid
        return {"observed": True, "largest_accepted": lo, "refused_at": hi, "capped": False,
                "refusal": how, "tries": len(tries),
                "note": f"accepts {lo} bytes, refuses {hi} ({_refusal(how)})"}
    except ProbeStepError as exc:
        return {"observed": False, "largest_accepted": None, "tries": len(tries),
                "note": f"no verdict: {exc}"}
    finally:
        await conn.close()


def _refusal(how: str) -> str:
    if how.startswith("close:"):
        code = how.split(":", 1)[1]
        return f"close {code}" + (" message too big" if code == "1009" else "")
    return "connection dropped without a close frame" if how == "dropped" else how


async def ping(conn: ProbeConn, opts: BehaviourOptions) -> dict[str, Any]:
    """Round trips of pings to their pongs, in milliseconds."""
    times = []
    try:
        for i in range(opts.pings):
            times.append(1000 * await conn.wait_pong(b"wslab-%d" % i, opts.timeout))
    except ProbeStepError as exc:
        return {"observed": bool(times), "answered": len(times), "sent": len(times) + 1,
                "note": f"ping {len(times) + 1} not answered: {exc}"}
    return {"observed": True, "answered": len(times), "sent": len(times),
            "rtt_ms_median": statistics.median(times), "rtt_ms_max": max(times),
            "note": f"pongs in {statistics.median(times):.2f} ms (median)"}


async def _idle_one(conn: ProbeConn, wait: float) -> dict[str, Any]:
    deadline = conn.opened + wait
    how = "open"
    try:
        while (left := deadline - time.monotonic()) > 0:
            await conn.next_message(left, inflate=False)
    except ProbeStepError as exc:
        how = exc.kind if exc.kind != "timeout" else "open"
    pings = [round(t - conn.opened, 3) for t in conn.server_pings]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    closed = None if conn.closed_at is None and how == "open" else \
        round((conn.closed_at or time.monotonic()) - conn.opened, 3)
    return {"pings_at_s": pings, "ping_interval_s": (round(statistics.median(gaps), 3)
                                                     if gaps else None),
            "ended": how, "closed_after_s": closed}


async def idle(open_conn: Opener, opts: BehaviourOptions) -> dict[str, Any]:
    """Two idle connections for ``opts.idle_wait`` s: one answers pings, one does not."""
    answering = await open_conn()
    silent = await open_conn()
    silent.answer_pings = False
    try:
        a, s = await asyncio.gather(_idle_one(answering, opts.idle_wait),
                                    _idle_one(silent, opts.idle_wait))
    finally:
        await asyncio.gather(answering.close(), silent.close())
    pinged = bool(a["pings_at_s"] or s["pings_at_s"])
    timeout = None
    if s["closed_after_s"] is not None and s["pings_at_s"]:
        timeout = round(s["closed_after_s"] - s["pings_at_s"][0], 3)
    interval = a["ping_interval_s"] or (a["pings_at_s"][0] if a["pings_at_s"] else None)
    parts = [f"server pings every {interval} s" if interval else
             f"no server ping within {opts.idle_wait:g} s"]
    if a["closed_after_s"] is not None:
        parts.append(f"an idle client answering pings was closed after "
                     f"{a['closed_after_s']} s ({a['ended']})")
    if timeout is not None:
        parts.append(f"a client that does not answer is closed {timeout} s after the "
                     "first ping")
    return {"observed": True, "waited_s": opts.idle_wait, "pinged": pinged,
            "ping_interval_s": interval, "pong_timeout_s": timeout,
            "answering": a, "silent": s, "note": "; ".join(parts)}
