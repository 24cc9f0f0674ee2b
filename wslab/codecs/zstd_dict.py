"""zstd with pre-shared dictionaries, one per message type. Sans-I/O.

What lives here: :class:`DictionarySet` (a dictionary per message type plus a fallback for
types that have none and for batches mixing types, with a stable id both peers name in the
``x-wslab-zstd`` offer), training one from samples (:func:`train_dictionary_set`), its file
format, and the encoder/decoder pair that uses it.

How a message finds its dictionary:

| sender side                                  | what goes on the wire               |
|----------------------------------------------|-------------------------------------|
| the frame's key (message type) has its own   | a zstd frame primed with it; the    |
| dictionary                                   | frame header carries its dict id    |
| no own dictionary, the set has a fallback    | primed with the fallback (its id)   |
| neither                                      | a plain zstd frame (dict id 0)      |

The receiver reads the dict id from each frame header and picks the same dictionary, so
the key never travels: a peer that holds the set can decode any frame of it. Dict ids are
assigned in the set (``FIRST_ID`` for the fallback, then one per key in sorted order), so
they are unique within it; the set's id (a hash of everything in it) tells two sets apart.

Why one per type: a type's messages share their keys and layout, so its own dictionary
holds what its messages repeat; a dictionary trained on everything is diluted by the other
types (measured per type by the tests and ``benchmarks/bench_zstd.py``).

What must not live here: which messages to train on (``wslab/sim/dictionaries.py`` holds
that rule: a prefix of each type, scored only after it), negotiation, I/O beyond reading
and writing the set's own file.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from wslab.atomic import atomic_write_text
from wslab.codecs.zstd import ZstdDecoder, new_compressor
from wslab.errors import DecodeError, WslabError

FIRST_ID = 32768  # zstd reserves dict ids below 32768 for registered dictionaries
MIN_SAMPLES = 8  # fewer samples than this: zstd's trainer has nothing to learn from
FORMAT = "wslab-zstd-dictionaries"
DICT_MAGIC = bytes.fromhex("37a430ec")  # how a zstd dictionary (with header) begins
_VERSION = 1


@dataclass(frozen=True)
class DictionarySet:
    """Raw zstd dictionaries by message type, and a fallback.

    Attributes:
        by_key: Message type -> raw dictionary bytes (its zstd dict id set by the set).
        fallback: The dictionary for every other key, or None.
    """

    by_key: Mapping[str, bytes] = field(default_factory=dict)
    fallback: bytes | None = None

    @property
    def id(self) -> str:
        """A stable id of the whole set: 16 hex digits of a SHA-256 over its content."""
        h = hashlib.sha256()
        for key in sorted(self.by_key):
            h.update(key.encode("utf-8") + b"\0")
            h.update(len(self.by_key[key]).to_bytes(4, "big") + self.by_key[key])
        h.update(b"\1" + (self.fallback or b""))
        return h.hexdigest()[:16]

    @property
    def nbytes(self) -> int:
        """Total size of the dictionaries (what a connection holding them keeps)."""
        return sum(len(d) for d in self.by_key.values()) + len(self.fallback or b"")

    def __len__(self) -> int:
        return len(self.by_key) + (self.fallback is not None)

    def to_json(self) -> str:
        """The set's file: JSON naming the format, each key and its base64 dictionary."""
        doc = {
            "format": FORMAT, "version": _VERSION, "id": self.id,
            "fallback": None if self.fallback is None else _b64(self.fallback),
            "by_key": {k: _b64(self.by_key[k]) for k in sorted(self.by_key)},
        }
        return json.dumps(doc, indent=1)

    def save(self, path: str | Path) -> None:
        """Write the set's file atomically."""
        atomic_write_text(Path(path), self.to_json() + "\n")

    @classmethod
    def from_json(cls, text: str, *, where: str = "dictionaries") -> DictionarySet:
        """Read a set's file; errors name the file and what is wrong."""
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise WslabError(f"{where}: not JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise WslabError(f"{where}: not a {FORMAT} file")
        if doc.get("version") != _VERSION:
            raise WslabError(f"{where}: version {doc.get('version')!r} is not {_VERSION}")
        by_key = doc.get("by_key")
        if not isinstance(by_key, dict):
            raise WslabError(f"{where}: 'by_key' must map message types to dictionaries")
        try:
            out = cls({str(k): _unb64(v) for k, v in by_key.items()},
                      None if doc.get("fallback") is None else _unb64(doc["fallback"]))
        except (TypeError, ValueError) as exc:
            raise WslabError(f"{where}: a dictionary is not valid base64 ({exc})") from None
        if doc.get("id") != out.id:
            raise WslabError(f"{where}: content does not match its id {doc.get('id')!r} "
                             "(the file was changed or truncated)")
        return out

    @classmethod
    def load(cls, path: str | Path) -> DictionarySet:
        """Read a set's file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise WslabError(f"{p}: cannot read dictionaries ({exc.strerror})") from None
        return cls.from_json(text, where=str(p))

    def __post_init__(self) -> None:
        named = [*self.by_key.items(), *([("(fallback)", self.fallback)]
                                         if self.fallback is not None else [])]
        for key, raw in named:
            if raw[:4] != DICT_MAGIC or len(raw) < 16:
                raise WslabError(f"dictionary for {key!r} is not a zstd dictionary "
                                 "(trained dictionaries start with the zstd magic)")

    def ids(self) -> dict[int, bytes]:
        """zstd dict id -> raw dictionary carrying that id, as the set numbers them."""
        out: dict[int, bytes] = {}
        if self.fallback is not None:
            out[FIRST_ID] = _with_id(self.fallback, FIRST_ID)
        for n, key in enumerate(sorted(self.by_key), start=1):
            out[FIRST_ID + n] = _with_id(self.by_key[key], FIRST_ID + n)
        return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise TypeError("expected a base64 string")
    return base64.b64decode(text.encode("ascii"), validate=True)


def _train(samples: Sequence[bytes], dict_bytes: int, dict_id: int) -> bytes | None:
    """One dictionary, or None when zstd finds nothing to learn in the samples."""
    if len(samples) < MIN_SAMPLES:
        return None
    total = sum(len(s) for s in samples)
    # A dictionary larger than a quarter of what it learns from is mostly copies of it.
    size = max(256, min(dict_bytes, total // 4))
    try:
        return zstandard.train_dictionary(size, list(samples), k=200, d=8,
                                          dict_id=dict_id).as_bytes()
    except zstandard.ZstdError:
        return None


def train_dictionary_set(samples: Mapping[str, Sequence[bytes]], dict_bytes: int = 16384,
                         ) -> DictionarySet:
    """A dictionary per key that has enough samples, and a fallback trained on all of them.

    Args:
        samples: Message type -> the messages to learn it from (the caller picks them:
            earlier traffic, never the messages later scored).
        dict_bytes: Largest size of each dictionary (a type with little sample data gets
            a smaller one).
    """
    keys = sorted(samples)
    by_key: dict[str, bytes] = {}
    for n, key in enumerate(keys, start=1):
        trained = _train(samples[key], dict_bytes, FIRST_ID + n)
        if trained is not None:
            by_key[key] = trained
    pooled = [m for key in keys for m in samples[key]]
    return DictionarySet(by_key, _train(pooled, dict_bytes, FIRST_ID))


def _with_id(raw: bytes, dict_id: int) -> bytes:
    """``raw`` with its zstd dict id set to ``dict_id`` (the header: magic, then the id)."""
    return raw[:4] + dict_id.to_bytes(4, "little") + raw[8:]


class ZstdDictSetEncoder:
    """Compress each message with its type's dictionary (or the fallback, or none).

    Args:
        dictionaries: The set both peers hold.
        level: zstd level.
        window_log: Largest window a frame may use, 2^N bytes (None: the level's own).
    """

    algorithm = "zstd-dict"

    def __init__(self, dictionaries: DictionarySet, level: int = 3,
                 window_log: int | None = None) -> None:
        self.dictionaries = dictionaries
        self.level = level
        self.window_log = window_log
        self._plain = new_compressor(level, window_log)
        ids = dictionaries.ids()
        self._fallback = (self._cctx(ids[FIRST_ID]) if dictionaries.fallback is not None
                          else self._plain)
        self._by_key: dict[str, zstandard.ZstdCompressor] = {}
        for n, key in enumerate(sorted(dictionaries.by_key), start=1):
            self._by_key[key] = self._cctx(ids[FIRST_ID + n])

    def _cctx(self, raw: bytes) -> zstandard.ZstdCompressor:
        return new_compressor(self.level, self.window_log, zstandard.ZstdCompressionDict(raw))

    def encode(self, payload: bytes, key: str = "") -> bytes:
        """One complete zstd frame for ``payload``, primed with ``key``'s dictionary."""
        return self._by_key.get(key, self._fallback).compress(payload)


class ZstdDictSetDecoder:
    """Decompress frames of a :class:`ZstdDictSetEncoder`, picking by each frame's dict id.

    Bounded like :class:`~wslab.codecs.zstd.ZstdDecoder`: never grows past ``max_size``
    and refuses frames whose window passes ``max_window_log``.
    """

    algorithm = "zstd-dict"

    def __init__(self, dictionaries: DictionarySet, *,
                 max_window_log: int | None = None) -> None:
        self.dictionaries = dictionaries
        self._by_id: dict[int, ZstdDecoder] = {0: ZstdDecoder(max_window_log=max_window_log)}
        for dict_id, raw in dictionaries.ids().items():
            self._by_id[dict_id] = ZstdDecoder(dictionary=raw, max_window_log=max_window_log)

    def decode(self, data: bytes, max_size: int | None = None) -> bytes:
        """The original message; DecodeError for a dict id outside the set."""
        try:
            dict_id = zstandard.get_frame_parameters(data).dict_id
        except zstandard.ZstdError as exc:
            raise DecodeError(f"zstd frame header does not parse: {exc}") from exc
        decoder = self._by_id.get(dict_id)
        if decoder is None:
            raise DecodeError(f"zstd frame names dictionary {dict_id}, which is not in set "
                              f"{self.dictionaries.id}")
        return decoder.decode(data, max_size)
