"""HAR import: directions, ordering, types, and that no secrets reach the trace."""

from __future__ import annotations

import base64
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_odd_opcodes_are_counted_not_fatal(tmp_path: Path) -> None:
    """Any JSON value may stand in 'opcode': unknown ones are dropped and named."""
    frames = [{"type": "send", "time": 1.0, "opcode": op, "data": "x"}
              for op in (1, 3, [1], {"o": 1}, "1", 10, 8)]
    path = tmp_path / "odd.har"
    path.write_text(json.dumps({"log": {"entries": [_entry("wss://x/", frames)]}}), "utf-8")
    result = import_har(path)
    assert result.messages == 1
    assert result.dropped["control frames (opcode 8-10)"] == 2
    assert {k for k in result.dropped if k.startswith("frames with unknown")} == {
        "frames with unknown opcode 3", "frames with unknown opcode [1]",
        "frames with unknown opcode {'o': 1}", "frames with unknown opcode '1'"}


# -- secrets inside messages ------------------------------------------------------------

def _jwt(sub: str) -> str:
    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': sub})}.Zk9xR2c1NlRx_8-q"


API_KEY = "AKIA9X8Y7Z6W5V4U"
NONCE = 839201
POLYGON_KEY = "PKQ3ZL0Y8N1M2B4V6C7X"
UNICODE_PASSWORD = "pässwörd€1"
ESCAPED_SECRET = 'é"x-42'
PASSCODE = "S3cr3tPass"
BEARER = "9a8b7c6d5e4f3a2b1c0d"
JWT_TEXT = _jwt("user-1234")
JWT_BINARY = _jwt("device-5678")
PLANTED = (API_KEY, str(NONCE), POLYGON_KEY, UNICODE_PASSWORD, "\\u00e9\\\"x-42", PASSCODE,
           BEARER, JWT_TEXT, JWT_BINARY)
SUBSCRIBE = json.dumps({"type": "subscribe", "channel": "prices",
                        "auth": {"apiKey": API_KEY, "nonce": NONCE}})
HARMLESS = json.dumps({"type": "chat", "text": "the author of max_tokens", "max_tokens": 5,
                       "tokenizer": "bpe", "login": "guest"})
# (frame, the values the test planted in it, per redaction rule)
SECRET_FRAMES: list[tuple[dict[str, Any], dict[str, int]]] = [
    ({"type": "send", "opcode": 1, "data": SUBSCRIBE}, {"JSON value under a secret key": 2}),
    ({"type": "send", "opcode": 1, "data": json.dumps({"action": "auth",
                                                        "params": POLYGON_KEY})},
     {"auth message field": 1}),
    ({"type": "send", "opcode": 1,
      "data": json.dumps({"type": "profile", "user": "alice", "password": UNICODE_PASSWORD},
                         ensure_ascii=False)}, {"JSON value under a secret key": 1}),
    ({"type": "send", "opcode": 1,
      "data": json.dumps({"type": "profile", "client_secret": ESCAPED_SECRET})},
     {"JSON value under a secret key": 1}),
    ({"type": "send", "opcode": 1, "data": f"CONNECT\nlogin:guest\npasscode:{PASSCODE}\n\n"},
     {"key=value secret": 1}),
    ({"type": "send", "opcode": 1, "data": f"HELLO Authorization: Bearer {BEARER}"},
     {"bearer token": 1}),
    ({"type": "receive", "opcode": 1, "data": f"session restored for {JWT_TEXT}"},
     {"JWT": 1}),
    ({"type": "receive", "opcode": 2,
      "data": base64.b64encode(b"\x01\x02" + JWT_BINARY.encode() + b"\x00\xff").decode()},
     {"JWT": 1}),
    ({"type": "send", "opcode": 1, "data": SUBSCRIBE}, {"JSON value under a secret key": 2}),
    ({"type": "receive", "opcode": 1, "data": HARMLESS}, {}),
]


def _secret_har(tmp_path: Path) -> Path:
    frames = [dict(f, time=1000.0 + i) for i, (f, _) in enumerate(SECRET_FRAMES)]
    doc = {"log": {"entries": [_entry("wss://x.example.com/ws", frames)]}}
    path = tmp_path / "secrets.har"
    path.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    return path


