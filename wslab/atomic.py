"""Write output files all or nothing.

Every file wslab writes goes through here: the bytes land in ``NAME.part`` beside the
target and are renamed over it only once complete, so an error or Ctrl-C never leaves a
half-written result behind (the ``.part`` file is removed on failure).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[bytes]]:
    """Open ``path`` for binary writing; the file appears only if the block succeeds."""
    if mode != "wb":
        raise ValueError("atomic_output writes bytes: use mode 'wb'")
    target = Path(path)
    part = target.with_name(target.name + ".part")
    handle = open(part, "wb")  # noqa: SIM115 - closed below on every path
    try:
        yield handle
        handle.close()
        os.replace(part, target)
    except BaseException:
        handle.close()
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` all or nothing."""
    with atomic_output(path) as handle:
        handle.write(text.encode("utf-8"))
