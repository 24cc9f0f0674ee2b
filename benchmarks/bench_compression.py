"""Compression on the bundled traces: the deflate grid, zstd, and memory per connection.

Each bundled trace (``data/*.jsonl.zst``) is compressed the way a live connection does it:
one compressor per direction, messages in trace order, context kept across messages.

- **Deflate grid**: window bits 9..15 x memLevel 1..9 at level 6, every message through
  ``compress + flush(Z_SYNC_FLUSH)`` with the ``00 00 ff ff`` tail stripped (wslab's
  :class:`~wslab.codecs.DeflateEncoder`, RFC 7692). Size and compression time of all
  traces together, each relative to the 12/5 default (the time is process CPU time, the
  median of 3 passes of every setting taken in turns, 12/5 among them): the same
  presentation and the same method as the table the websockets project publishes for its
  JSON corpus (``docs/topics/compression.rst``), whose figures stand beside ours as the
  peer.
- **Memory per connection, measured**: tracemalloc of N zlib compressor + decompressor
  pairs (each having carried a few messages, so inflate has allocated its window) against
  zlib's formula (:func:`~wslab.codecs.deflate.deflate_memory_bytes`), which leaves out
  zlib's fixed state. zstd allocates outside Python's allocator, so its pairs are measured
  as RSS growth of the process instead.
- **zstd**: streaming (one context per direction, a flushed block per message) and per
  message with a dictionary trained on the first 20 % of each trace; all three codecs are
  scored on the remaining 80 %, against deflate 12/5 as the peer: ratio (compressed /
  original) and compression CPU per message, per trace and per message type.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternating_median, main, row

from wslab.analysis.bundled import DATA_DIR, bundled_traces
from wslab.codecs import DeflateEncoder, ZstdDecoder, ZstdEncoder
from wslab.codecs.deflate import deflate_memory_bytes
from wslab.codecs.zstd import train_dictionary
from wslab.traces.io import read_trace
from wslab.traces.model import Message

DEFAULT = (12, 5)
LEVEL = 6
ZSTD_LEVEL = 3
# websockets docs, topics/compression.rst: (wbits, memLevel) -> (memory per connection KiB,
# size vs default, time vs default) for their JSON corpus; 12/5 is the default.
WEBSOCKETS_TABLE: dict[tuple[int, int], tuple[int, float, float]] = {
    (15, 8): (316, -0.10, 0.10), (14, 7): (172, -0.07, 0.05), (13, 6): (100, -0.03, 0.02),
    (12, 5): (64, 0.0, 0.0), (11, 4): (46, 0.10, -0.04), (10, 3): (37, 0.70, -0.40),
    (9, 2): (33, 1.30, -0.90),
}
PEER_DOCS = "websockets docs (their JSON corpus)"

Streams = list[list[bytes]]


def _streams(traces: dict[str, list[Message]]) -> Streams:
    """One list of payloads per (trace, direction): what one compressor sees."""
    out = []
    for messages in traces.values():
        for direction in ("s2c", "c2s"):
            payloads = [m.payload for m in messages if m.dir == direction]
            if payloads:
                out.append(payloads)
    return out


def _deflate_pass(streams: Streams, wbits: int, mem_level: int) -> tuple[int, float]:
    """Compressed bytes and seconds of compression for every stream at these settings."""
    total = 0
    elapsed = 0.0
    for payloads in streams:
        encode = DeflateEncoder(wbits, mem_level, LEVEL).encode
        start = time.process_time()  # CPU time: a neighbour's burst does not count
        sizes = [len(encode(p)) for p in payloads]
        elapsed += time.process_time() - start
        total += sum(sizes)
    return total, elapsed


def _traced_bytes(make: Callable[[], object], n: int) -> float:
    """Bytes tracemalloc sees per object for ``n`` objects built by ``make``."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = [make() for _ in range(n)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del keep
    return (after - before) / n


def _zlib_pair(wbits: int, mem_level: int, sample: list[bytes]) -> Callable[[], object]:
    def make() -> object:
        c = zlib.compressobj(LEVEL, zlib.DEFLATED, -wbits, mem_level)
        d = zlib.decompressobj(-wbits)
        for p in sample:
            d.decompress(c.compress(p) + c.flush(zlib.Z_SYNC_FLUSH))
        return c, d
    return make


def _rss_kib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


def _rss_per_pair(kind: str, n: int) -> float:
    """RSS growth per codec pair (KiB) for ``n`` pairs, in a fresh process.

    For allocators tracemalloc cannot see (zstd's); a fresh process so that memory freed
    by earlier work is not reused and hidden.
    """
    out = subprocess.run([sys.executable, __file__, "--rss", kind, str(n)],
                         capture_output=True, text=True, check=True, timeout=300)
    return float(out.stdout.strip().splitlines()[-1])


