"""Sweeps on Dask: the chunks of :func:`wslab.tune.sweep.run_sweep` run on a cluster's workers.

What lives here: :class:`DaskRunner`, a :class:`wslab.tune.sweep.ChunkRunner` that sends the
trace to every worker once (a worker plugin carries the file; a worker that joins later
gets it too) and each chunk as one task, and :func:`dask_runner`, which opens the cluster
for the length of a sweep. What must not live here: the sweep's planning, resuming and
table (``sweep.py``, the same for a local run), or starting and reaching clusters
(``wslab.harness.dask_cluster``).

Same seed and space, same table: the points, their order and everything simulated are
those of a local run; only what is measured in CPU time differs, as between two local runs.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wslab.harness.dask_cluster import (
    DaskSession,
    FileOnWorkers,
    dask_session,
    file_on_workers,
    parse_cluster,
)
from wslab.tune.sweep import (
    Chunk,
    SweepJob,
    forget_on_worker,
    load_on_worker,
    run_points_of,
)


@dataclass
class DaskRunner:
    """Chunks as tasks on the cluster of ``session``."""

    session: DaskSession

    @property
    def workers(self) -> int:
        return self.session.workers

    @property
    def dashboard_link(self) -> str | None:
        return self.session.dashboard_link

    def run(self, job: SweepJob, chunks: list[Chunk]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        from distributed import as_completed

        data = Path(job.trace_path).read_bytes()
        key = f"{hashlib.sha256(data).hexdigest()[:20]}-{int(job.hold_out)}"
        plugin = FileOnWorkers(Path(job.trace_path).name, data, load_on_worker,
                               (key, job.hold_out), release=forget_on_worker)
        client = self.session.client
        with file_on_workers(self.session, plugin, f"wslab-trace-{key}"):
            futures = [client.submit(run_points_of, key, chunk, job.base, job.seed,
                                     pure=False) for chunk in chunks]
            index = {future.key: i for i, future in enumerate(futures)}
            try:
                for future in as_completed(futures, loop=client.loop):  # type: ignore[no-untyped-call]
                    yield index[future.key], future.result()
            finally:  # an error or Ctrl-C here: the cluster drops what is still queued
                with contextlib.suppress(Exception):
                    client.cancel(futures)


@contextlib.contextmanager
def dask_runner(cluster: str, workers: int | None = None) -> Iterator[DaskRunner]:
    """A :class:`DaskRunner` on ``cluster`` (``local`` or a scheduler address) for the block."""
    with dask_session(parse_cluster(cluster), workers) as session:
        yield DaskRunner(session)
