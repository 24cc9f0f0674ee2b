"""The other modes of ``wslab scale``: the connection storm and the memory matrix.

What lives here: :func:`run_storm` (admission control under more clients than
``max_connections``: how many are held, queued, refused with 1013; is the worker still
answering) and :func:`memory_matrix` (memory per connection with compression off,
websockets' default deflate and the configured settings). Both start their processes
through :class:`~wslab.harness.scale.ScaleRun`, so everything they start is stopped.
"""

from __future__ import annotations

import time
from typing import Any

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness.lifeline import INTERRUPT_GRACE_S
from wslab.harness.loadplan import plan_load
from wslab.harness.scale import Progress, ScaleOptions, ScaleRun, run_scale
from wslab.harness.scale_summary import merge_counts


def memory_matrix(config: TuningConfig, opts: ScaleOptions,
                  progress: Progress | None = None) -> dict[str, float | None]:
    """Memory per connection (KiB) with compression off, websockets' default deflate
    (window bits 12, memLevel 5) and the configured settings, each after one broadcast."""
    from wslab.config import CompressionConfig

    variants = {
        "off": config.updated({"compression.algorithm": "none"}),
        "websockets_default_deflate": config.model_copy(update={
            "compression": CompressionConfig()}),
        "configured": config,
    }
    out: dict[str, float | None] = {}
    for name, cfg in variants.items():
        if progress:
            progress(f"memory per connection: {name}")
        one = ScaleOptions(**{**opts.__dict__, "broadcasts": 1, "directs": 0, "idle_s": 0.5})
        out[name] = run_scale(cfg, one, progress).summary["memory_per_connection_kib"]
    return out


def run_storm(config: TuningConfig, clients: int, *, settle_s: float | None = None,
              progress: Progress | None = None) -> dict[str, Any]:
    """More clients than ``scaling.max_connections`` at once against one worker.

    Returns:
        How many were held, refused with 1013, failed otherwise; the worker's admission
        counters; whether it is still alive and answering ``/healthz``.
    """
    say = progress or (lambda _m: None)
    sc = config.scaling
    opts = ScaleOptions(connections=clients, workers=1, broker="memory")
    plan = plan_load(clients, 1)
    if plan.problems:
        raise WslabError("cannot reach the requested load: " + "; ".join(plan.problems))
    run = ScaleRun(config, opts, say)
    grace: float | None = None
    try:
        run.start_workers("memory", None, "wslab:storm")
        say(f"storm: {clients} clients against max_connections {sc.max_connections}, "
            f"pending queue {sc.pending_queue}")
        run.start_holders(plan)
        readies = run.ready()
        time.sleep(settle_s if settle_s is not None else sc.pending_timeout_s + 2.0)
        counts = run.counts()
        stats = run.worker_stats()[0]
        import urllib.request

        port = run.url.rsplit(":", 1)[1].strip("/")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            healthy = resp.status == 200
        codes = merge_counts([c["close_codes"] for c in counts])
        return {
            "clients": clients, "max_connections": sc.max_connections,
            "pending_queue": sc.pending_queue, "pending_timeout_s": sc.pending_timeout_s,
            "opened": sum(r["opened"] for r in readies),
            "handshake_failed": sum(r["failed"] for r in readies),
            "held": sum(c["open"] for c in counts), "held_by_worker": stats["held"],
            "refused_1013": codes.get("1013", 0), "close_codes": codes,
            "admission": stats["admission"], "worker_alive": run.workers[0].alive(),
            "healthz_ok": healthy,
        }
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop everything at once
        grace = INTERRUPT_GRACE_S
        raise
    finally:
        run.stop(grace)