def _rss_child(kind: str, n: int) -> None:
    sample = _sample({"chat": read_trace(DATA_DIR / "chat.jsonl.zst")})

    def zstd_pair() -> object:
        enc, dec = ZstdEncoder(ZSTD_LEVEL, stream=True), ZstdDecoder(stream=True)
        for p in sample:
            dec.decode(enc.encode(p))
        return enc, dec

    make = zstd_pair if kind == "zstd-stream" else _zlib_pair(*DEFAULT, sample)
    make()  # first use loads whatever the codec loads once per process
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # hand freed heap back to the OS,
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # so new pairs cannot hide in it
    before = _rss_kib()
    keep = [make() for _ in range(n)]
    print((_rss_kib() - before) / len(keep))


def _sample(loaded: dict[str, Any]) -> list[bytes]:
    """Messages each measured pair carries before it is weighed: chat's first 50."""
    trace = loaded.get("chat") or next(iter(loaded.values()))
    return [m.payload for m in trace.messages[:50]]


def _grid(streams: Streams, repeats: int, pairs: int,
          sample: list[bytes]) -> dict[tuple[int, int], dict[str, float]]:
    combos = [(w, m) for w in range(9, 16) for m in range(1, 10)]
    grid: dict[tuple[int, int], dict[str, float]] = {c: {} for c in combos}

    def one_pass(combo: tuple[int, int]) -> Callable[[], float]:
        def seconds() -> float:
            grid[combo]["size"], took = _deflate_pass(streams, *combo)
            return took
        return seconds

    # Every setting in turn, repeated: a busy spell touches every setting alike, and the
    # median of the turns ignores one disturbed pass. No warm-up pass: this is CPU time of
    # zlib alone, with nothing loaded on first use, and a pass of the grid is the costly part.
    times = alternating_median([one_pass(c) for c in combos], repeats, warm_up=False)
    for combo, seconds in zip(combos, times, strict=True):
        grid[combo]["time"] = seconds
        grid[combo]["mem"] = _traced_bytes(_zlib_pair(*combo, sample), pairs)
        grid[combo]["formula"] = deflate_memory_bytes(*combo)
    return grid


def _grid_rows(grid: dict[tuple[int, int], dict[str, float]], messages: int,
               pairs: int) -> list[dict[str, Any]]:
    base = grid[DEFAULT]
    rows = []
    for (w, m), g in sorted(grid.items()):
        rows.append(row(
            "compression", f"deflate {w}/{m}: bytes", g["size"], "bytes",
            peer="deflate 12/5 (default)", peer_value=base["size"], view="grid", wbits=w,
            mem_level=m, size_rel=g["size"] / base["size"], time_rel=g["time"] / base["time"],
            mem_kib=g["mem"] / 1024, formula_kib=g["formula"] / 1024, messages=messages))
    section = "deflate settings vs the 12/5 default (the websockets table, side by side)"
    for (w, m), (kib, size_delta, time_delta) in WEBSOCKETS_TABLE.items():
        g = grid[(w, m)]
        if (w, m) != DEFAULT:
            rows.append(row("compression", f"{w}/{m}: size vs 12/5", g["size"] / base["size"],
                            "x default", peer=PEER_DOCS, peer_value=1 + size_delta,
                            section=section))
            rows.append(row("compression", f"{w}/{m}: compression time vs 12/5",
                            g["time"] / base["time"], "x default", peer=PEER_DOCS,
                            peer_value=1 + time_delta, section=section))
        rows.append(row(
            "compression", f"{w}/{m}: zlib pair memory, tracemalloc", g["mem"] / 1024, "KiB",
            peer="zlib formula (deflate + inflate)", peer_value=g["formula"] / 1024,
            section=section, note=f"websockets docs: {kib} KiB for a whole connection; "
            f"mean of {pairs} pairs"))
    return rows