def _original(index: int) -> bytes:
    frame = SECRET_FRAMES[index][0]
    return (base64.b64decode(frame["data"]) if frame["opcode"] == 2
            else frame["data"].encode())


def _same_class(a: str, b: str) -> bool:
    """Equal length; ASCII letters stay letters of their case, digits digits, a non-ASCII
    letter or digit a non-ASCII letter, anything else is kept."""
    def cls(c: str) -> str:
        if c.isascii():
            return ("lower" if c.islower() else "upper" if c.isupper() else
                    "digit" if c.isdigit() else c)
        return "wide letter" if c.isalnum() else c
    return len(a) == len(b) and all(cls(x) == cls(y) for x, y in zip(a, b, strict=True))


def _leaves_alike(a: Any, b: Any) -> bool:
    """Same JSON structure and keys; every leaf equal or a same-class stand-in."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(
            _leaves_alike(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(
            _leaves_alike(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or a is None:
        return a is b
    if isinstance(a, float):  # digits of the mantissa and exponent may move
        return isinstance(b, float) and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, int):
        return isinstance(b, int) and _same_class(str(a), str(b))
    return isinstance(b, str) and _same_class(a, b)


def test_secrets_inside_messages_are_redacted_same_length_same_class(tmp_path: Path) -> None:
    result = import_har(_secret_har(tmp_path))
    msgs = result.trace.messages
    assert len(msgs) == len(SECRET_FRAMES)
    planted: Counter[str] = Counter()
    for _, counts in SECRET_FRAMES:
        planted.update(counts)
    assert result.redacted == dict(planted)
    assert f"{sum(planted.values())} secret value(s)" in result.trace.meta.description
    for i, m in enumerate(msgs):
        original = _original(i)
        assert len(m.payload) == len(original), f"message {i} changed length"
        if not SECRET_FRAMES[i][1]:
            assert m.payload == original  # nothing secret: byte for byte
            continue
        assert m.payload != original
        for secret in PLANTED:
            assert secret.encode() not in m.payload, f"{secret!r} left in message {i}"
        if original[:1] == b"{":
            assert _leaves_alike(json.loads(original), json.loads(m.payload))
            assert m.type == json.loads(original).get("type", json.loads(original).get(
                "action"))
        elif m.is_text:
            assert _same_class(original.decode(), m.payload.decode())
        else:
            assert _same_class(original.decode("latin-1"), m.payload.decode("latin-1"))
    # the same secret gets the same stand-in within one import
    assert msgs[0].payload == msgs[8].payload


def test_stand_ins_are_keyed_per_import_and_secrets_can_be_kept(tmp_path: Path) -> None:
    har = _secret_har(tmp_path)
    one, same, other = (import_har(har, salt=s) for s in (b"a" * 16, b"a" * 16, b"b" * 16))
    assert [m.payload for m in one.trace] == [m.payload for m in same.trace]
    assert one.trace.messages[0].payload != other.trace.messages[0].payload
    kept = import_har(har, keep_payload_secrets=True)
    assert [m.payload for m in kept.trace] == [_original(i) for i in range(len(SECRET_FRAMES))]
    assert kept.redacted == {}
    assert "kept" in kept.trace.meta.description


def test_redaction_barely_moves_compression(tmp_path: Path) -> None:
    """A repeated token compresses as well after redaction as before (a consistent,
    random-looking stand-in), unlike a constant mask, which would flatter compression."""
    import random
    import zlib

    rng = random.Random(5)
    token = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                    for _ in range(40))
    frames = [{"type": "send", "time": 1.0 + i, "opcode": 1,
               "data": json.dumps({"type": "req", "id": i, "token": token,
                                   "sig": "".join(rng.choice("0123456789abcdef")
                                                  for _ in range(32))})}
              for i in range(200)]
    har = tmp_path / "many.har"
    har.write_text(json.dumps({"log": {"entries": [_entry("wss://x/", frames)]}}), "utf-8")
    redacted = b"\n".join(m.payload for m in import_har(har).trace)
    original = b"\n".join(f["data"].encode() for f in frames)
    masked = re.sub(rb'("(?:token|sig)": ")([^"]*)"',
                    lambda m: m.group(1) + b"*" * len(m.group(2)) + b'"', original)
    assert token.encode() not in redacted
    assert masked != original and len(masked) == len(redacted) == len(original)
    size = {name: len(zlib.compress(data, 6))
            for name, data in (("original", original), ("redacted", redacted),
                               ("masked", masked))}
    assert abs(size["redacted"] - size["original"]) < abs(size["masked"] - size["original"])


def test_deep_or_odd_json_payloads_stay_valid(tmp_path: Path) -> None:
    deep = '{"token":' + "[" * 5000 + '"abc123"' + "]" * 5000 + "}"
    odd = '{"secret": -1.5e10, "otp": [0, 7, true, null], "Token": "\\ud83d\\ude00x"}'
    frames = [{"type": "send", "time": 1.0, "opcode": 1, "data": d} for d in (deep, odd)]
    har = tmp_path / "odd.har"
    har.write_text(json.dumps({"log": {"entries": [_entry("wss://x/", frames)]}}), "utf-8")
    result = import_har(har)
    deep_out, odd_out = (m.payload.decode() for m in result.trace)
    assert len(deep_out) == len(deep) and "abc123" not in deep_out
    got = json.loads(odd_out)
    assert len(odd_out) == len(odd)
    assert _leaves_alike(json.loads(odd), got) and got != json.loads(odd)
    assert got["otp"][2:] == [True, None] and isinstance(got["secret"], float)
    assert result.redacted == {"JSON value under a secret key": 5}


def test_cli_says_how_many_were_redacted_and_can_keep_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wslab.cli import run
    from wslab.traces.io import read_trace

    har = _secret_har(tmp_path)
    total = sum(sum(c.values()) for _, c in SECRET_FRAMES)
    out = tmp_path / "t.jsonl"
    assert run(["trace", "import", str(har), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"redacted {total} secret value(s)" in printed
    text = out.read_text("utf-8")
    assert all(s not in text for s in (API_KEY, POLYGON_KEY, PASSCODE, BEARER, JWT_TEXT))
    assert f"{total} secret value(s)" in read_trace(out).meta.description
    kept = tmp_path / "k.jsonl"
    assert run(["trace", "import", str(har), "-o", str(kept), "--keep-payload-secrets"]) == 0
    assert "kept" in capsys.readouterr().out
    assert API_KEY in kept.read_text("utf-8")


json_docs = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["token", "Password", "x-api-key", "name", "type", "d", "é"]),
        inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(json_docs, st.booleans())
def test_any_json_message_stays_valid_json_of_the_same_length(doc: Any, ascii_: bool) -> None:
    from wslab.traces.redact import redact_secrets

    text = json.dumps({"type": "x", "token": doc, "other": doc}, ensure_ascii=ascii_)
    counts: Counter[str] = Counter()
    out = redact_secrets(text.encode(), True, b"k" * 16, counts)
    assert len(out) == len(text.encode())
    got = json.loads(out)
    assert _leaves_alike(json.loads(text), got)
    if not _keys(doc) & {"token", "Password", "x-api-key"}:
        assert got["other"] == json.loads(text)["other"]  # nothing secret: untouched


def _keys(doc: Any) -> set[str]:
    if isinstance(doc, dict):
        return set(doc).union(*(_keys(v) for v in doc.values()))
    if isinstance(doc, list):
        return set().union(*(_keys(v) for v in doc))
    return set()


@pytest.mark.parametrize("key", ["accessToken", "refresh_token", "X-Api-Key", "client_secret",
                                 "Password", "userPasswd", "Authorization", "sessionId",
                                 "otp", "auth"])
def test_secret_key_spellings_are_redacted_and_look_alikes_are_not(key: str) -> None:
    from wslab.traces.redact import redact_secrets

    counts: Counter[str] = Counter()
    text = json.dumps({key: "Zq9-Xw", "author": "ann", "tokens": 3, "tokenizer": "bpe"})
    out = json.loads(redact_secrets(text.encode(), True, b"s" * 16, counts))
    assert out[key] != "Zq9-Xw" and _same_class("Zq9-Xw", out[key])
    assert (out["author"], out["tokens"], out["tokenizer"]) == ("ann", 3, "bpe")
    assert counts == {"JSON value under a secret key": 1}
