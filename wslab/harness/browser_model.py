"""What the simulator must know about Chromium to predict a browser run.

What lives here: :data:`CHROMIUM_DEFLATE` (how Chromium compresses what the page sends),
:func:`browser_support` (what a browser as the client changes, said before anything
starts) and :func:`browser_prediction` (the simulator run beside a live
browser run: the server's side as configured, the browser's side as Chromium compresses,
both with the parameters the handshake agreed). What must not live here: the browser run
itself (``browser_client.py``), the bench's orchestration (``bench.py``).

How Chromium compresses, from its source (``net/websockets/``):

| what             | Chromium                                        | source (1)            |
|------------------|-------------------------------------------------|-----------------------|
| level, memLevel  | ``Z_DEFAULT_COMPRESSION`` (6), 8, default       | deflater              |
| window           | the agreed ``client_max_window_bits``, 15 when  | deflate_stream,       |
|                  | the answer has none; 8 runs as 9                | deflater              |
| context          | kept, unless the answer has                     | deflate_parameters,   |
|                  | ``client_no_context_takeover`` (then            | deflater              |
|                  | ``deflateReset`` after every message)           |                       |
| which messages   | every one (its predictor answers "deflate")     | deflate_predictor_impl|
| offer            | ``permessage-deflate; client_max_window_bits``: | seen on the wire by   |
|                  | no server parameter, so the server's own answer | the tap, every run    |
|                  | decides its side                                |                       |

(1) ``net/websockets/websocket_<name>.cc`` in Chromium's source.

The zlib is the system's on Debian's build (``/usr/lib/chromium/chromium`` links
``libz.so.1``, the same library Python's ``zlib`` uses here), so the simulator's
deflate with those parameters produces Chromium's bytes; a message's compressed output
over 4 KiB may leave in several frames (``kChunkSize`` in the deflate stream), which
changes headers, not payload bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wslab.codecs.deflate_params import DeflateParams
from wslab.codecs.negotiation import client_check_response
from wslab.config import TuningConfig
from wslab.metrics import summarise
from wslab.sim import SimResult, selector_summary, simulate
from wslab.traces.model import Trace

if TYPE_CHECKING:
    from wslab.link import LinkProfile

CHROMIUM_OFFER = DeflateParams(client_max_window_bits=True)
"""What Chromium offers: ``permessage-deflate; client_max_window_bits``."""
CHROMIUM_DEFLATE: dict[str, Any] = {"compression.level": 6, "compression.mem_level": 8,
                                    "compression.policy": "always",
                                    "compression.threshold_bytes": 0}
"""The compression fields of the browser's side (see the module table)."""


def browser_support(config: TuningConfig) -> list[str]:
    """Notes on what a browser client changes (one line each), or a one-line error for what
    it cannot run at all.

    Nothing of a :class:`TuningConfig` is refused today: zstd falls back to deflate, and
    with batching the page offers the envelope and sends each message alone in it (a
    page that batches nothing of its own) while the server batches as configured.
    """
    notes = []
    if config.batching.strategy != "none":
        notes.append(f"the page sends each of its messages alone in the envelope "
                     f"(batching.strategy {config.batching.strategy} holds the server's "
                     "side only); the prediction of its side does the same")
    algorithm = config.compression.algorithm
    if algorithm.startswith("zstd"):
        notes.append(f"Chromium cannot speak x-wslab-zstd ({algorithm}): the server falls "
                     "back to permessage-deflate, which is what runs and is predicted")
    if algorithm != "none":
        notes.append("the browser compresses every message it sends with zlib level 6, "
                     "memLevel 8 and the agreed client window (Chromium's deflater); the "
                     "prediction of its side does the same; measured cpu_us_per_msg counts "
                     "the server's compression only (Chromium's is not observable per "
                     "message)")
    return notes


BATCH_OF_ONE: dict[str, Any] = {"batching.strategy": "count", "batching.max_messages": 1}
"""The page's side with an envelope: every message released at once, alone in it."""


def agreed_configs(config: TuningConfig, agreed: str | None, envelope: str | None = None,
                   ) -> tuple[TuningConfig, TuningConfig]:
    """The configs that predict each side: (server's, browser's), from the agreed
    ``Sec-WebSocket-Extensions`` (None or empty: nothing agreed, no compression) and the
    envelope the run used (named, since each side's trace alone could choose another)."""
    if envelope is not None:
        config = config.updated({"batching.envelope": envelope})
    page = BATCH_OF_ONE if envelope is not None else {}
    if not agreed:
        plain = config.updated({"compression.algorithm": "none"})
        return plain, plain.updated(page)
    deal = client_check_response(CHROMIUM_OFFER, agreed)
    windows = {
        "compression.algorithm": "permessage-deflate",
        "compression.server_max_window_bits": deal.server_max_window_bits,
        "compression.client_max_window_bits": deal.client_max_window_bits,
        "compression.server_no_context_takeover": deal.server_no_context_takeover,
        "compression.client_no_context_takeover": deal.client_no_context_takeover,
    }
    server = config.updated(windows)
    return server, server.updated({**CHROMIUM_DEFLATE, **page})


def browser_prediction(trace: Trace, config: TuningConfig, agreed: str | None, *,
                       link: LinkProfile, seed: int = 0, envelope: str | None = None,
                       ) -> SimResult:
    """The simulator beside a browser run: ``s2c`` under the server's config, ``c2s``
    under Chromium's compressor (each message alone in ``envelope`` if one was agreed),
    both with what the handshake agreed; one result."""
    server_cfg, browser_cfg = agreed_configs(config, agreed, envelope)
    parts = []
    for direction, cfg in (("s2c", server_cfg), ("c2s", browser_cfg)):
        part = Trace([m for m in trace.messages if m.dir == direction], trace.meta)
        parts.append(simulate(part, cfg, link=link, seed=seed))
    import pandas as pd

    messages = pd.concat([p.messages for p in parts], ignore_index=True)
    frames = pd.concat([p.frames for p in parts], ignore_index=True)
    integrity = {k: sum(int(p.summary[k]) for p in parts)
                 for k in ("lost", "duplicated", "reordered")}
    dropped = sum(int(p.summary.get("dropped", 0) or 0) for p in parts)
    summary = summarise(messages, frames, integrity=integrity, dropped=dropped)
    summary.update(selector_summary(frames, server_cfg.compression.algorithm != "none"))
    summary["envelope"] = envelope
    summary["link"] = link.name
    notes = [n for p in parts for n in p.notes]
    return SimResult(messages, frames, summary, server_cfg, link, notes)
