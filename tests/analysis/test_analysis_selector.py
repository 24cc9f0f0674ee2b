"""CompressionSelector: exact simple policies, and the adaptive one learning from sizes."""

from __future__ import annotations

import random

import pytest

from wslab.codecs.deflate import DeflateEncoder
from wslab.config import CompressionConfig
from wslab.selector import CompressionSelector

from .conftest import chat_json, random_blob


def feed(sel: CompressionSelector, kind: str, payloads: list[bytes]) -> list[bool]:
    """Run payloads through decide/compress/observe as the pipeline would."""
    enc = DeflateEncoder(12, 5, 6, no_context_takeover=True)
    out = []
    for p in payloads:
        yes = sel.decide(kind, p)
        if yes:
            sel.observe(kind, len(p), len(enc.encode(p)))
        out.append(yes)
    return out


def test_never_always_threshold_are_exact() -> None:
    sizes = [0, 1, 127, 128, 129, 5000]
    payloads = [b"a" * n for n in sizes]
    assert feed(CompressionSelector("never"), "t", payloads) == [False] * 6
    assert feed(CompressionSelector("always"), "t", payloads) == [True] * 6
    thr = CompressionSelector("threshold", threshold_bytes=128)
    assert feed(thr, "t", payloads) == [False, False, False, True, True, True]


def test_from_config() -> None:
    sel = CompressionSelector.from_config(CompressionConfig(policy="threshold",
                                                            threshold_bytes=10))
    assert sel.policy == "threshold" and sel.threshold_bytes == 10
    off = CompressionSelector.from_config(CompressionConfig(algorithm="none", policy="always"))
    assert off.decide("t", b"x" * 1000) is False
    ada = CompressionSelector.from_config(CompressionConfig(policy="adaptive",
                                                            threshold_bytes=100))
    assert ada.decide("t", b"x" * 99) is False  # the threshold is a floor for adaptive
    assert ada.decide("t", b"x" * 100) is True
    with pytest.raises(ValueError):
        CompressionSelector("sometimes")  # type: ignore[arg-type]


def test_adaptive_skips_random_after_probing() -> None:
    rng = random.Random(1)
    sel = CompressionSelector("adaptive", content_check=False)
    decisions = feed(sel, "blob", [random_blob(rng) for _ in range(600)])
    assert decisions[:4] == [True] * 4  # warm-up measures the stream
    later = decisions[4:]
    assert 3 <= sum(later) <= 30  # it keeps probing, but rarely (gaps double)
    ratio = sel.ratio("blob")
    assert ratio is not None and ratio > 0.99


def test_adaptive_content_check_skips_noise_without_wasting_warmup() -> None:
    rng = random.Random(2)
    sel = CompressionSelector("adaptive")
    payloads = []
    for _ in range(300):
        payloads += [chat_json(rng), random_blob(rng)]
    decisions = feed(sel, "mixed", payloads)
    json_d, blob_d = decisions[0::2], decisions[1::2]
    assert all(json_d)
    assert sum(blob_d) <= 4 + 20


def test_adaptive_compresses_repetitive_json() -> None:
    rng = random.Random(3)
    sel = CompressionSelector("adaptive")
    assert all(feed(sel, "chat", [chat_json(rng) for _ in range(300)]))
    ratio = sel.ratio("chat")
    assert ratio is not None and ratio < 0.9


def test_adaptive_skips_tiny_messages() -> None:
    sel = CompressionSelector("adaptive", min_bytes=8)
    assert sel.decide("t", b"1234567") is False
    assert sel.decide("t", b"12345678") is True


@pytest.mark.parametrize("content_check", [False, True])
def test_adaptive_changes_its_mind(content_check: bool) -> None:
    rng = random.Random(4)
    sel = CompressionSelector("adaptive", content_check=content_check)
    before = feed(sel, "feed", [random_blob(rng) for _ in range(400)])
    assert sum(before[-100:]) <= 3  # settled on skipping
    after = feed(sel, "feed", [chat_json(rng) for _ in range(400)])
    first_yes_run = next(i for i in range(len(after)) if all(after[i : i + 50]))
    # A probe (at most max_probe_every skips away) finds the savings; from then on it
    # compresses. With the content check the new content is a new stream at once.
    assert first_yes_run <= (0 if content_check else sel.max_probe_every)
    assert all(after[-200:])


def test_adaptive_is_deterministic() -> None:
    rng = random.Random(5)
    payloads = [random_blob(rng) if rng.random() < 0.5 else chat_json(rng) for _ in range(500)]
    a = feed(CompressionSelector("adaptive"), "x", payloads)
    b = feed(CompressionSelector("adaptive"), "x", payloads)
    assert a == b


def test_types_are_learned_separately() -> None:
    rng = random.Random(6)
    sel = CompressionSelector("adaptive", content_check=False)
    for _ in range(200):
        for kind, p in (("chat", chat_json(rng)), ("blob", random_blob(rng))):
            if sel.decide(kind, p):
                sel.observe(kind, len(p), len(DeflateEncoder(no_context_takeover=True).encode(p)))
    assert sel.decide("chat", chat_json(rng)) is True
    r_chat, r_blob = sel.ratio("chat"), sel.ratio("blob")
    assert r_chat is not None and r_blob is not None and r_chat < 0.9 < r_blob
    sel.reset()
    assert sel.ratio("chat") is None


