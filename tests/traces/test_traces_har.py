"""HAR import: directions, ordering, types, and that no secrets reach the trace."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from wslab.errors import TraceFormatError, WslabError
from wslab.traces.har import import_har, message_type
from wslab.traces.io import write_trace

SECRETS = ("sessionid=SECRET_COOKIE", "Bearer SECRET_BEARER", "SECRET_QUERY_TOKEN",
           "SECRET_API_KEY", "SECRET_SET_COOKIE")


def _entry(url: str, frames: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "request": {"method": "GET", "url": url,
                    "headers": [{"name": "Cookie", "value": "sessionid=SECRET_COOKIE"},
                                {"name": "Authorization", "value": "Bearer SECRET_BEARER"}],
                    "cookies": [{"name": "sessionid", "value": "SECRET_COOKIE"}],
                    "queryString": [{"name": "token", "value": "SECRET_QUERY_TOKEN"}]},
        "response": {"status": 101, "headers": [{"name": "Set-Cookie",
                                                 "value": "SECRET_SET_COOKIE"}]},
        "_webSocketMessages": frames,
    }


def _har(tmp_path: Path) -> Path:
    ws1 = [
        {"type": "send", "time": 1000.5, "opcode": 1, "data": '{"op":"auth","k":"x"}'},
        {"type": "receive", "time": 1000.0, "opcode": 1, "data": '{"type":"hello"}'},
        {"type": "receive", "time": 1001.0, "opcode": 9, "data": ""},
        {"type": "receive", "time": 1002.0, "opcode": 2,
         "data": base64.b64encode(b"\x00\x01\xff").decode()},
    ]
    ws2 = [
        {"type": "receive", "time": 1000.5, "opcode": 1, "data": "plain text ✓"},
        {"type": "send", "time": 1000.25, "opcode": 1, "data": '[1,2]'},
    ]
    doc = {"log": {"version": "1.2", "entries": [
        {"request": {"url": "https://example.com/?api_key=SECRET_API_KEY",
                     "headers": [{"name": "Cookie", "value": "sessionid=SECRET_COOKIE"}]},
         "response": {"status": 200}},
        _entry("wss://rt.example.com:8443/live/feed?token=SECRET_QUERY_TOKEN", ws1),
        _entry("wss://chat.example.com/ws?api_key=SECRET_API_KEY#frag", ws2),
    ]}}
    path = tmp_path / "session.har"
    path.write_text(json.dumps(doc), "utf-8")
    return path


def test_import(tmp_path: Path) -> None:
    result = import_har(_har(tmp_path))
    assert (result.sockets, result.messages) == (2, 5)
    msgs = result.trace.messages
    assert [m.t for m in msgs] == [0.0, 0.25, 0.5, 0.5, 2.0]
    assert [(m.dir, m.type, m.conn) for m in msgs] == [
        ("s2c", "hello", "ws1 rt.example.com:8443/live/feed"),
        ("c2s", "text", "ws2 chat.example.com/ws"),
        ("c2s", "auth", "ws1 rt.example.com:8443/live/feed"),  # stable: ws1 came first
        ("s2c", "text", "ws2 chat.example.com/ws"),
        ("s2c", "binary", "ws1 rt.example.com:8443/live/feed"),
    ]
    assert msgs[4].payload == b"\x00\x01\xff" and not msgs[4].is_text
    assert msgs[3].payload == "plain text ✓".encode() and msgs[3].is_text
    assert {m.priority for m in msgs} == {"normal"}
    assert result.dropped["control frames (opcode 8-10)"] == 1
    assert result.dropped["non-WebSocket entries (never read)"] == 1
    assert result.dropped["query strings (never copied)"] == 2


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.zst"])
def test_no_secret_reaches_the_trace_file(tmp_path: Path, suffix: str) -> None:
    result = import_har(_har(tmp_path))
    out = tmp_path / f"out{suffix}"
    write_trace(result.trace, out)
    from wslab.traces.io import read_trace

    plain = tmp_path / "plain.jsonl"
    write_trace(read_trace(out), plain)
    text = plain.read_text("utf-8")
    for secret in (*SECRETS, "SECRET", "token=", "api_key", "Cookie", "frag"):
        assert secret not in text
    assert "rt.example.com" in text  # the host/path label is kept


def test_message_type() -> None:
    assert message_type(b'{"event":"tick","type":5}', True) == "tick"
    assert message_type(b' {"e":"depthUpdate"}', True) == "depthUpdate"
    assert message_type(b'{"channel":"news"}', True) == "news"
    assert message_type(b'{"type":""}', True) == "text"
    assert message_type(b'{"type":', True) == "text"
    assert message_type(b'{"type":"x"}', False) == "binary"


def test_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.har"
    bad.write_text("{nope", "utf-8")
    with pytest.raises(TraceFormatError, match="not a HAR file: invalid JSON"):
        import_har(bad)
    bad.write_text('{"entries": []}', "utf-8")
    with pytest.raises(TraceFormatError, match=r"no 'log\.entries'"):
        import_har(bad)
    bad.write_text('{"log": {"entries": [{"request": {"url": "https://x/"}}]}}', "utf-8")
    with pytest.raises(TraceFormatError, match="no WebSocket entry"):
        import_har(bad)
    frame = {"type": "send", "time": 1.0, "opcode": 2, "data": "!!"}
    bad.write_text(json.dumps({"log": {"entries": [_entry("wss://x/", [frame])]}}), "utf-8")
    with pytest.raises(TraceFormatError, match="entry 0, WebSocket message 0: field 'data'"):
        import_har(bad)
    frame = {"type": "upload", "time": 1.0, "opcode": 1, "data": ""}
    bad.write_text(json.dumps({"log": {"entries": [_entry("wss://x/", [frame])]}}), "utf-8")
    with pytest.raises(TraceFormatError, match="field 'type'"):
        import_har(bad)
    with pytest.raises(WslabError, match="cannot open"):
        import_har(tmp_path / "missing.har")
