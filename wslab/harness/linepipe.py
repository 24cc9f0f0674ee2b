"""Lines from a child process's output pipe, with a timeout. No asyncio.

What lives here: :class:`LinePipe`, which reads a pipe's descriptor itself and keeps the
bytes after the last newline for the next call. Waiting with ``select`` on a text-mode
``Popen.stdout`` and then calling its ``readline()`` loses lines: one ``readline()`` may
pull several lines into the wrapper's own buffer, ``select`` then sees an empty pipe, and
the lines already read sit there until the timeout. Every reader of a child's lines with a
deadline (``cluster.Child``, the tests' servers) goes through this class instead.

What must not live here: what the lines mean (JSON, ports), process management.
"""

from __future__ import annotations

import os
import select
import time
from typing import IO, Any


class LinePipe:
    """Complete lines from ``pipe`` (a readable file object or descriptor), in order.

    Once a ``LinePipe`` reads a pipe, nothing else should: it holds the bytes after the
    last complete line it returned.
    """

    __slots__ = ("_ended", "_fd", "_lines", "_partial")

    def __init__(self, pipe: IO[Any] | int) -> None:
        self._fd = pipe if isinstance(pipe, int) else pipe.fileno()
        self._lines: list[bytes] = []
        self._partial = b""
        self._ended = False

    @property
    def ended(self) -> bool:
        """True once the writer closed the pipe and every line was handed out."""
        return self._ended and not self._lines

    def readline(self, timeout: float) -> str | None:
        """The next line without its newline; None at the end of the pipe.

        Raises :class:`TimeoutError` when no complete line arrived within ``timeout``
        seconds (the bytes read so far are kept for the next call).
        """
        deadline = time.monotonic() + timeout
        while not self._lines:
            if self._ended:
                return None
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._fd], [], [], left)[0]:
                raise TimeoutError(f"no complete line within {timeout:.1f} s")
            chunk = os.read(self._fd, 65536)
            if not chunk:
                self._ended = True
                if self._partial:  # a last line without a newline
                    self._lines.append(self._partial)
                    self._partial = b""
                continue
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            self._lines += complete
        return self._lines.pop(0).decode("utf-8", "replace").rstrip("\r")

    def lines(self, count: int, timeout: float) -> list[str]:
        """Up to ``count`` lines arriving within ``timeout`` seconds in all (fewer at the
        end of the pipe or at the deadline)."""
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            try:
                line = self.readline(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
            if line is None:
                break
            out.append(line)
        return out
