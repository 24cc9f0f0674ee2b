"""Content features on inputs whose answers can be worked out by hand."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from wslab.analysis import features as F
from wslab.analysis.features import (
    Packed,
    entropy,
    json_structure,
    match_coverage,
    message_features,
)

from .conftest import make_trace


def test_entropy_known_values() -> None:
    payloads = [bytes(range(256)) * 3, b"x" * 500, b"", b"ab" * 50, b"abcd" * 10, b"q"]
    h = entropy(Packed.of(payloads))
    assert h == pytest.approx([8.0, 0.0, 0.0, 1.0, 2.0, 0.0], abs=1e-12)


def test_entropy_of_random_bytes_is_near_eight() -> None:
    blob = random.Random(1).randbytes(100_000)
    assert 7.99 < entropy(Packed.of([blob]))[0] <= 8.0


def _reference_coverage(
    payloads: list[bytes], groups: list[int], kinds: list[int], window: int
) -> tuple[list[float], list[float], list[float]]:
    """Slow, obvious version of match_coverage: nearest earlier occurrence per position."""
    buf = b"".join(payloads)
    owner: list[int] = []
    for i, p in enumerate(payloads):
        owner += [i] * len(p)
    ends = np.cumsum([len(p) for p in payloads])
    inside = [set() for _ in payloads]  # type: ignore[var-annotated]
    history = [set() for _ in payloads]  # type: ignore[var-annotated]
    same_kind = [set() for _ in payloads]  # type: ignore[var-annotated]
    last_seen: dict[bytes, int] = {}
    for i in range(len(buf) - 3):
        if owner[i] != owner[i + 3]:
            continue
        gram = buf[i : i + 4]
        j = last_seen.get(gram)
        last_seen[gram] = i
        if j is None or i - j > window:
            continue
        m = owner[i]
        if owner[j] == m:
            inside[m].update(range(i, i + 4))
        if groups[owner[j]] == groups[m]:
            history[m].update(range(i, i + 4))
            if kinds[owner[j]] == kinds[m]:
                same_kind[m].update(range(i, i + 4))
    assert ends[-1] == len(buf)
    size = [max(len(p), 1) for p in payloads]
    return ([len(s) / n for s, n in zip(inside, size, strict=True)],
            [len(s) / n for s, n in zip(history, size, strict=True)],
            [len(s) / n for s, n in zip(same_kind, size, strict=True)])


@pytest.mark.parametrize("block", [16, 64, 1 << 18])
def test_match_coverage_equals_brute_force(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(F, "_BLOCK_BYTES", block)
    rng = random.Random(3)
    words = [b"alpha", b"beta", b"gamma", b"{\"k\":", b"\x00\x01\x02\x03"]
    payloads = [b"".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
                for _ in range(40)]
    payloads[5] = b""
    payloads[6] = b"abc"
    groups = [0] * 20 + [1] * 20
    kinds = [i % 3 for i in range(40)]
    for window in (16, 64, 4096):
        cov = match_coverage(Packed.of(payloads), np.array(groups, dtype=np.int64), window,
                             np.array(kinds, dtype=np.int64))
        want_inside, want_history, want_kind = _reference_coverage(payloads, groups, kinds,
                                                                   window)
        assert cov.inside == pytest.approx(want_inside)
        assert cov.history == pytest.approx(want_history)
        assert cov.same_kind == pytest.approx(want_kind)
        assert (cov.inside <= cov.same_kind + 1e-12).all()


def test_repetition_by_hand() -> None:
    cov = match_coverage(Packed.of([b"abcdabcdabcd", b"wxyz" * 25, b"abcdabcd"]),
                         np.zeros(3, dtype=np.int64), 1 << 15)
    # "abcdabcdabcd": every 4-gram from position 4 on repeats; bytes 4..11 covered.
    assert cov.inside[0] == pytest.approx(8 / 12)
    assert cov.inside[1] == pytest.approx(96 / 100)
    # The third message repeats the first entirely once history counts.
    assert cov.inside[2] == pytest.approx(4 / 8)
    assert cov.history[2] == pytest.approx(1.0)
    assert cov.history_runs[2] == pytest.approx(1 / 8)


def test_window_limits_repetition() -> None:
    blob = random.Random(2).randbytes(3000)
    cov_small = match_coverage(Packed.of([blob + blob]), np.zeros(1, dtype=np.int64), 1024)
    cov_big = match_coverage(Packed.of([blob + blob]), np.zeros(1, dtype=np.int64), 4096)
    assert cov_small.inside[0] < 0.01
    assert cov_big.inside[0] == pytest.approx(0.5, abs=0.01)


def test_json_structure_of_known_documents() -> None:
    docs = [
        b'{"a": {"b": [1, "x\\"y:"]}, "cc": 2}',
        b"  [1, 2, 3]  ",
        b'{"k\\\\": "v"}',
        b'{"a": 1',  # not valid
        b"42",  # a scalar is not a document
        b'"just a string"',
        b"\xff\xfe{",  # not UTF-8
        b"",
        b'[{"x": {"y": {"z": []}}}]',
        b'{"s": "{[not brackets]}", "t": ":"}',
    ]
    js = json_structure(docs)
    assert js.is_json.tolist() == [True, True, True, False, False, False, False, False, True,
                                   True]
    assert js.depth.tolist() == [3, 1, 1, 0, 0, 0, 0, 0, 5, 1]
    assert js.keys.tolist() == [3, 0, 1, 0, 0, 0, 0, 0, 3, 2]
    # "a", "b", "cc" with quotes: 3 + 3 + 4; a key with an escaped backslash: 5.
    assert js.key_bytes.tolist() == [10, 0, 5, 0, 0, 0, 0, 0, 9, 6]


def test_message_features_columns_and_cross_repetition() -> None:
    same = json.dumps({"user": "alice", "room": "general", "text": "hello"}).encode()
    rng = random.Random(4)
    kinds = []
    for _ in range(30):
        kinds.append(("chat", "s2c", same))
        kinds.append(("noise", "s2c", rng.randbytes(64)))
    df = message_features(make_trace(kinds), window_bits=12)
    assert len(df) == 60
    for col in ("entropy_bits_per_byte", "repetition", "context_repetition",
                "cross_repetition", "context_runs_per_byte", "is_json", "json_depth",
                "json_keys", "key_bytes_fraction"):
        assert col in df.columns
    chat = df[df["type"] == "chat"]
    noise = df[df["type"] == "noise"]
    # Later chat messages repeat earlier ones whole; the first one cannot.
    assert chat["cross_repetition"].iloc[0] == 0.0
    assert chat["context_repetition"].iloc[5:].min() > 0.95
    assert noise["context_repetition"].max() < 0.2
    assert chat["is_json"].all() and not noise["is_json"].any()
    assert chat["json_keys"].iloc[0] == 3
    # Keys "user", "room", "text" with their quotes: 3 * 6 bytes.
    assert chat["key_bytes_fraction"].iloc[0] == pytest.approx(18 / len(same))


def test_json_bulk_validation_does_not_accept_pieces() -> None:
    # Each pair below parses when joined into one array, yet no piece is JSON on its own.
    docs = [b'{"a": 1}, {"b": 2}', b'{"c": 3}', b"[1", b"2]", b'{"k"' + b" " * 100 + b': "v"}',
            b'["x", {"y": 1}]  ']
    js = json_structure(docs)
    assert js.is_json.tolist() == [False, True, False, False, True, True]
    assert js.keys.tolist() == [0, 1, 0, 0, 1, 1]
    assert js.depth.tolist() == [0, 1, 0, 0, 1, 2]
    # The same answers when the documents are checked without the bulk path.
    assert json_structure(docs[1:2]).keys.tolist() == [1]
    assert json_structure([docs[5]]).depth.tolist() == [2]
    # Here the joined array even has one element per piece: '{..},{..}' gives two and
    # '[[1' + '[2]]]' merge into one. Neither of the last two is a document alone.
    tricky = [b'{"a": 1},{"b": 2}', b"[[1", b"[2]]]", b'{"d": 4}']
    assert json_structure(tricky).is_json.tolist() == [False, False, False, True]
