"""The row of buttons every panel shows under its controls, and the notes around it.

What lives here: :class:`Toolbar` (**Pin as baseline**, **Clear baseline**, **Reset**, the
**config (YAML)** download link and the "computing..." note), :class:`DownloadLink` (the
current config as a ``data:`` link whose file ``TuningConfig.load`` and every ``--config``
option read back; made in the panel's worker thread, remembered per config),
:func:`yaml_text` and :func:`building`, the "building the panel..." note a panel shows in
the running cell while it builds. :class:`~wslab.lab.base.Panel` wires them; nothing here
knows a panel.
"""

from __future__ import annotations

import base64
import contextlib
import html
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as W
import yaml

from wslab.config import TuningConfig

BUSY = "<span class='wslab-busy' style='color:#666'>\u23f3 computing\u2026</span>"
"""What a panel shows while a run or a job is under way."""


def yaml_text(config: TuningConfig) -> str:
    """``config.to_yaml()``, with libyaml's emitter when there is one (six times faster)."""
    dumper = getattr(yaml, "CSafeDumper", None)
    if dumper is None:  # pragma: no cover - PyYAML built without libyaml
        return config.to_yaml()
    return str(yaml.dump(config.to_dict(), Dumper=dumper, sort_keys=False))


class DownloadLink:
    """The HTML of a link that downloads a config as a YAML file.

    Args:
        title: The panel's title (named in the file's first line, a comment).
        name: The file name the browser suggests.
    """

    def __init__(self, title: str, name: str) -> None:
        self.title = title
        self.name = name
        self._last: tuple[TuningConfig, str] | None = None

    def head(self) -> str:
        """The file's first line: where it came from and what reads it."""
        return (f"# wslab TuningConfig from the {self.title} panel; use it with --config "
                "(wslab simulate, bench, serve, export) or TuningConfig.load\n")

    def text(self, config: TuningConfig) -> str:
        """The file's text."""
        return self.head() + yaml_text(config)

    def html(self, config: TuningConfig) -> str:
        """The link for ``config`` (pure, no widget touched: runs in a worker thread)."""
        if self._last is not None and config == self._last[0]:
            return self._last[1]
        data = base64.b64encode(self.text(config).encode()).decode("ascii")
        link = (f"<a class='wslab-download jupyter-button' download='{self.name}' "
                f"href='data:text/yaml;charset=utf-8;base64,{data}' "
                "title='download the current config as a YAML file' "
                "style='display:inline-block;padding:0 10px;text-decoration:none'>"
                "\u2b07 config (YAML)</a>")
        self._last = (config, link)
        return link


class Toolbar:
    """Pin, clear, reset, download, and the busy note, as one wrapping row.

    Args:
        pin: Called by **Pin as baseline**.
        unpin: Called by **Clear baseline**.
        reset: Called by **Reset**.
    """

    def __init__(self, pin: Callable[[], None], unpin: Callable[[], None],
                 reset: Callable[[], None]) -> None:
        self.pin = self._button("Pin as baseline", "thumb-tack",
                                "keep this result and draw it beside every later one", pin)
        self.unpin = self._button("Clear baseline", "times", "forget the pinned result", unpin)
        self.unpin.disabled = True
        self.reset = self._button("Reset", "undo",
                                  "put every control back to the panel's starting value",
                                  reset)
        self.download = W.HTML(tooltip="download the current config as a YAML file")
        self.busy = W.HTML(value="")

    @staticmethod
    def _button(text: str, icon: str, tip: str, action: Callable[[], None]) -> Any:
        b = W.Button(description=text, icon=icon, tooltip=tip, layout=W.Layout(width="auto"))
        b.on_click(lambda _b: action())
        return b

    def row(self) -> Any:
        """The toolbar as one ``HBox`` that wraps on a narrow page."""
        return W.HBox([self.pin, self.unpin, self.reset, self.download, self.busy],
                      layout=W.Layout(flex_flow="row wrap", align_items="center"))


@contextlib.contextmanager
def building(title: str) -> Iterator[None]:
    """Show "building the <title> panel..." in the running cell (in a kernel only).

    The note is replaced by nothing when the block ends, whether it failed or not.
    """
    handle = None
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        from IPython.display import display

        note = f"<i class='wslab-building'>building the {html.escape(title)} panel\u2026</i>"
        handle = display(  # type: ignore[no-untyped-call]
            {"text/html": note, "text/plain": ""}, raw=True, display_id=True)
    try:
        yield
    finally:
        if handle is not None:
            handle.update({"text/html": "", "text/plain": ""}, raw=True)
