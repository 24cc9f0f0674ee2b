"""The OS programs the suite runs for real, found, or failed on in one line.

``make test`` installs them first (``scripts/os-deps.sh``: redis-server, nginx, chromium,
node and npm, and the npm packages of ``tests/tune/node``), so a test that needs one does
not skip when it is missing: the set-up did not run, and the test fails saying what to run.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

SETUP = "run `make os-deps` (scripts/os-deps.sh installs it, or names the command to run)"
F = TypeVar("F", bound=Callable[..., Any])


def find(name: str) -> str | None:
    """The path of program ``name`` (PATH first, then /usr/sbin and /usr/bin), or None."""
    return shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/bin") if (p := Path(d) / name).exists()), None)


def program(name: str, package: str) -> str:
    """The path of ``name``; fails the test in one line if it is not installed."""
    found = find(name)
    if found is None:
        pytest.fail(f"{name} is not installed (OS package {package}): {SETUP}", pytrace=False)
    return found


def needs(name: str, package: str) -> Callable[[F], F]:
    """Decorator: the test fails at once, in one line, when ``name`` is not installed."""

    def decorate(test: F) -> F:
        @functools.wraps(test)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            program(name, package)
            return test(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def node_and_npm() -> tuple[str, str]:
    """Paths of node and npm (fails the test if either is missing)."""
    return program("node", "nodejs"), program("npm", "npm")
