"""``wslab probe``: audit a WebSocket endpoint someone else runs, as one report.

What lives here: :class:`ProbeOptions` and :func:`run_probe` / :func:`probe`, which put
the pieces together: the opening handshake a browser would send, the offer matrix (every
row of ``probe_offers.OFFERS`` at once, each its own connection, at most ``concurrency``
at a time), what the server turned out to be configured with (:func:`server_summary`),
the behaviour probes (``probe_behaviour.py``) and the trace replay (``probe_trace.py``).
The report is a plain dict (``--json`` prints it as it is). What must not live here: the
bytes of a handshake (``probe_wire.py``), the rules (``probe_offers.py``), advice and
recommendations (``wslab.tune.probe_advice``), printing (``wslab.cli.probe_cmd``).

Every network step has its own timeout, and each probe as a whole a budget, so a server
that answers garbage, drops connections or never answers gives a report saying so. The
probes run concurrently on separate connections:

| connection(s)          | probes                                        |
|------------------------|-----------------------------------------------|
| one per matrix row     | handshake with that offer only                |
| A                      | echo, ping round trips, compression threshold |
| B                      | context takeover (a fresh window)             |
| C, reopened on refusal | largest accepted message                      |
| D and E                | idle: D answers pings, E does not             |
| F                      | ``--trace`` replay                            |
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from wslab.codecs.deflate_params import AgreedDeflate
from wslab.errors import WslabError
from wslab.harness import probe_behaviour as behave
from wslab.harness.probe_conn import ProbeConn
from wslab.harness.probe_offers import BROWSER_OFFER, OFFERS, Offer, Verdict, judge
from wslab.harness.probe_trace import client_messages, predict, probe_config, replay
from wslab.harness.probe_wire import FAILURES, ProbeStepError, Target, open_handshake
from wslab.traces.model import Trace

PROBES = ("matrix", "threshold", "takeover", "max_message", "ping", "idle", "trace")


@dataclass(frozen=True)
class ProbeOptions:
    """What to probe and how long each step may take (seconds, bytes)."""

    timeout: float = 3.0
    idle_wait: float = 3.0
    size_cap: int = 64 << 20
    subprotocols: tuple[str, ...] = ()
    origin: str | None = None
    concurrency: int = 8
    trace: Trace | None = None
    trace_messages: int = 200
    skip: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.idle_wait < 0 or self.size_cap < 1:
            raise WslabError("probe: timeouts must be > 0 and the size cap at least 1 byte")
        unknown = sorted(set(self.skip) - set(PROBES))
        if unknown:
            raise WslabError(f"probe: unknown probe(s) {', '.join(unknown)}; known: "
                             f"{', '.join(PROBES)}")

    @property
    def behaviour(self) -> behave.BehaviourOptions:
        return behave.BehaviourOptions(timeout=self.timeout, idle_wait=self.idle_wait,
                                       size_cap=self.size_cap)


def run_probe(target: Target, opts: ProbeOptions) -> dict[str, Any]:
    """:func:`probe` on a fresh event loop."""
    return asyncio.run(probe(target, opts))


async def _handshake(target: Target, offer: Offer | None, opts: ProbeOptions,
                     ) -> tuple[Verdict | None, dict[str, Any], Any]:
    result, conn = await open_handshake(
        target, extensions=offer.header if offer else None, subprotocols=opts.subprotocols,
        origin=opts.origin, timeout=opts.timeout)
    verdict = None
    if offer is not None:
        verdict = judge(offer, result.status, result.failure,
                        result.header("Sec-WebSocket-Extensions"), opts.subprotocols,
                        result.header("Sec-WebSocket-Protocol"))
    return verdict, result.to_dict(), conn


async def _matrix(target: Target, opts: ProbeOptions) -> list[Verdict]:
    gate = asyncio.Semaphore(opts.concurrency)

    async def one(offer: Offer) -> Verdict:
        async with gate:
            verdict, _, conn = await _handshake(target, offer, opts)
            if conn is not None:
                await conn.close(timeout=opts.timeout)
            assert verdict is not None
            return verdict

    return list(await asyncio.gather(*(one(o) for o in OFFERS)))


def server_summary(matrix: list[Verdict]) -> dict[str, Any]:
    """What the server is configured with, read off the matrix.

    ``window_unasked`` is the server's window when the client states no wish (its own
    limit: absent means 15); ``client_window_wish`` what it asks of a client that can
    honour a limit; ``forces_*`` whether it resets a side's window unasked.
    """
    by = {v.offer.label: v for v in matrix}
    base = by.get(BROWSER_OFFER.label)
    if base is None or base.agreed is None:
        base = by.get(OFFERS[0].label)
    agreed = base.agreed if base is not None else None
    out: dict[str, Any] = {"deflate": agreed is not None, "agreed": agreed}
    if agreed is not None:
        out.update({
            "window_unasked": agreed["server_max_window_bits"],
            "client_window_wish": (agreed["client_max_window_bits"]
                                   if by[BROWSER_OFFER.label].agreed else None),
            "forces_server_no_context_takeover": agreed["server_no_context_takeover"],
            "forces_client_no_context_takeover": agreed["client_no_context_takeover"],
        })
    windows = {}
    for bits in range(8, 16):
        v = by.get(f"server_max_window_bits={bits}")
        if v is not None:
            windows[bits] = (v.agreed or {}).get("server_max_window_bits", v.outcome)
    out["server_windows"] = windows
    snct = by.get("server_no_context_takeover")
    out["honours_server_no_context_takeover"] = bool(snct and snct.agreed and
                                                     snct.agreed["server_no_context_takeover"])
    out["zstd"] = [v.offer.label.split("mode=")[1] for v in matrix
                   if v.offer.zstd is not None and v.agreed is not None]
    return out


async def _budget(name: str, work: Awaitable[dict[str, Any]], seconds: float,
                  ) -> dict[str, Any]:
    try:
        return await asyncio.wait_for(work, seconds)
    except TimeoutError:
        return {"observed": False, "note": f"{name}: no verdict within {seconds:.0f} s"}
    except ProbeStepError as exc:
        return {"observed": False, "note": f"{name}: {exc}"}
    except (OSError, WslabError) as exc:
        return {"observed": False, "note": f"{name}: {exc.__class__.__name__}: {exc}"}


def _agreed_deflate(agreed: dict[str, Any] | None) -> AgreedDeflate | None:
    if agreed is None:
        return None
    return AgreedDeflate(**{k: agreed[k] for k in (
        "server_max_window_bits", "client_max_window_bits", "server_no_context_takeover",
        "client_no_context_takeover")})


async def probe(target: Target, opts: ProbeOptions) -> dict[str, Any]:
    """Probe ``target``; the report (see the module docstring)."""
    started = time.monotonic()
    report: dict[str, Any] = {"target": target.url, "options": {
        "timeout_s": opts.timeout, "idle_wait_s": opts.idle_wait,
        "size_cap": opts.size_cap, "subprotocols": list(opts.subprotocols),
        "skipped": sorted(opts.skip)}}
    verdict, hs, conn = await _handshake(target, BROWSER_OFFER, opts)
    if conn is not None:
        await conn.close(timeout=opts.timeout)
    assert verdict is not None
    hs.update({"offered": BROWSER_OFFER.header, "subprotocols_offered": list(opts.subprotocols)})
    report["handshake"] = hs
    problems: list[str] = []
    if hs["failure"] is not None:
        problems.append(f"handshake: {FAILURES[hs['failure']]} ({hs['detail']})")
    elif hs["status"] != 101:
        problems.append(f"handshake: HTTP {hs['status']} {hs['reason']}, not 101: not a "
                        "WebSocket endpoint here (or it refuses this client)")
    if problems:
        report.update(ok=False, problems=problems, violations=[],
                      seconds=round(time.monotonic() - started, 3))
        return report

    matrix = [] if "matrix" in opts.skip else await _matrix(target, opts)
    if not matrix:
        matrix = [verdict]
    report["matrix"] = [v.to_dict() for v in matrix]
    summary = server_summary(matrix)
    report["server"] = summary
    violations = [dict(v, offer=m.offer.label) for m in matrix for v in m.violations]
    agreed = _agreed_deflate(summary["agreed"])
    offer = None if agreed is None else (
        BROWSER_OFFER if verdict.agreed else OFFERS[0])
    conns: list[ProbeConn] = []

    async def open_conn() -> ProbeConn:
        _, shake, raw = await _handshake(target, offer, opts)
        if raw is None:
            raise ProbeStepError("handshake", f"a new connection failed: "
                                 f"{shake['failure'] or shake['status']} {shake['detail']}")
        conn = ProbeConn(raw, agreed)
        conns.append(conn)
        return conn

    b = opts.behaviour
    step = opts.timeout
    results: dict[str, Any] = {}
    echo_known, threshold_known = asyncio.Event(), asyncio.Event()

    async def with_conn(probe: Any, *args: Any) -> dict[str, Any]:
        conn = await open_conn()
        try:
            result: dict[str, Any] = await probe(conn, *args)
            return result
        finally:
            await conn.close()

    async def on_a() -> None:
        try:
            conn = await open_conn()
        except (ProbeStepError, OSError) as exc:
            results["echo"] = {"observed": False, "echo": False, "note": str(exc)}
            return
        try:
            results["echo"] = await _budget("echo", behave.echo(conn, b), 3 * step)
            echo_known.set()
            if "ping" not in opts.skip:
                results["ping"] = await _budget("ping", behave.ping(conn, b),
                                                (b.pings + 1) * step)
            if "threshold" in opts.skip:
                return
            if not results["echo"].get("echo") or agreed is None:
                results["threshold"] = _unobservable(agreed, results["echo"])
                return
            results["threshold"] = await _budget("threshold", behave.threshold(conn, b),
                                                 40 * step)
        finally:
            results.setdefault("echo", {"observed": False, "echo": False,
                                        "note": "the probe connection failed"})
            echo_known.set()
            threshold_known.set()
            await conn.close()

    async def on_b() -> None:
        if "takeover" in opts.skip:
            return
        await echo_known.wait()
        if not results["echo"].get("echo") or agreed is None:
            results["context_takeover"] = _unobservable(agreed, results["echo"])
            return
        await threshold_known.wait()
        floor = (results.get("threshold") or {}).get("compressed_from") or 1
        results["context_takeover"] = await _budget(
            "context takeover", with_conn(behave.context_takeover, b, floor), 5 * step)

    async def on_c() -> None:
        if "max_message" not in opts.skip:
            budget = 80 * step + 4 * opts.size_cap / b.bandwidth
            results["max_message"] = await _budget("max message",
                                                   behave.max_message(open_conn, b), budget)

    async def on_de() -> None:
        if "idle" not in opts.skip:
            results["idle"] = await _budget("idle", behave.idle(open_conn, b),
                                            opts.idle_wait + 4 * step)

    async def on_f() -> None:
        if opts.trace is None or "trace" in opts.skip:
            return
        await echo_known.wait()
        messages = client_messages(opts.trace, opts.trace_messages)
        if not results["echo"].get("echo"):
            results["trace"] = {"observed": False, "note": "the endpoint does not echo: "
                                "--trace needs an echo endpoint"}
            return
        measured = await _budget("trace", with_conn(replay, messages, step),
                                 step * (len(messages) + 2))
        await threshold_known.wait()
        floor = (results.get("threshold") or {}).get("compressed_from")
        config = probe_config(summary["agreed"], floor)
        measured["predicted"] = await asyncio.to_thread(predict, messages, config)
        results["trace"] = measured

    await asyncio.gather(on_a(), on_b(), on_c(), on_de(), on_f())
    for conn in conns:
        for text in conn.problems:
            violations.append({"check": "behaviour", "section": text.rsplit("(", 1)[-1]
                               .rstrip(")"), "detail": text, "offer": "(connection)"})
    report["behaviour"] = results
    report["violations"] = violations
    problems += _grouped(violations)
    report["problems"] = problems
    report["ok"] = not problems
    report["seconds"] = round(time.monotonic() - started, 3)
    return report


def _grouped(violations: list[dict[str, str]]) -> list[str]:
    """One line per broken rule and detail, naming the offers it was seen on."""
    offers: dict[tuple[str, str, str], list[str]] = {}
    for v in violations:
        offers.setdefault((v["check"], v["section"], v["detail"]), []).append(v["offer"])
    lines = []
    for (check, section, detail), where in offers.items():
        shown = ", ".join(where[:4]) + (f" and {len(where) - 4} more" if len(where) > 4 else "")
        lines.append(f"{check} ({section}): {detail}; on {shown}")
    return lines


def _unobservable(agreed: AgreedDeflate | None, echo: dict[str, Any]) -> dict[str, Any]:
    why = ("no compression was agreed" if agreed is None else
           "the endpoint does not echo, so what it compresses cannot be seen")
    if agreed is None and not echo.get("echo"):
        why += " and the endpoint does not echo"
    return {"observed": False, "note": why}
