"""A panel's way to a Dask cluster: opened on first use, kept for the panel's life.

What lives here: :class:`DaskLink`, which holds one ``wslab.tune.sweep_dask.DaskRunner``
open across a panel's sweeps (a ``LocalCluster`` starts once, not per chunk), and the line
of HTML a panel shows beside its progress bar: how many workers and a link to the Dask
dashboard. What must not live here: running sweeps (``recommend_jobs.Sweep``) or starting
clusters (``wslab.harness.dask_cluster``).

The cluster closes with :meth:`DaskLink.close`, when the link is garbage collected, or
when the kernel exits; a ``LocalCluster``'s workers exit with the kernel in any case.
"""

from __future__ import annotations

import contextlib
import html
import weakref
from typing import Any

from wslab.harness.dask_cluster import parse_cluster


class DaskLink:
    """The cluster at ``address`` (``local`` or ``tcp://HOST:PORT``), opened lazily."""

    def __init__(self, address: str, workers: int | None = None) -> None:
        parse_cluster(address)  # a malformed address fails when the panel is built
        self.address = address
        self.workers = workers
        self._stack = contextlib.ExitStack()
        self._runner: Any = None
        self._finalizer = weakref.finalize(self, self._stack.close)

    def runner(self) -> Any:
        """The open ``DaskRunner`` (connecting, or starting a local cluster, the first time)."""
        if self._runner is None:
            from wslab.tune.sweep_dask import dask_runner

            self._runner = self._stack.enter_context(dask_runner(self.address, self.workers))
        return self._runner

    @property
    def connected(self) -> bool:
        return self._runner is not None

    def html(self) -> str:
        """One line: the cluster, its workers and the dashboard's link (once connected)."""
        if self._runner is None:
            return (f"<small>Dask cluster <code>{html.escape(self.address)}</code>: "
                    "connects on the first sweep</small>")
        link = self._runner.dashboard_link
        dashboard = (f' &middot; <a href="{html.escape(link)}" target="_blank" '
                     f'rel="noopener">Dask dashboard</a>' if link else "")
        return (f"<small>Dask cluster <code>{html.escape(self.address)}</code>: "
                f"{self._runner.workers} worker(s){dashboard}</small>")

    def close(self) -> None:
        """Close the client (and stop a local cluster)."""
        self._runner = None
        self._finalizer()
