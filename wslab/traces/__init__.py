"""Message traces: the model, the v1 file format, generators, HAR import and summaries.

What lives here: re-exports of the public names of the ``wslab.traces`` modules. Each module
keeps its own concerns (``model`` the records, ``io`` the file format, ``generators`` the
synthetic traffic, ``har`` the browser import, ``info`` the summaries); nothing is defined
in this file.
"""

from wslab.traces.io import iter_messages, read_meta, read_trace, write_trace
from wslab.traces.model import (
    DIRECTIONS,
    PRIORITIES,
    Direction,
    Message,
    Priority,
    Trace,
    TraceMeta,
)

__all__ = [
    "DIRECTIONS",
    "PRIORITIES",
    "Direction",
    "Message",
    "Priority",
    "Trace",
    "TraceMeta",
    "iter_messages",
    "read_meta",
    "read_trace",
    "write_trace",
]
