"""Renderer for the ``wslab`` target: the TuningConfig itself, as reloadable YAML.

What lives here: :func:`render_wslab`. The file is ``TuningConfig.to_yaml()`` under a
comment header, so ``TuningConfig.load`` reads it back to an equal config. What must not
live here: other targets.
"""

from __future__ import annotations

from wslab.config import TuningConfig
from wslab.tune.exporters._common import comment_block, header_lines

FILENAME = "wslab.yaml"


def render_wslab(config: TuningConfig) -> dict[str, str]:
    """Render the config as YAML.

    Args:
        config: The tuned configuration.

    Returns:
        ``{"wslab.yaml": text}``.
    """
    head = comment_block(
        header_lines(config, "wslab"),
        ["Load with TuningConfig.load(path) or `wslab simulate TRACE --config wslab.yaml`.",
           "Nothing is lost: this is wslab's own format."],
        prefix="# ",
    )
    return {FILENAME: head + config.to_yaml()}
