"""Bad opening handshakes of every kind a hostile client sends, as a table.

Each row is what the peer sends, the HTTP status the websockets library answers it with
(``None``: no answer at all, the connection is just closed) and the failure cause that
:func:`wslab.harness.admission.handshake_cause` names for it. ``tests/harness/
test_admission.py`` feeds the rows to the library's sans-I/O handshake; ``tests/faults/
test_hostile_handshakes.py`` sends them to a live server over raw sockets.
"""

from __future__ import annotations

GOOD = "https://good.test"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def request(*, method: str = "GET", target: str = "/", proto: str = "HTTP/1.1",
            drop: tuple[str, ...] = (), extra: tuple[str, ...] = (),
            **headers: str) -> bytes:
    """A handshake request, good unless told otherwise (``drop`` headers, add ``extra``
    lines, override a header: ``Sec_WebSocket_Version="8"``)."""
    fields = {"Host": "127.0.0.1", "Upgrade": "websocket", "Connection": "Upgrade",
              "Sec-WebSocket-Key": KEY, "Sec-WebSocket-Version": "13", "Origin": GOOD}
    fields.update({k.replace("_", "-"): v for k, v in headers.items()})
    lines = [f"{method} {target} {proto}"]
    lines += [f"{k}: {v}" for k, v in fields.items() if k not in drop]
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# (name, what the peer sends, the HTTP status the library answers (None: none), the cause).
# Where no answer comes the peer then closes its side (the last row needs that to end).
PEER_REQUESTS: list[tuple[str, bytes, int | None, str]] = [
    ("evil origin", request(Origin="https://evil.test"), 403, "bad_origin"),
    ("no origin", request(drop=("Origin",)), 403, "bad_origin"),
    ("version 8", request(Sec_WebSocket_Version="8"), 400, "bad_version"),
    ("no version", request(drop=("Sec-WebSocket-Version",)), 400, "bad_version"),
    ("key not base64", request(Sec_WebSocket_Key="not base64!"), 400, "bad_key"),
    ("short key", request(Sec_WebSocket_Key="c2hvcnQ="), 400, "bad_key"),
    ("no key", request(drop=("Sec-WebSocket-Key",)), 400, "bad_key"),
    ("two keys", request(extra=(f"Sec-WebSocket-Key: {KEY}",)), 400, "bad_key"),
    ("no upgrade", request(drop=("Upgrade", "Connection")), 426, "bad_upgrade"),
    ("upgrade h2c", request(Upgrade="h2c"), 426, "bad_upgrade"),
    ("POST", request(method="POST"), 405, "bad_method"),
    ("HTTP/1.0", request(proto="HTTP/1.0"), 505, "bad_http_version"),
    ("broken extension header", request(Sec_WebSocket_Extensions="permessage-deflate;;=,"),
     400, "bad_header"),
    ("header line over 8 KiB", request(X_Pad="a" * 9000), 431, "oversized_request"),
    ("200 headers", request(extra=tuple(f"X-H{i}: v" for i in range(200))), 431,
     "oversized_request"),
    ("request line over 8 KiB", request(target="/" + "a" * 9000), 414,
     "oversized_request"),
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xde\xad\r\n\r\n", None,
     "bad_request"),
    ("a body", request(Content_Length="5") + b"hello", None, "bad_request"),
    ("non-ASCII path", request(target="/\xff"), None, "bad_request"),
    ("half a request, then gone", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", None,
     "peer_gone"),
]
