"""Message priority classes: the one :data:`Priority` type of trace format v1 (DESIGN.md 3).

What lives here: :data:`Priority` (the literal type every message's ``priority`` has),
:data:`PRIORITIES` (its values, most urgent first: the order of every per-class table, such
as the pipeline's sequence counters and the summary's ``by_priority``), the values by name
(:data:`CRITICAL`, :data:`NORMAL`, :data:`BACKGROUND`) and :data:`DEFAULT_PRIORITY`, what a
message that names none gets. Nothing else is imported, so the sans-I/O batcher and
pipeline use it without pulling pandas in (``wslab.traces.model`` re-exports the type).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Priority = Literal["critical", "normal", "background"]

PRIORITIES: Final[tuple[Priority, ...]] = get_args(Priority)

CRITICAL: Final[Priority] = "critical"
NORMAL: Final[Priority] = "normal"
BACKGROUND: Final[Priority] = "background"

DEFAULT_PRIORITY: Final[Priority] = NORMAL
