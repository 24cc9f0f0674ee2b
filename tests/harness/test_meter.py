"""Meter: TCP_INFO against known transfers, CPU sampling, exact websockets byte counts."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import struct
import sys
import time
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from wslab.harness.meter import (
    TCP_INFO_LAYOUT,
    ProcessSampler,
    count_connection,
    parse_tcp_info,
    tcp_info,
)
from wslab.wire import ws_frame_bytes

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCP_INFO is Linux")


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    with client, server:
        yield client, server


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        assert chunk
        got += chunk
    return bytes(got)


@linux_only
def test_tcp_info_counts_a_known_transfer(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = tcp_pair
    before_c, before_s = tcp_info(client), tcp_info(server)
    assert before_c is not None and before_s is not None
    assert before_c.bytes_received == 0 and before_s.bytes_received == 0
    n_up, n_down = 123_457, 54_321
    client.sendall(os.urandom(n_up))
    _recv_exactly(server, n_up)
    server.sendall(os.urandom(n_down))
    _recv_exactly(client, n_down)
    time.sleep(0.05)  # let the last ACKs land
    c, s = tcp_info(client), tcp_info(server)
    assert c is not None and s is not None
    assert s.bytes_received == n_up and c.bytes_received == n_down
    assert c.bytes_sent == n_up and s.bytes_sent == n_down
    # Sequence space: the connecting side's SYN may add one (it does on Linux 6.x).
    assert c.bytes_acked is not None and s.bytes_acked is not None
    assert c.bytes_acked - n_up in (0, 1) and s.bytes_acked - n_down in (0, 1)
    assert c.state == 1 and c.total_retrans == 0 and c.notsent_bytes == 0  # ESTABLISHED
    # Data segments: at least payload / MSS each way, and seen identically on both ends.
    assert c.snd_mss is not None and c.data_segs_out is not None
    assert c.data_segs_out >= -(-n_up // c.snd_mss)
    assert c.data_segs_out == s.data_segs_in and s.data_segs_out == c.data_segs_in
    assert c.segs_out is not None and c.segs_out >= c.data_segs_out
    assert c.rtt_us is not None and 0 < c.rtt_us < 1_000_000


@linux_only
def test_tcp_info_works_on_an_asyncio_transport_socket() -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(1000)
            info = tcp_info(writer.get_extra_info("socket"))
            assert info is not None and info.bytes_received == 1000
            writer.close()

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"a" * 1000)
        assert await reader.read() == b""
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def test_parse_tcp_info_layout_and_short_buffers() -> None:
    assert parse_tcp_info(b"\0" * 50) is None
    buf = bytearray(256)
    struct.pack_into("=Q", buf, 120, 2**40 + 5)  # bytes_acked
    struct.pack_into("=I", buf, 136, 77)  # segs_out
    struct.pack_into("=I", buf, 228, 9)  # snd_wnd
    info = parse_tcp_info(bytes(buf))
    assert info is not None
    assert (info.bytes_acked, info.segs_out, info.snd_wnd) == (2**40 + 5, 77, 9)
    old = parse_tcp_info(bytes(buf[:160]))  # an older kernel's shorter struct
    assert old is not None and old.segs_out == 77 and old.bytes_sent is None
    ends = [off + struct.calcsize(code) for _, off, code in TCP_INFO_LAYOUT]
    assert max(ends) == 232
    spans = sorted((off, end) for (_, off, _), end in zip(TCP_INFO_LAYOUT, ends, strict=True))
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # no overlaps


def test_tcp_info_on_a_non_tcp_socket_is_none() -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        assert tcp_info(sock) is None


def test_process_sampler_sees_cpu_grow_under_a_busy_loop() -> None:
    sampler = ProcessSampler()
    first = sampler.sample()
    assert first.rss_kib > 1000
    sampler.start(interval=0.02)
    deadline = time.process_time() + 0.3
    x = 0
    while time.process_time() < deadline:
        x += 1
    frame = sampler.stop()
    delta = sampler.delta(first)
    assert delta["cpu_s"] >= 0.25
    assert delta["wall_s"] >= delta["cpu_s"] * 0.5
    assert len(frame) >= 5
    assert {"t", "elapsed_s", "cpu_user_s", "cpu_system_s", "cpu_s", "rss_kib"} <= set(frame)
    assert frame["cpu_s"].is_monotonic_increasing
    assert frame["cpu_s"].iloc[-1] - frame["cpu_s"].iloc[0] >= 0.2


def test_process_sampler_of_another_process_with_children() -> None:
    import subprocess

    # The child says when it has started: sampled while Python is still starting, its
    # memory would grow between the two readings below.
    child = subprocess.Popen([sys.executable, "-c",
                              "import sys, time; print('up', flush=True); time.sleep(5)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "up\n"
        me = ProcessSampler(children=True).sample()
        alone = ProcessSampler().sample()
        other = ProcessSampler(child.pid).sample()
        assert other.rss_kib > 0
        assert me.rss_kib >= alone.rss_kib + other.rss_kib * 0.9
    finally:
        child.kill()
        child.wait()


SIZES = [0, 1, 125, 126, 1000, 65535, 65536, 70_000]


def test_byte_counter_matches_rfc6455_frame_sizes() -> None:
    async def main() -> None:
        server_counts = []

        async def echo(ws: ServerConnection) -> None:
            counter = count_connection(ws)
            server_counts.append(counter)
            async for message in ws:
                await ws.send(message)

        async with serve(echo, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
            port = server.sockets[0].getsockname()[1] if server.sockets else 0
            async with connect(
                f"ws://127.0.0.1:{port}", compression=None, ping_interval=None
            ) as ws:
                counter = count_connection(ws)
                for n in SIZES:
                    text = n % 2 == 0
                    await ws.send("t" * n if text else b"b" * n)
                    echoed = await ws.recv()
                    assert len(echoed) == n
                up = sum(ws_frame_bytes(n, masked=True) for n in SIZES)
                down = sum(ws_frame_bytes(n, masked=False) for n in SIZES)
                assert (counter.written, counter.read) == (up, down)
                (srv,) = server_counts
                assert (srv.read, srv.written) == (up, down)
                assert counter.writes >= len(SIZES) and counter.reads >= 1
                counter.detach()
                await ws.send("after")  # not counted any more
                await ws.recv()
                assert counter.written == up
                assert set(counter.as_dict()) == {"read", "written", "reads", "writes"}

    asyncio.run(main())