def _split(messages: list[Message]) -> int:
    return max(8, len(messages) // 5)


def _per_message(streams: dict[str, list[Message]], make: Callable[[], Any]
                 ) -> tuple[list[int], list[int]]:
    """Compressed size and compression ns of every message, one encoder per direction."""
    sizes: list[int] = []
    ns: list[int] = []
    clock = time.perf_counter_ns
    for payloads in streams.values():
        encode = make().encode
        for m in payloads:
            start = clock()
            out = encode(m.payload)
            ns.append(clock() - start)
            sizes.append(len(out))
    return sizes, ns


def _robust_mean(ns: list[int]) -> float:
    """Mean of per-message timings, leaving out those a preemption blew up (> 20x median)."""
    cap = 20 * sorted(ns)[len(ns) // 2]
    kept = [x for x in ns if x <= cap]
    return sum(kept) / len(kept)


def _zstd_rows(traces: dict[str, list[Message]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    per_type: list[dict[str, Any]] = []
    for name, messages in traces.items():
        cut = _split(messages)
        dictionary = train_dictionary([m.payload for m in messages[:cut]], 16384, search=False)
        test = messages[cut:]
        by_dir: dict[str, list[Message]] = defaultdict(list)
        for m in test:
            by_dir[m.dir].append(m)
        ordered = [m for d in by_dir for m in by_dir[d]]
        codecs: dict[str, Callable[[], Any]] = {
            "deflate 12/5": partial(DeflateEncoder, *DEFAULT, LEVEL),
            "zstd-stream": partial(ZstdEncoder, ZSTD_LEVEL, stream=True),
            "zstd-dict": partial(ZstdEncoder, ZSTD_LEVEL, dictionary=dictionary),
        }
        got = {k: _per_message(by_dir, make) for k, make in codecs.items()}
        original = sum(m.size for m in ordered)
        base_size, base_ns = got["deflate 12/5"]
        section = "zstd vs deflate 12/5, per trace (last 80 % of each trace)"
        for codec in ("zstd-stream", "zstd-dict"):
            sizes, ns = got[codec]
            rows.append(row("compression", f"{name}: {codec} ratio", sum(sizes) / original,
                            "compressed/original", peer="deflate 12/5",
                            peer_value=sum(base_size) / original, section=section))
            rows.append(row("compression", f"{name}: {codec} compress CPU per message",
                            _robust_mean(ns) / 1e3, "us/msg", peer="deflate 12/5",
                            peer_value=_robust_mean(base_ns) / 1e3, section=section))
        types: dict[str, list[int]] = defaultdict(list)
        for i, m in enumerate(ordered):
            types[m.type].append(i)
        for kind, idx in sorted(types.items()):
            if len(idx) < 20:
                continue
            raw = sum(ordered[i].size for i in idx)
            ratio = {k: sum(v[0][i] for i in idx) / raw for k, v in got.items()}
            us = {k: _robust_mean([v[1][i] for i in idx]) / 1e3 for k, v in got.items()}
            per_type.append(row(
                "compression", f"{name} / {kind}: zstd-dict ratio", ratio["zstd-dict"],
                "compressed/original", peer="deflate 12/5", peer_value=ratio["deflate 12/5"],
                section="per message type: zstd-dict vs deflate 12/5 (ratio; CPU in note)",
                note=(f"{len(idx)} msgs, {raw / len(idx):.0f} B avg; zstd-stream "
                      f"{ratio['zstd-stream']:.3f}; CPU us/msg deflate "
                      f"{us['deflate 12/5']:.1f}, zstd-stream {us['zstd-stream']:.1f}, "
                      f"zstd-dict {us['zstd-dict']:.1f}")))
    return rows + per_type


def _zstd_memory(sample: list[bytes], pairs: int) -> list[dict[str, Any]]:
    zstd_kib = _rss_per_pair("zstd-stream", pairs)
    deflate_kib = _rss_per_pair("deflate", pairs)
    return [row("compression", "zstd-stream pair memory, RSS growth", zstd_kib, "KiB",
                peer="deflate 12/5 pair, RSS growth", peer_value=deflate_kib,
                section="deflate settings vs the 12/5 default (the websockets table, "
                        "side by side)",
                note=f"mean of {pairs} pairs, each after {len(sample)} chat messages; "
                     f"zstd level {ZSTD_LEVEL}")]


def run(quick: bool) -> list[dict[str, Any]]:
    limit = 1000 if quick else None
    loaded = bundled_traces()
    if not loaded:
        raise SystemExit("no bundled traces in data/")
    traces = {name: t.messages[:limit] for name, t in loaded.items()}
    streams = _streams(traces)
    messages = sum(len(s) for s in streams)
    sample = _sample(loaded)
    pairs = 50 if quick else 200
    grid = _grid(streams, 3, pairs, sample)
    per_trace = {name: t.messages[:4000 if quick else None] for name, t in loaded.items()}
    return (_grid_rows(grid, messages, pairs) + _zstd_memory(sample, 20 if quick else 50)
            + _zstd_rows(per_trace))


if __name__ == "__main__":
    if "--rss" in sys.argv:
        _rss_child(sys.argv[2], int(sys.argv[3]))
    else:
        main(run)
