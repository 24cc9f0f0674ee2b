"""Servers that break RFC 7692 or misbehave: the probe flags each, in time, without a traceback.

``rawservers.py`` is a server that breaks one rule per path. Each test probes one path
and checks that the report names exactly the broken rule (with its RFC section) on the
rows where it was broken, and nowhere else; the misbehaving paths must give a report that
says what happened within a bound set by the per-step timeout.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from probe.rawservers import start_raw_server

from wslab.cli import run
from wslab.harness.probe import ProbeOptions, probe
from wslab.harness.probe_wire import Target

STEP = 0.6
ONLY_MATRIX = frozenset({"threshold", "takeover", "max_message", "ping", "idle"})


def _probe(path: str, **options: Any) -> tuple[dict[str, Any], float]:
    async def main() -> tuple[dict[str, Any], float]:
        server, port = await start_raw_server()
        try:
            started = time.monotonic()
            report = await probe(Target("127.0.0.1", port, path),
                                 ProbeOptions(**{"timeout": STEP, "idle_wait": 0.5,
                                                 "skip": ONLY_MATRIX, **options}))
            return report, time.monotonic() - started
        finally:
            server.close()

    return asyncio.run(main())


def _flagged(report: dict[str, Any]) -> dict[str, set[str]]:
    """check name -> the offers it was flagged on."""
    out: dict[str, set[str]] = {}
    for v in report["violations"]:
        out.setdefault(v["check"], set()).add(v["offer"])
    return out


def test_a_larger_window_than_offered_is_flagged() -> None:
    report, _ = _probe("/larger")
    flagged = _flagged(report)
    # The server answers offered+2 (at most 15): every offered value below 15 is exceeded.
    assert flagged == {"server-window-larger": {f"server_max_window_bits={b}"
                                                for b in range(8, 15)}}
    row = next(v for v in report["violations"] if v["offer"] == "server_max_window_bits=9")
    assert row["section"] == "RFC 7692 7.1.2.1"
    assert report["ok"] is False


def test_a_repeated_parameter_is_flagged() -> None:
    report, _ = _probe("/repeat")
    deflate_rows = {r["offer"] for r in report["matrix"] if "zstd" not in r["offer"]}
    assert _flagged(report) == {"parameter-repeated": deflate_rows}


def test_an_extension_not_offered_is_flagged() -> None:
    report, _ = _probe("/unoffered")
    flagged = _flagged(report)
    every = {r["offer"] for r in report["matrix"]}
    assert flagged["extension-not-offered"] == every  # x-made-up everywhere
    zstd_rows = {r for r in every if "zstd" in r}
    # To an x-wslab-zstd offer, permessage-deflate and x-made-up were both unasked for, and
    # two RSV1 extensions are never flagged since only one of them is RSV1's.
    assert "one-rsv1-extension" not in flagged
    assert zstd_rows <= flagged["extension-not-offered"]


def test_client_window_answered_when_not_offered_or_larger() -> None:
    report, _ = _probe("/client-window")
    flagged = _flagged(report)
    offered_value = {f"client_max_window_bits={b}" for b in range(8, 16)}
    deflate_rows = {r["offer"] for r in report["matrix"] if "zstd" not in r["offer"]}
    not_offered = deflate_rows - offered_value - {"browser (client_max_window_bits)"}
    assert flagged["client-window-not-offered"] == not_offered
    assert flagged["client-window-larger"] == {"client_max_window_bits=8",
                                               "client_max_window_bits=9"}
    assert report["matrix"][1]["agreed"]["client_max_window_bits"] == 10  # T -> w is fine


def test_malformed_value_and_dropped_flag_are_flagged() -> None:
    report, _ = _probe("/malformed")
    assert set(_flagged(report)) == {"bad-value"}
    report, _ = _probe("/dropped-nct")
    assert _flagged(report) == {"server-nct-dropped": {"server_no_context_takeover"}}


def test_subprotocol_not_offered_is_flagged() -> None:
    report, _ = _probe("/subprotocol", subprotocols=("chat.v1",))
    assert set(_flagged(report)) == {"subprotocol-not-offered"}


def test_context_kept_after_agreeing_to_reset_is_flagged() -> None:
    report, _ = _probe("/reset-lie", skip=frozenset({"max_message", "idle", "threshold"}))
    behaviour = report["behaviour"]
    assert behaviour["context_takeover"]["kept"] is True
    details = " | ".join(v["detail"] for v in report["violations"])
    assert "after agreeing server_no_context_takeover" in details
    assert "does not inflate" in details  # the probe's own inflater, reset per message


@pytest.mark.parametrize(("path", "failure"), [
    ("/garbage", "garbage"), ("/drop", "dropped"), ("/silent", "timeout"),
    ("/bad-accept", "bad-accept")])
def test_misbehaving_servers_give_a_report_in_time(path: str, failure: str) -> None:
    report, seconds = _probe(path, skip=frozenset())
    assert report["ok"] is False
    assert report["handshake"]["failure"] == failure
    assert len(report["problems"]) == 1 and report["problems"][0].startswith("handshake:")
    assert seconds < 2 * STEP + 0.5


def test_nothing_listening_is_a_report() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        report = asyncio.run(probe(Target("127.0.0.1", port, "/"), ProbeOptions(timeout=STEP)))
    assert report["handshake"]["failure"] == "refused"
    assert report["ok"] is False


def test_cli_refuses_a_remote_host_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["probe", "ws://192.0.2.1:80/"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--allow-remote" in err
    assert run(["probe", "http://127.0.0.1:1/"]) == 2


def test_cli_on_a_silent_server_says_so_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    async def serve_then(argv: list[str]) -> int:
        server, port = await start_raw_server()
        try:
            return await asyncio.to_thread(run, [*argv, f"ws://127.0.0.1:{port}/silent"])
        finally:
            server.close()

    code = asyncio.run(serve_then(["probe", "--timeout", str(STEP), "--json"]))
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.out + captured.err
    assert '"failure": "timeout"' in captured.out