def _reference_classes(payloads: list[bytes], settle: int, recheck_every: int) -> list[str]:
    """The content classes the module docstring's rule gives, worked out independently:
    ASCII heads are plain; a non-ASCII head is counted (>= 12 distinct of 16: noisy) until
    ``settle`` counted ones in a row agree, then one in ``recheck_every`` is counted and
    the rest join the class of the latest count."""
    out: list[str] = []
    latest, streak, trusted = "", 0, 0
    for p in payloads:
        if len(p) < 64 or p[:16].isascii():
            out.append("plain")
            continue
        if trusted:
            trusted -= 1
            out.append(latest)
            continue
        found = "noisy" if len(set(p[:16])) >= 12 else "plain"
        streak = streak + 1 if found == latest else 1
        latest = found
        if streak >= settle:
            trusted = recheck_every - 1
        out.append(found)
    return out


def _structured(rng: random.Random) -> bytes:
    """A binary record: a fixed magic, a small repeated field, then varying bytes."""
    return b"\xfeREC\x00\x00\x00\x00" + bytes([rng.randrange(4)]) * 8 + rng.randbytes(100)


def test_binary_content_is_trusted_once_steady_and_recounted_on_a_change() -> None:
    rng = random.Random(7)
    settle, every = 32, 16
    payloads = ([_structured(rng) for _ in range(100)] + [random_blob(rng) for _ in range(100)]
                + [chat_json(rng) + b" " * 64 for _ in range(5)]
                + [random_blob(rng) if rng.random() < 0.5 else _structured(rng)
                   for _ in range(300)])
    sel = CompressionSelector("adaptive", settle=settle, recheck_every=every)
    enc = DeflateEncoder(12, 5, 6, no_context_takeover=True)
    got = []
    for p in payloads:
        if sel.decide("rec", p):
            sel.observe("rec", len(p), len(enc.encode(p)))
        got.append(sel.last_class)
    assert got == _reference_classes(payloads, settle, every)
    # Trusting is real: random blobs right after a steady structured run are booked plain
    # until a recount finds them (at most recheck_every - 1 of them) ...
    lag = got[100:].index("noisy")
    assert 1 <= lag <= every - 1
    # ... while text in a binary type is told apart at once, and a type that keeps mixing
    # its binary content is counted every time (each blob noisy, each record plain).
    assert got[200:205] == ["plain"] * 5
    mixed = payloads[205:]
    assert got[205:] == ["noisy" if len(set(p[:16])) >= 12 else "plain" for p in mixed]


class _ReferenceStream:
    """The adaptive rules of the module docstring for one stream, written out plainly:
    no fast paths, every field recomputed from the table (content check left out)."""

    def __init__(self, warmup: int, probe_every: int, max_probe_every: int) -> None:
        self.warmup, self.probe_every, self.max_probe_every = (warmup, probe_every,
                                                               max_probe_every)
        self.orig = self.comp = 0.0
        self.samples = self.skipped = 0
        self.interval = probe_every
        self.probing = False

    def pays(self) -> bool:
        return self.samples < self.warmup or self.comp <= 0.9 * self.orig

    def decide(self, n: int) -> bool:
        if n < 8:
            return False
        if self.pays():
            return True
        self.skipped += 1
        if self.skipped >= self.interval:
            self.skipped, self.probing = 0, True
            return True
        return False

    def observe(self, original: int, compressed: int) -> None:
        paid = compressed <= 0.9 * original
        if self.samples == 0 or (self.probing and paid):  # a new start replaces
            self.orig, self.comp = float(original), float(compressed)
        else:  # everything else blends with weight 0.25
            self.orig += 0.25 * (original - self.orig)
            self.comp += 0.25 * (compressed - self.comp)
        self.samples += 1
        if self.probing:
            self.probing = False
            self.interval = (self.probe_every if paid
                             else min(2 * self.interval, self.max_probe_every))
        if self.pays():
            self.skipped = 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_adaptive_decisions_follow_the_reference_rules_frame_by_frame(seed: int) -> None:
    # Sizes and "compressed" sizes are drawn, not measured: the rules alone are under
    # test, including the lean path a steady paying stream takes. Phases of savings, of
    # none and of ratios hovering around the 0.9 line make the verdict flip both ways,
    # during warm-up (40 streams, each starting in a phase of its own) and after it, and
    # probes succeed and fail.
    rng = random.Random(seed)
    warmup, probe_every, max_every = 4, 3, 24
    sel = CompressionSelector("adaptive", content_check=False, warmup=warmup,
                              probe_every=probe_every, max_probe_every=max_every)
    kinds = [f"type{k}" for k in range(40)]  # many streams: many warm-ups
    offset = {k: rng.randrange(3) for k in kinds}
    refs = {k: _ReferenceStream(warmup, probe_every, max_every) for k in kinds}
    got, want = [], []
    for i in range(8000):
        kind = rng.choice(kinds)
        phase = (i // 500 + offset[kind]) % 3
        ratio = {0: 0.3, 1: 1.02, 2: rng.uniform(0.8, 1.0)}[phase]
        n = rng.randrange(0, 400)
        payload = b"x" * n
        compressed = max(1, round(n * ratio))
        yes = sel.decide(kind, payload)
        if yes:
            sel.observe(kind, n, compressed)
        ref_yes = refs[kind].decide(n)
        if ref_yes:
            refs[kind].observe(n, compressed)
        got.append(yes)
        want.append(ref_yes)
    assert got == want
    assert 0.1 < got.count(False) / len(got) < 0.9  # both verdicts really occurred
