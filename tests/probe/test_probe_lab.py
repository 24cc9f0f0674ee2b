"""``wslab.lab.probe`` in a notebook: it runs beside the kernel's event loop, and its tables
show the settings ``wslab.lab.echo_server`` was started with (hidden from the probe)."""

from __future__ import annotations

import asyncio
import html
import socket
from urllib.parse import urlsplit

from wslab.lab import echo_server, probe
from wslab.lab.probing import SERVER_LABELS

BITS = 12


def test_lab_probe_inside_a_running_loop_finds_the_settings() -> None:
    async def kernel_like() -> tuple[object, str]:  # a kernel runs its own loop
        with echo_server(server_max_window_bits=BITS) as url:
            return probe(url), url

    found, url = asyncio.run(kernel_like())
    server = dict(zip(found.server["finding"], found.server["value"], strict=True))
    assert server[SERVER_LABELS["window_unasked"]] == str(BITS)
    assert server[SERVER_LABELS["forces_server_no_context_takeover"]] == "no"
    used = server[SERVER_LABELS["server_windows"]]
    assert "15 -> 12" in used and "11 -> 11" in used  # every offer shown, none cut short
    seen = dict(zip(found.behaviour["probe"], found.behaviour["finding"], strict=True))
    assert "keeps its window" in seen["context takeover"]
    assert "came back as" in seen["context takeover"]  # the sizes behind the verdict
    page = html.unescape(found._repr_html_())
    assert "no problem found" in page and page.count("<table") == 3
    assert "15 -> 12" in page and "..." not in page
    port = urlsplit(url).port
    with socket.socket() as s:  # the server is gone with its block
        assert s.connect_ex(("127.0.0.1", port)) != 0
