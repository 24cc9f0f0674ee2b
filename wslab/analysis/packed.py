"""The packed view of many payloads: one ``uint8`` array plus offsets.

What lives here: :class:`Packed` and the array type aliases the feature modules share.
Every vectorised measure in ``features.py`` and ``jsonshape.py`` starts from it. Nothing
here measures anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Packed:
    """All payloads in one ``uint8`` array, with each message's start and length.

    Attributes:
        buf: The payloads, concatenated in order.
        starts: Offset of each message in ``buf``.
        lengths: Length of each message in bytes.
    """

    buf: npt.NDArray[np.uint8]
    starts: IntArray
    lengths: IntArray

    @classmethod
    def of(cls, payloads: Sequence[bytes]) -> Packed:
        """Pack a sequence of payloads (one copy of the bytes, made by ``bytes.join``)."""
        lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=len(payloads))
        starts = np.zeros(len(payloads), dtype=np.int64)
        if len(payloads) > 1:
            np.cumsum(lengths[:-1], out=starts[1:])
        buf = np.frombuffer(b"".join(payloads), dtype=np.uint8)
        return cls(buf, starts, lengths)

    @property
    def ends(self) -> IntArray:
        """One past the last byte of each message."""
        return self.starts + self.lengths

    def owner(self) -> npt.NDArray[np.int32]:
        """For every byte of ``buf``, the index of the message it belongs to."""
        return np.repeat(np.arange(len(self.lengths), dtype=np.int32), self.lengths)

    def per_message_sum(self, flags: npt.NDArray[np.bool_]) -> IntArray:
        """How many bytes of each message have ``flags`` set (robust to empty messages)."""
        cs = np.zeros(len(flags) + 1, dtype=np.int64)
        np.cumsum(flags, out=cs[1:])
        return cs[self.ends] - cs[self.starts]
