"""The zstd export, proven by running it: x-wslab-zstd for wslab clients, deflate for the rest.

The exported ``server.py`` + ``zstd_extension.py`` (+ ``dictionaries.json``) run in their own
process with nothing from wslab on their import path; a wslab client negotiates
``x-wslab-zstd`` with them and gets its messages back intact in compressed frames, the
library's stock client gets permessage-deflate, and hostile frames get 1009 / 1002. The
other targets say they cannot express zstd and what they fall back to.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
import zstandard
from faults.rawws import RawClient, frame
from tune.export_support import MESSAGES, python_server, read_port, start, stop
from websockets.asyncio.client import connect

from wslab.codecs.zstd import ZstdEncoder, new_compressor
from wslab.codecs.zstd_dict import DictionarySet, train_dictionary_set
from wslab.config import TuningConfig
from wslab.harness.client import client_extensions
from wslab.harness.meter import count_connection
from wslab.harness.wiring import negotiated_extension
from wslab.tune.export import SINGLE_TARGETS, export, render

pytestmark = pytest.mark.timeout(120)

STREAM = TuningConfig().updated({"compression.algorithm": "zstd-stream",
                                 "scaling.max_size": 65536})
DICT = TuningConfig().updated({"compression.algorithm": "zstd-dict",
                               "compression.policy": "threshold",
                               "compression.threshold_bytes": 8,
                               "scaling.max_size": 65536})


@pytest.fixture(scope="module")
def dset() -> DictionarySet:
    samples = {"chat.message": [f'{{"type":"chat.message","room":"general","text":"hello {i}"}}'
                                .encode() for i in range(60)]}
    return train_dictionary_set(samples, 2048)


class Seen:
    def __init__(self, header: str | None, name: str, echoes: list[str | bytes],
                 compressed_in: int) -> None:
        self.header, self.name, self.echoes, self.compressed_in = (header, name, echoes,
                                                                   compressed_in)


def talk(port: int, extensions: list[object] | None) -> Seen:
    """Send MESSAGES, collect the echoes, count RSV1 frames received."""

    async def run() -> Seen:
        kwargs = {"compression": None, "extensions": extensions} if extensions is not None \
            else {}  # None: the library's defaults (permessage-deflate)
        async with connect(f"ws://127.0.0.1:{port}/", open_timeout=10, **kwargs) as ws:
            counter = count_connection(ws, frames=True)
            echoes = []
            for m in MESSAGES:
                await ws.send(m)
                echoes.append(await asyncio.wait_for(ws.recv(), 10))
            assert ws.response is not None and counter.frames_in is not None
            return Seen(ws.response.headers.get("Sec-WebSocket-Extensions"),
                        negotiated_extension(ws.protocol.extensions), echoes,
                        counter.frames_in.compressed_frames)

    return asyncio.run(run())


# Runs server.py as __main__ with every wslab import made to fail, so the export is proven
# to work without wslab although this interpreter has it installed.
WITHOUT_WSLAB = ("import runpy, sys; sys.modules['wslab'] = None; "
                 "sys.argv = ['server.py', '--host', '127.0.0.1', '--port', '0']; "
                 "runpy.run_path('server.py', run_name='__main__')")


def running(config: TuningConfig, tmp: Path, dset: DictionarySet | None = None) -> tuple[
        object, int]:
    paths = {p.name: p for p in export(config, "websockets", tmp, dictionaries=dset)}
    proc = start([sys.executable, "-c", WITHOUT_WSLAB], cwd=paths["server.py"].parent)
    try:
        return proc, read_port(proc)
    except BaseException:
        stop(proc)
        raise


def test_exported_stream_server_speaks_zstd_and_deflate(tmp_path: Path) -> None:
    proc, port = running(STREAM, tmp_path)
    try:
        zstd = talk(port, list(client_extensions(STREAM)))
        stock = talk(port, None)
    finally:
        stop(proc)  # type: ignore[arg-type]
    assert zstd.header == "x-wslab-zstd; mode=stream; max_window_log=15"
    assert zstd.name == "x-wslab-zstd"
    assert zstd.echoes == MESSAGES
    assert zstd.compressed_in == len(MESSAGES)  # every echo came back compressed (RSV1)
    assert stock.header is not None and stock.header.startswith("permessage-deflate")
    assert stock.name == "permessage-deflate" and stock.echoes == MESSAGES


def test_exported_dictionary_server_holds_the_set(tmp_path: Path, dset: DictionarySet) -> None:
    files = render(DICT, "websockets", dictionaries=dset)
    assert set(files) == {"server.py", "zstd_extension.py", "dictionaries.json"}
    assert DictionarySet.from_json(files["dictionaries.json"]) == dset
    other = train_dictionary_set({"x": [f'{{"x":{i}}}'.encode() * 3 for i in range(40)]}, 512)
    proc, port = running(DICT, tmp_path, dset)
    try:
        zstd = talk(port, list(client_extensions(DICT, dset)))
        wrong_set = talk(port, list(client_extensions(DICT, other)))
    finally:
        stop(proc)  # type: ignore[arg-type]
    assert zstd.header == f"x-wslab-zstd; mode=message; dict={dset.id}; max_window_log=15"
    assert zstd.echoes == MESSAGES
    # min_size is the threshold: only the one-byte message came back plain.
    assert zstd.compressed_in == sum(len(m) >= 8 for m in MESSAGES)
    assert wrong_set.name == "permessage-deflate" and wrong_set.echoes == MESSAGES


def test_exported_server_refuses_bombs_and_garbage(tmp_path: Path, dset: DictionarySet) -> None:
    bomb = new_compressor(1, 15).compressobj()  # within the agreed window (15)
    stream_bomb = bomb.compress(b"\0" * (1 << 24)) + bomb.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    frame_bomb = new_compressor(1, 15).compress(b"\0" * (1 << 24))
    wide = ZstdEncoder(3, stream=True, window_log=21).encode(b"hello " * 40)
    cases = [
        (STREAM, "x-wslab-zstd; mode=stream; max_window_log=15", stream_bomb, 1009),
        (STREAM, "x-wslab-zstd; mode=stream; max_window_log=15", b"\x05garbage!", 1002),
        (STREAM, "x-wslab-zstd; mode=stream; max_window_log=15", wide, 1002),
        (DICT, f"x-wslab-zstd; dict={dset.id}", frame_bomb, 1009),
        (DICT, f"x-wslab-zstd; dict={dset.id}", b"garbage, not zstd", 1002),
    ]

    async def attack(port: int, offer: str, data: bytes) -> int | None:
        raw = await RawClient.open(port, extensions=offer)
        assert raw.handshake.status == 101
        raw.send(frame(0x2, data, rsv1=True))
        await raw.writer.drain()
        return await raw.close_code()

    for config in (STREAM, DICT):
        proc, port = running(config, tmp_path / config.compression.algorithm, dset)
        try:
            for cfg, offer, data, code in cases:
                if cfg is config:
                    assert len(data) < 65536
                    assert asyncio.run(attack(port, offer, data)) == code, offer
            assert talk(port, list(client_extensions(config, dset))).echoes == MESSAGES
        finally:
            stop(proc)  # type: ignore[arg-type]


def test_zstd_dict_without_its_set_offers_plain_frames_and_says_so(tmp_path: Path) -> None:
    files = render(DICT, "websockets")
    assert "dictionaries.json" not in files
    assert '"message": True' in files["server.py"]
    assert "without its dictionary set" in files["server.py"]
    proc, port = running(DICT, tmp_path)

    async def offer(text: str) -> str | None:
        raw = await RawClient.open(port, extensions=text)
        raw.writer.close()
        return raw.handshake.headers.get("sec-websocket-extensions")

    try:
        assert asyncio.run(offer("x-wslab-zstd")) == "x-wslab-zstd; mode=message; max_window_log=15"
        assert asyncio.run(offer("x-wslab-zstd; max_window_log=12")) == (
            "x-wslab-zstd; mode=message; max_window_log=12")
        bad = asyncio.run(offer("x-wslab-zstd; max_window_log=09, permessage-deflate"))
        assert bad is not None and bad.startswith("permessage-deflate")
        fallback = asyncio.run(offer("x-wslab-zstd; mode=stream, permessage-deflate"))
        assert fallback is not None and fallback.startswith("permessage-deflate")
    finally:
        stop(proc)  # type: ignore[arg-type]


def test_a_damaged_dictionary_file_is_one_clear_line(tmp_path: Path,
                                                     dset: DictionarySet) -> None:
    paths = {p.name: p for p in export(DICT, "websockets", tmp_path, dictionaries=dset)}
    doc = json.loads(paths["dictionaries.json"].read_text())
    doc["fallback"] = doc["by_key"]["chat.message"]
    paths["dictionaries.json"].write_text(json.dumps(doc))
    proc = python_server(paths["server.py"])
    try:
        assert proc.wait(timeout=15) != 0
        assert proc.stderr is not None
        err = proc.stderr.read()
    finally:
        stop(proc)
    assert "error:" in err and "does not match its id" in err and "Traceback" not in err


def test_the_shipped_module_stands_alone_and_says_who_speaks_it() -> None:
    text = render(STREAM, "websockets")["zstd_extension.py"]
    imports = [line for line in text.splitlines() if line.startswith(("import ", "from "))]
    assert imports and all("wslab" not in line for line in imports)
    assert {line.split()[1].split(".")[0] for line in imports} <= {
        "__future__", "base64", "hashlib", "json", "re", "collections", "pathlib", "typing",
        "zstandard", "websockets"}
    assert "Browsers cannot" in text and "Discord" in text and "no standard" in text.lower()


def test_other_targets_say_they_cannot_express_zstd_and_fall_back() -> None:
    for config in (STREAM, DICT):
        files = render(config, "all")
        assert {name.split("/")[0] for name in files} == set(SINGLE_TARGETS)
        algorithm = config.compression.algorithm
        for name, text in files.items():
            target = name.split("/")[0]
            if name.endswith(".json") or target == "wslab" or name in (
                    "ws/server.js", "socketio/server.js"):
                continue  # no comments in JSON (its .yaml twin has them); wslab loses
                # nothing; a Node script points at its options file, which has the notes
            if target == "websockets":
                assert name != "websockets/server.py" or "offered as x-wslab-zstd" in text
                continue
            assert f"algorithm {algorithm} cannot be expressed by this target" in text, name
            assert "Fallback: permessage-deflate" in text, name
