"""Shared hypothesis strategies and guards for the fuzz tests.

The property every fuzz test checks: an input ends in a value or in the documented
``WslabError`` subclass, never in another exception, a hang or an allocation out of
proportion to the input. ``bounded_peak`` measures the last with tracemalloc.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

T = TypeVar("T")

#: Per-example deadline: generous for a loaded 2-core machine, tight enough to flag a hang.
DEADLINE = timedelta(seconds=2)


def fuzz_settings(examples: int) -> settings:
    """Settings for one fuzz test: ``examples`` cases, a deadline, no database noise."""
    return settings(max_examples=examples, deadline=DEADLINE, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


# JSON values, nested but small: the shapes a hostile or broken file can hold.
json_scalars = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)


@contextmanager
def bounded_peak(limit_bytes: int) -> Iterator[None]:
    """Fail if the Python heap grows by more than ``limit_bytes`` inside the block.

    tracemalloc sees every allocation through Python's allocators, including the buffers
    of ``bytes`` objects, which is where an unchecked length would land.
    """
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        if not already:
            tracemalloc.stop()
    grown = peak - base
    assert grown <= limit_bytes, f"peak heap growth {grown} bytes > {limit_bytes} bytes"


def outcome(fn: Callable[[], T], allowed: tuple[type[BaseException], ...]) -> T | BaseException:
    """``fn()``'s value, or the allowed exception it raised (anything else propagates)."""
    try:
        return fn()
    except allowed as exc:
        assert str(exc), f"{type(exc).__name__} raised without a message"
        return exc
