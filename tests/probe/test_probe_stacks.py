"""``wslab probe`` finds the configuration real servers were started with.

Each fixture starts one stack's echo server on loopback with parameters this file chooses
(the probe is never told them) and probes it once; the tests then hold the report to
those parameters. Expected values come from the chosen configuration and the stack's own
documented rule where one applies (said beside the assertion).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from probe.probe_support import matrix_row, node_ws, probe, python_stack

from wslab.tune.probe_advice import export_target, guess_stack


def _target(report: dict[str, Any]) -> str | None:
    """The export target the advice names for the stack the Server header shows."""
    return export_target(guess_stack(report["handshake"]["server"]))

# --- python websockets -------------------------------------------------------------------

WEBSOCKETS = {"deflate": {"server_max_window_bits": 11, "client_max_window_bits": 10,
                          "server_no_context_takeover": True},
              "max_size": 200_000, "ping_interval": 0.4, "ping_timeout": 0.3}


@pytest.fixture(scope="module")
def websockets_report() -> Iterator[dict[str, Any]]:
    with python_stack("websockets", WEBSOCKETS) as port:
        yield probe(f"ws://127.0.0.1:{port}/")


def test_websockets_windows_and_context_takeover(websockets_report: dict[str, Any]) -> None:
    deflate = WEBSOCKETS["deflate"]
    server = websockets_report["server"]
    assert websockets_report["ok"], websockets_report["problems"]
    assert websockets_report["handshake"]["status"] == 101
    assert _target(websockets_report) == "websockets"
    assert server["window_unasked"] == deflate["server_max_window_bits"]
    assert server["client_window_wish"] == deflate["client_max_window_bits"]
    assert server["forces_server_no_context_takeover"] is True
    assert server["forces_client_no_context_takeover"] is False
    # A smaller window than the server's own is honoured, a larger one is capped at it.
    for bits in range(9, 16):
        assert server["server_windows"][bits] == min(bits, deflate["server_max_window_bits"])
    behaviour = websockets_report["behaviour"]
    assert behaviour["context_takeover"]["kept"] is False
    assert behaviour["threshold"]["compressed_from"] == 1  # websockets compresses everything


def test_websockets_limits_and_heartbeat(websockets_report: dict[str, Any]) -> None:
    behaviour = websockets_report["behaviour"]
    size = behaviour["max_message"]
    assert size["largest_accepted"] == WEBSOCKETS["max_size"]
    assert size["refused_at"] == WEBSOCKETS["max_size"] + 1
    assert size["refusal"] == "close:1009"
    idle = behaviour["idle"]
    assert idle["ping_interval_s"] == pytest.approx(WEBSOCKETS["ping_interval"], abs=0.1)
    assert idle["pong_timeout_s"] == pytest.approx(WEBSOCKETS["ping_timeout"], abs=0.1)
    assert idle["answering"]["closed_after_s"] is None  # a client that answers stays
    assert behaviour["ping"]["answered"] == behaviour["ping"]["sent"] > 0


# --- Node ws -----------------------------------------------------------------------------

WS = {"perMessageDeflate": {"serverMaxWindowBits": 10, "clientMaxWindowBits": 12,
                            "threshold": 300, "serverNoContextTakeover": True},
      "maxPayload": 150_000}
WS_TAKEOVER = {"perMessageDeflate": dict(WS["perMessageDeflate"], serverNoContextTakeover=False,
                                         serverMaxWindowBits=13)}


@pytest.fixture(scope="module")
def ws_reports() -> Iterator[dict[str, dict[str, Any]]]:
    quick = frozenset({"idle"})
    with node_ws(WS) as port, node_ws(WS_TAKEOVER) as port2:
        yield {"reset": probe(f"ws://127.0.0.1:{port}/", skip=quick),
               "takeover": probe(f"ws://127.0.0.1:{port2}/", skip=quick | {"max_message"})}


def test_node_ws_deflate_options(ws_reports: dict[str, dict[str, Any]]) -> None:
    pmd = WS["perMessageDeflate"]
    report = ws_reports["reset"]
    server = report["server"]
    assert server["window_unasked"] == pmd["serverMaxWindowBits"]
    assert server["client_window_wish"] == pmd["clientMaxWindowBits"]
    assert server["forces_server_no_context_takeover"] is True
    behaviour = report["behaviour"]
    assert behaviour["context_takeover"]["kept"] is False
    # ws compresses a message when its length is at least `threshold` (lib/sender.js)...
    assert behaviour["threshold"]["compressed_from"] == pmd["threshold"]
    # ws requires client_max_window_bits when clientMaxWindowBits is a number: the bare
    # offer cannot be accepted, and ws fails the handshake (400) rather than decline it.
    assert matrix_row(report, "permessage-deflate")["outcome"] == "refused"
    assert report["violations"] == []
    assert _target(report) is None  # ws sends no Server header: --stack ws names it


def test_node_ws_threshold_only_without_context_takeover(
        ws_reports: dict[str, dict[str, Any]]) -> None:
    # ... but only when its side resets its window (sender.js reads `threshold` under
    # `server_no_context_takeover`): with takeover every message is compressed.
    report = ws_reports["takeover"]
    assert report["server"]["window_unasked"] == WS_TAKEOVER["perMessageDeflate"][
        "serverMaxWindowBits"]
    assert report["behaviour"]["context_takeover"]["kept"] is True
    assert report["behaviour"]["threshold"]["compressed_from"] == 1


def test_node_ws_max_payload(ws_reports: dict[str, dict[str, Any]]) -> None:
    size = ws_reports["reset"]["behaviour"]["max_message"]
    assert size["largest_accepted"] == WS["maxPayload"]
    assert size["refusal"] == "close:1009"


# --- aiohttp -----------------------------------------------------------------------------

AIOHTTP = {"compress": True, "max_msg_size": 120_000, "heartbeat": 0.6}


@pytest.fixture(scope="module")
def aiohttp_reports() -> Iterator[dict[str, dict[str, Any]]]:
    with python_stack("aiohttp", AIOHTTP) as port:
        yield {"compress": probe(f"ws://127.0.0.1:{port}/"),
               "plain": probe(f"ws://127.0.0.1:{port}/plain",
                              skip=frozenset({"idle", "max_message"}))}


def test_aiohttp_compression_on_and_off(aiohttp_reports: dict[str, dict[str, Any]]) -> None:
    on, off = aiohttp_reports["compress"], aiohttp_reports["plain"]
    assert on["server"]["deflate"] is True
    assert on["server"]["window_unasked"] == 15  # aiohttp limits no window unasked
    assert on["behaviour"]["context_takeover"]["kept"] is True
    assert off["server"]["deflate"] is False
    assert off["handshake"]["extensions"] is None
    assert off["behaviour"]["threshold"]["observed"] is False
    assert _target(on) == "aiohttp"


def test_aiohttp_limits_and_heartbeat(aiohttp_reports: dict[str, dict[str, Any]]) -> None:
    behaviour = aiohttp_reports["compress"]["behaviour"]
    # aiohttp refuses a frame whose length reaches max_msg_size (reader: `>=`).
    assert behaviour["max_message"]["largest_accepted"] == AIOHTTP["max_msg_size"] - 1
    assert behaviour["max_message"]["refusal"] == "close:1009"
    assert behaviour["idle"]["ping_interval_s"] == pytest.approx(AIOHTTP["heartbeat"], abs=0.15)
    # aiohttp waits heartbeat / 2 for the pong (web_ws.py: `_pong_heartbeat`), then closes.
    assert behaviour["idle"]["pong_timeout_s"] == pytest.approx(AIOHTTP["heartbeat"] / 2,
                                                                abs=0.1)


# --- uvicorn (the ASGI server under FastAPI / Starlette) -----------------------------------

UVICORN = {"ws_max_size": 90_000, "ws_ping_interval": 0.5, "ws_ping_timeout": 0.4,
           "ws_per_message_deflate": True}


@pytest.fixture(scope="module")
def uvicorn_report() -> Iterator[dict[str, Any]]:
    with python_stack("uvicorn", UVICORN) as port:
        yield probe(f"ws://127.0.0.1:{port}/")


def test_uvicorn_options(uvicorn_report: dict[str, Any]) -> None:
    assert uvicorn_report["ok"], uvicorn_report["problems"]
    server = uvicorn_report["server"]
    assert server["deflate"] is UVICORN["ws_per_message_deflate"]
    assert server["window_unasked"] == 15  # uvicorn's factory sets no window
    behaviour = uvicorn_report["behaviour"]
    assert behaviour["max_message"]["largest_accepted"] == UVICORN["ws_max_size"]
    assert behaviour["idle"]["ping_interval_s"] == pytest.approx(UVICORN["ws_ping_interval"],
                                                                 abs=0.1)
    assert behaviour["idle"]["pong_timeout_s"] == pytest.approx(UVICORN["ws_ping_timeout"],
                                                                abs=0.1)
    assert "uvicorn" in (uvicorn_report["handshake"]["server"] or "")
    assert _target(uvicorn_report) == "uvicorn"
