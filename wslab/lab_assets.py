"""The files the lab's pages load from their own server: one plotly.js for every figure.

Each stock plotly ``FigureWidget`` carries its own copy of plotly.js (about 5 MB) in its
widget state, so a notebook with eight figures moved 40 MB through the kernel's websocket
and saved them into the notebook. wslab's figures (:class:`wslab.lab.figures.LabFigure`)
instead load plotly.js once per page from ``<base_url>wslab/static/plotly-<version>.min.js``,
which :class:`PlotlyHandler` serves: gzip-compressed when the browser accepts it, with a
versioned URL the browser may cache for good. The file is plotly's own
(``plotly/package_data/plotly.min.js``), so it always matches the installed plotly.

Two servers mount the handler: JupyterLab, as the Jupyter server extension this module
is (``--ServerApp.jpserver_extensions=wslab.lab_assets=True``, which ``wslab lab`` passes),
and the Voila app (:mod:`wslab.lab.app` adds it to its handlers).
"""

from __future__ import annotations

import gzip
import hashlib
import re
from functools import cache
from pathlib import Path
from typing import Any

from tornado import web

STATIC_PREFIX = "wslab/static/"
"""Where the handler sits, relative to the server's base URL."""


def plotly_js_path() -> Path:
    """plotly.js as installed with the plotly package."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@cache
def plotly_version() -> str:
    """The version of the installed plotly.js (read from the file's banner)."""
    with plotly_js_path().open("rb") as f:
        head = f.read(200).decode("utf-8", "replace")
    found = re.search(r"plotly\.js v([0-9][0-9A-Za-z.+-]*)", head)
    return found.group(1) if found else "unknown"


def plotly_url() -> str:
    """The URL of plotly.js, relative to the page's base URL (no leading slash)."""
    return f"{STATIC_PREFIX}plotly-{plotly_version()}.min.js"


@cache
def _plotly_bytes() -> tuple[bytes, bytes, str]:
    """plotly.js raw, gzip-compressed, and its ETag (read and compressed once)."""
    raw = plotly_js_path().read_bytes()
    packed = gzip.compress(raw, compresslevel=6, mtime=0)
    return raw, packed, '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'


class PlotlyHandler(web.RequestHandler):
    """GET ``plotly-<version>.min.js``: the one plotly.js of the page.

    Public like the server's other static files (it is plotly's published bundle); an
    unknown name is a 404. The response is immutable for a year: a new plotly gets a new
    URL.
    """

    def get(self, name: str) -> None:
        if name != plotly_url().removeprefix(STATIC_PREFIX):
            raise web.HTTPError(404)
        raw, packed, etag = _plotly_bytes()
        self.set_header("Content-Type", "text/javascript; charset=utf-8")
        self.set_header("Cache-Control", "public, max-age=31536000, immutable")
        self.set_header("ETag", etag)
        self.set_header("Vary", "Accept-Encoding")
        if self.request.headers.get("If-None-Match") == etag:
            self.set_status(304)
            return
        if "gzip" in self.request.headers.get("Accept-Encoding", ""):
            self.set_header("Content-Encoding", "gzip")
            self.write(packed)
        else:
            self.write(raw)

    def compute_etag(self) -> None:
        return None  # set above, from the content


def handlers(base_url: str) -> list[tuple[str, type[web.RequestHandler]]]:
    """The tornado routes of this module under ``base_url`` (which ends with ``/``)."""
    return [(f"{base_url}{STATIC_PREFIX}(.*)", PlotlyHandler)]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "wslab.lab_assets"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Mount :class:`PlotlyHandler` in a Jupyter server (JupyterLab)."""
    web_app = server_app.web_app
    base_url = web_app.settings.get("base_url", "/")
    if not base_url.endswith("/"):
        base_url += "/"
    web_app.add_handlers(".*$", handlers(base_url))
    _plotly_bytes()  # compress now, not while the first figure waits
    server_app.log.info("wslab: plotly.js %s served at %s%s", plotly_version(), base_url,
                        plotly_url())
