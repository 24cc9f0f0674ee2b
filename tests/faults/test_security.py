"""Security defaults: loopback binding, remote load refused, safe YAML, no secrets copied,
allowed origins."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import zstandard
from faults.rawws import RawClient

from wslab.cli import run as cli_run
from wslab.config import TuningConfig
from wslab.errors import ConfigError
from wslab.harness.server import LiveServer
from wslab.traces.io import iter_messages
from wslab.tune.export import render

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


# -- binding ------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_live_server_binds_loopback_by_default() -> None:
    async def main() -> tuple[str, str]:
        async with LiveServer(TuningConfig()) as server:
            assert server._server is not None
            addrs = {s.getsockname()[0] for s in server._server.sockets}
            return server.host, ",".join(sorted(addrs))

    host, addrs = asyncio.run(main())
    assert host == "127.0.0.1"
    assert addrs == "127.0.0.1"


def test_live_server_warns_when_told_to_bind_all_interfaces(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="wslab.server"):
        LiveServer(TuningConfig(), host="0.0.0.0")  # constructed only, never started
    assert any("0.0.0.0" in r.getMessage() and "other machines" in r.getMessage()
               for r in caplog.records if r.levelno >= logging.WARNING)


def _serve(*args: str) -> tuple[str, str, set[str]]:
    """Run ``wslab serve ARGS`` until it says it is serving; return stdout, stderr, and
    the addresses its listening sockets are bound to; then stop it with SIGTERM."""
    proc = subprocess.Popen([PYTHON, "-m", "wslab.cli", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, "COLUMNS": "200"})
    assert proc.stdout is not None and proc.stderr is not None
    out = b""
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 20
            while b"serving" not in out and time.monotonic() < deadline:
                if sel.select(timeout=0.5):
                    chunk = os.read(proc.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    out += chunk
        assert b"serving" in out, f"serve did not start: {out!r}"
        listening = {c.laddr.ip for c in psutil.Process(proc.pid).net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN}
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()
    return (out + rest).decode(), err.decode(), listening


@pytest.mark.timeout(60)
def test_serve_binds_loopback_unless_told_and_warns_loudly_for_all_interfaces() -> None:
    out, err, listening = _serve()
    assert listening == {"127.0.0.1"}
    assert "ws://127.0.0.1:" in out
    assert "warning" not in err.lower()

    out, err, listening = _serve("--host", "0.0.0.0")
    assert listening == {"0.0.0.0"}
    warning = [line for line in err.splitlines() if "warning" in line.lower()]
    assert warning, f"no warning on stderr: {err!r}"
    assert "0.0.0.0" in warning[0] and "other machines" in warning[0]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("url", ["ws://192.0.2.1/", "ws://example.com:80/", "ws://[2001:db8::1]/"])
def test_load_against_a_remote_target_needs_allow_remote(url: str) -> None:
    started = time.monotonic()
    proc = subprocess.run([PYTHON, "-m", "wslab.cli", "load", url, "--trace",
                           "data/chat.jsonl.zst"], capture_output=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "COLUMNS": "300"})
    err = proc.stderr.decode().strip()
    assert proc.returncode == 2
    assert len(err.splitlines()) == 1, err
    assert "--allow-remote" in err and "loopback" in err
    assert "Traceback" not in err and proc.stdout == b""
    assert time.monotonic() - started < 20  # refused up front: no connection was tried


# -- YAML is data, never code -------------------------------------------------------------

EVIL_TAGS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/apply:builtins.exec [\"open('{marker}', 'w').close()\"]",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "batching:\n  strategy: !!python/object/apply:os.system ['touch {marker}']\n",
    "scaling: !!python/name:os.system\n",
    "link:\n  profile: !!python/module:os\n",
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("template", EVIL_TAGS)
def test_yaml_python_tags_are_refused_and_nothing_runs(tmp_path: Path, template: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(template.format(marker=marker), "utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TuningConfig.load(path)
    # Through the command line as well: one line, exit 2, still nothing run.
    assert cli_run(["config", "check", str(path)]) == 2
    time.sleep(0.2)  # a spawned `touch` would have had time to run
    assert not marker.exists()


# -- HAR import copies no secret -----------------------------------------------------------

SECRETS = {
    "cookie": "S3CRET-COOKIE-4f1c",
    "authorization": "S3CRET-BEARER-9a7e",
    "query token": "S3CRET-QUERY-TOKEN-11d2",
    "api key": "S3CRET-API-KEY-77b0",
    "set-cookie": "S3CRET-SET-COOKIE-c0de",
    "password in url": "S3CRET-PASSWORD-e5e5",
    "url user": "s3cret-user-0a0a",
    "fragment": "S3CRET-FRAGMENT-bb12",
    "post body": "S3CRET-POST-BODY-3c3c",
    "response body": "S3CRET-RESPONSE-BODY-6d6d",
    "custom header": "S3CRET-X-AUTH-8e8e",
    "page url": "S3CRET-PAGE-QUERY-1f1f",
}


def _headers() -> list[dict[str, str]]:
    return [{"name": "Cookie", "value": f"sid={SECRETS['cookie']}"},
            {"name": "Authorization", "value": f"Bearer {SECRETS['authorization']}"},
            {"name": "X-Auth-Token", "value": SECRETS["custom header"]},
            {"name": "Sec-WebSocket-Protocol", "value": f"auth.{SECRETS['api key']}"}]


def _secret_har(path: Path) -> Path:
    ws_url = (f"wss://{SECRETS['url user']}:{SECRETS['password in url']}@rt.example.test:8443"
              f"/live?token={SECRETS['query token']}&api_key={SECRETS['api key']}"
              f"#{SECRETS['fragment']}")
    frames = [
        {"type": "receive", "time": 1700000000.0, "opcode": 1, "data": '{"type":"hello"}'},
        {"type": "send", "time": 1700000000.1, "opcode": 1, "data": '{"type":"sub","ch":"a"}'},
        {"type": "receive", "time": 1700000000.2, "opcode": 9, "data": ""},
        {"type": "receive", "time": 1700000000.3, "opcode": 2, "data": "AAEC"},
    ]
    doc = {"log": {"version": "1.2", "creator": {"name": "test"}, "entries": [
        {"request": {"method": "POST",
                     "url": f"https://app.example.test/login?next={SECRETS['page url']}",
                     "headers": _headers(),
                     "postData": {"mimeType": "application/json",
                                  "text": json.dumps({"password": SECRETS["post body"]})}},
         "response": {"status": 200,
                      "headers": [{"name": "Set-Cookie", "value": SECRETS["set-cookie"]}],
                      "content": {"text": SECRETS["response body"]}}},
        {"request": {"method": "GET", "url": ws_url, "headers": _headers(),
                     "cookies": [{"name": "sid", "value": SECRETS["cookie"]}],
                     "queryString": [{"name": "token", "value": SECRETS["query token"]},
                                     {"name": "api_key", "value": SECRETS["api key"]}]},
         "response": {"status": 101,
                      "headers": [{"name": "Set-Cookie", "value": SECRETS["set-cookie"]}],
                      "cookies": [{"name": "sid", "value": SECRETS["set-cookie"]}]},
         "_webSocketMessages": frames},
    ]}}
    path.write_text(json.dumps(doc), "utf-8")
    return path


@pytest.mark.timeout(30)
@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.zst"])
def test_har_import_copies_no_cookie_header_query_or_token(
        tmp_path: Path, suffix: str, capfd: pytest.CaptureFixture[str]) -> None:
    har = _secret_har(tmp_path / "session.har")
    out = tmp_path / f"trace{suffix}"
    assert cli_run(["trace", "import", str(har), "-o", str(out)]) == 0
    printed = capfd.readouterr()
    raw = out.read_bytes()
    text = (zstandard.ZstdDecompressor().stream_reader(raw).read() if suffix.endswith(".zst")
            else raw).decode("utf-8")
    messages = list(iter_messages(out))
    assert len(messages) == 3  # the data frames did arrive; the ping was dropped
    assert {m.conn for m in messages} == {"ws1 rt.example.test:8443/live"}
    for what, secret in SECRETS.items():
        for where, haystack in (("trace file", text), ("stdout", printed.out),
                                ("stderr", printed.err)):
            assert secret.lower() not in haystack.lower(), f"{what} leaked into the {where}"
    for word in ("token=", "api_key", "Bearer", "Cookie", "password", "?", "#", "@"):
        assert word not in text, f"{word!r} in the trace"


@pytest.mark.timeout(30)
def test_har_import_copies_no_token_in_the_url_path(tmp_path: Path) -> None:
    from wslab.traces.har import import_har

    token = "xoxb2f9c1d7e6a5b4c3d2e1f0a9b8c7d6e5"
    doc = {"log": {"entries": [{
        "request": {"url": f"wss://rtm.example.test/websocket/{token}"},
        "_webSocketMessages": [{"type": "receive", "time": 1.0, "opcode": 1, "data": "{}"}],
    }]}}
    har = tmp_path / "path.har"
    har.write_text(json.dumps(doc), "utf-8")
    result = import_har(har)
    assert all(token not in (m.conn or "") for m in result.trace.messages)


# -- exported configs hold no secret --------------------------------------------------------

TOKEN_LIKE = [
    re.compile(r"\b(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[a-z])(?=[A-Za-z0-9]*[A-Z])"
               r"[A-Za-z0-9]{20,}\b"),                                   # random-looking key
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),                # JWT
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{8,}"),                   # bearer token
    re.compile(r"(?i)(password|passwd|secret|api[_-]?key|token)\s*[:=]\s*[\"']?[^\s\"',}]+"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"://[^/\s:@]+:[^/\s@]+@"),                                  # credentials in URL
]


def _configs() -> list[TuningConfig]:
    base = TuningConfig()
    return [
        base,
        base.updated({"batching.strategy": "priority", "compression.policy": "adaptive",
                      "compression.server_no_context_takeover": True,
                      "scaling.max_connections": 50_000, "link.profile": "4g"}),
        base.updated({"compression.algorithm": "none", "batching.strategy": "hybrid",
                      "batching.envelope": "length-prefixed", "scaling.workers": 4,
                      "scaling.broker": "redis"}),
    ]


@pytest.mark.parametrize("index", range(3))
def test_exported_configs_contain_nothing_token_like(index: int) -> None:
    files = render(_configs()[index], "all")
    assert len(files) >= 6
    for name, text in files.items():
        for pattern in TOKEN_LIKE:
            found = pattern.search(text)
            assert found is None, f"{name}: token-like {found.group(0)!r}"
        for secret in SECRETS.values():
            assert secret not in text


def test_no_config_field_can_carry_free_text_but_the_link_profile_name() -> None:
    # HAR content (and so any secret in it) could only reach an export through a string
    # field of TuningConfig. Every string field is an enum except link.profile, a profile
    # name or a file path the user typed. A new free-text field must be looked at again.
    free: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "string" and "enum" not in node:
                free.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(TuningConfig.json_schema(), "")
    assert free == ["/$defs/LinkConfig/properties/profile"]


# -- allowed origins ------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_allowed_origins_refuse_a_cross_site_page_with_403() -> None:
    async def main() -> dict[str, int]:
        got: dict[str, int] = {}
        async with LiveServer(TuningConfig(), origins=["https://good.test"]) as server:
            for origin in ("https://evil.test", "https://good.test.evil.test",
                           "http://good.test", "https://good.test", None):
                raw = await RawClient.open(server.port, origin=origin)
                got[str(origin)] = raw.handshake.status
                raw.writer.close()
        async with LiveServer(TuningConfig()) as server:  # no list: any origin
            raw = await RawClient.open(server.port, origin="https://evil.test")
            got["unchecked evil"] = raw.handshake.status
            raw.writer.close()
        return got

    got = asyncio.run(main())
    assert got == {"https://evil.test": 403, "https://good.test.evil.test": 403,
                   "http://good.test": 403, "https://good.test": 101,
                   "None": 403, "unchecked evil": 101}
