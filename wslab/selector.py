"""Per-frame compress-or-not decisions: the ``policy`` of ``CompressionConfig``. Core, sans-I/O.

What lives here: the :class:`Selector` protocol and :class:`CompressionSelector`, which is
asked for every frame (``decide``) and told what compression really achieved (``observe``)
right after that frame is compressed. Both are done by one method, ``step``, which books
the sizes of the frame compressed last and then decides the next one: a run of frames
(the simulator) takes one ``step`` per frame, a live connection ``decide`` and ``observe``
apart, and the rules below are written once. The caller that keeps that order is
:class:`wslab.compressor.FrameCompressor`, used by the simulator and by the live extensions
alike, so the same frames give the same decisions offline and live.

The policies, as rules (within a policy, the first row that applies wins):

| policy    | rule                                                              | frame    |
|-----------|-------------------------------------------------------------------|----------|
| never     | always                                                            | plain    |
| always    | always                                                            | compress |
| threshold | payload < ``threshold_bytes`` (Node ``ws`` semantics)             | plain    |
| threshold | otherwise                                                         | compress |
| adaptive  | payload < max(``min_bytes``, ``threshold_bytes``): a size floor   | plain    |
| adaptive  | its stream (below) has < ``warmup`` measured frames               | compress |
| adaptive  | its stream's running ratio of real sizes <= ``max_ratio``         | compress |
| adaptive  | ``probe_every`` .. ``max_probe_every`` skips since the last probe | compress |
| adaptive  | otherwise                                                         | plain    |

An adaptive *stream* is a key (the frame's message type) and a content class: *noisy*
when the payload is >= ``sample_bytes`` long and its first ``HEAD_BYTES`` (16) bytes are
not ASCII and hold >= ``noisy_distinct`` distinct values, else *plain*. The content check needs no
measurement, so the random blobs of a type that also carries JSON, or of a type never seen
before, do not borrow the JSON's ratio. Counting distinct values is the dearest step of a
decision, so a type's binary content is trusted once it is steady: after ``settle`` checked
non-ASCII payloads in a row fell in the same class, only one in ``recheck_every`` is counted
and the others join that class; a count that finds the other class makes every binary
payload counted again until the next ``settle`` agree. ASCII payloads are always plain (that
test is cheap), so text turning up in a binary type is told apart at once.

A probe compresses a skipped stream anyway so a type that turned compressible is noticed: a
probe that pays replaces the stream's average and resets its gap to ``probe_every``; one
that does not doubles the gap, up to ``max_probe_every``.

The module has a compiled twin (``wslab/compiled.py``): built from this very source by
``scripts/build_native.py`` when a C compiler is there, it replaces ``CompressionSelector``
at import; ``PythonCompressionSelector`` is always the plain one.

What must not live here: compressing (the codec), clocks, randomness, I/O, pandas or
zstandard. The selector is deterministic: the same calls in the same order give the same
answers. ``step`` is on the hot path of every frame, so it does a handful of attribute
reads and comparisons and allocates nothing after a key's first frame but a slice of at
most ``HEAD_BYTES`` (and, for a counted binary payload, a set of at most 16 values).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from wslab.config import CompressionConfig

PolicyName = Literal["never", "always", "threshold", "adaptive"]

_NEVER, _ALWAYS, _THRESHOLD, _ADAPTIVE = 0, 1, 2, 3
_CODES = {"never": _NEVER, "always": _ALWAYS, "threshold": _THRESHOLD, "adaptive": _ADAPTIVE}
HEAD_BYTES = 16  # what the content check reads of a payload: enough to tell noise apart


class Selector(Protocol):
    """Decides per frame whether to compress; learns from real compressed sizes."""

    def decide(self, key: str, payload: bytes) -> bool:
        """True to compress this frame."""
        ...

    def observe(self, key: str, original: int, compressed: int) -> None:
        """Feed back the real compressed size of the frame just compressed."""
        ...


class _Stream:
    """What the adaptive policy knows about one (type, content class) stream.

    ``orig``/``comp`` are exponentially weighted averages of the real original and
    compressed sizes fed to :meth:`CompressionSelector.observe`; their quotient is the
    stream's running byte-weighted ratio. Nothing here is an estimate. ``pays`` is what
    they say about the next frame (still warming up, or saving enough), worked out once
    per observation so that ``decide`` only reads it.
    """

    __slots__ = ("comp", "content", "interval", "orig", "pays", "probing", "samples",
                 "skipped", "steady")

    def __init__(self, probe_every: int, content: str) -> None:
        self.content = content  # "plain" or "noisy"
        self.orig = 0.0
        self.comp = 0.0
        self.samples = 0
        self.skipped = 0
        self.interval = probe_every
        self.probing = False
        self.pays = True
        # Past warm-up and not being probed: the next observation is a plain blend into
        # a stream that paid (the only way decide let a frame of it through).
        self.steady = False


class _TypeState:
    """A message type's two streams, and how far its binary content class is trusted.

    ``binary`` is the stream the latest counted non-ASCII payload joined, ``streak`` how
    many counted ones in a row joined it, ``trusted`` how many of the next non-ASCII
    payloads join it uncounted.
    """

    __slots__ = ("binary", "noisy", "plain", "streak", "trusted")

    def __init__(self, probe_every: int) -> None:
        self.plain = _Stream(probe_every, "plain")
        self.noisy = _Stream(probe_every, "noisy")
        self.binary = self.noisy
        self.streak = 0
        self.trusted = 0


class CompressionSelector:
    """Decides, message by message, whether compressing pays.

    Args:
        policy: ``never``, ``always``, ``threshold`` or ``adaptive``.
        threshold_bytes: Smallest payload the ``threshold`` policy compresses; for
            ``adaptive`` a floor below which nothing is compressed (0: no floor beyond
            ``min_bytes``).
        min_bytes: ``adaptive`` never compresses payloads shorter than this: a deflate
            block's framing (a few bytes) cannot be won back.
        max_ratio: ``adaptive`` compresses a stream whose running ratio is at most this
            (0.9: compression must save at least 10 % to be worth its CPU).
        alpha: Weight of the newest observation in the running averages.
        warmup: Messages of a new stream compressed unconditionally to measure it.
        probe_every: A skipped stream is compressed again after this many skips, to see
            whether its content changed; each probe that confirms the skip doubles the
            gap, up to ``max_probe_every``; a probe that finds savings resets it.
        max_probe_every: Longest gap between probes.
        content_check: Split each type into "plain" and "noisy" content, learned apart:
            a payload is noisy when it is at least ``sample_bytes`` long and its first 16
            bytes are not all ASCII and hold at least ``noisy_distinct`` distinct values
            (random bytes give ~15.5 of 16, fewer than 12 with odds of about 1 in 46,000,
            and are all ASCII with odds of 2^-16; text and
            structured binary give far fewer). This keeps one type that carries both
            JSON and, say, encrypted blobs from averaging them.
        sample_bytes: Payload size from which the content check runs.
        settle: Counted non-ASCII payloads of a type in a row, all in one class, after
            which its binary content is trusted (counted one in ``recheck_every``).
        recheck_every: Once trusted, one non-ASCII payload in this many is counted.
        noisy_distinct: Distinct values among the first 16 bytes that mark noise.
    """

    __slots__ = (
        "_check_from", "_code", "_last", "_states", "alpha", "content_check",
        "max_probe_every", "max_ratio", "min_bytes", "noisy_distinct", "policy", "probe_every",
        "recheck_every", "sample_bytes", "settle", "threshold_bytes", "warmup",
    )

    def __init__(
        self,
        policy: PolicyName = "always",
        *,
        threshold_bytes: int = 0,
        min_bytes: int = 8,
        max_ratio: float = 0.9,
        alpha: float = 0.25,
        warmup: int = 4,
        probe_every: int = 8,
        max_probe_every: int = 128,
        content_check: bool = True,
        sample_bytes: int = 64,
        noisy_distinct: int = 12,
        settle: int = 32,
        recheck_every: int = 16,
    ) -> None:
        if policy not in _CODES:
            raise ValueError(f"unknown compression policy {policy!r}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if probe_every < 1 or max_probe_every < probe_every:
            raise ValueError("need 1 <= probe_every <= max_probe_every")
        if settle < 1 or recheck_every < 1:
            raise ValueError("need settle >= 1 and recheck_every >= 1")
        self.policy = policy
        self._code = _CODES[policy]
        self.threshold_bytes = threshold_bytes
        self.min_bytes = max(min_bytes, threshold_bytes) if policy == "adaptive" else min_bytes
        self.max_ratio = max_ratio
        self.alpha = alpha
        self.warmup = warmup
        self.probe_every = probe_every
        self.max_probe_every = max_probe_every
        self.content_check = content_check
        self.sample_bytes = max(sample_bytes, HEAD_BYTES)
        # The payload size from which the content check runs (never, when it is off).
        self._check_from = self.sample_bytes if content_check else 1 << 62
        self.noisy_distinct = noisy_distinct
        self.settle = settle
        self.recheck_every = recheck_every
        self._states: dict[str, _TypeState] = {}
        self._last: _Stream | None = None

    @classmethod
    def from_config(cls, cfg: CompressionConfig) -> CompressionSelector:
        """The selector a ``compression`` config section asks for.

        ``algorithm: none`` means ``never`` whatever the policy says.
        """
        policy: PolicyName = "never" if cfg.algorithm == "none" else cfg.policy
        return cls(policy, threshold_bytes=cfg.threshold_bytes)

    def decide(self, type: str, payload: bytes) -> bool:
        """True when ``payload`` (of message type ``type``) should be compressed.

        The adaptive policy: payloads under ``min_bytes`` are skipped. Otherwise the
        message joins its type's plain or noisy stream (see ``content_check``). A stream's
        first ``warmup`` messages are compressed to measure it; after that a message is
        compressed while the stream's running ratio of real sizes is at most
        ``max_ratio``. A skipped stream is probed (compressed anyway) every
        ``probe_every`` .. ``max_probe_every`` skips so that it can change its mind: a
        probe that saves enough replaces the stream's average (see :meth:`observe`).
        The work is :meth:`step`'s, with nothing to book.
        """
        return self.step(type, payload)

    def observe(self, type: str, original: int, compressed: int) -> None:
        """Feed back the real sizes of a message that ``decide`` said to compress.

        Call it right after compressing, before the next ``decide``
        (:class:`~wslab.compressor.FrameCompressor` does): the sizes are booked to the
        stream the latest decision was taken in. The work is :meth:`step`'s, with
        nothing to decide.
        """
        self.step(type, None, original, compressed)

    def step(self, type: str, payload: bytes | None, original: int = -1,
             compressed: int = 0) -> bool:
        """:meth:`observe` then :meth:`decide` in one call: the one home of both.

        First, when ``original >= 0``, the real sizes of the frame compressed last are
        booked to the stream it was decided in; then ``payload`` (of type ``type``) is
        decided, unless it is None (nothing to decide: False). A run of frames thus costs
        one call per frame (the codec's ``encode_many`` books each frame's sizes with the
        next frame's decision, and the last frame's alone), and the order of the steps
        is exactly decide, observe, decide, ... as if made one by one.
        """
        if original >= 0:
            s = self._last
            if s is None:  # not adaptive, or nothing decided yet
                pass
            elif s.steady:
                # The common case, kept lean (it runs for every compressed frame): a
                # stream past warm-up that paid, so decide let this frame through. Blend
                # the sizes into the running averages; the verdict can only turn to
                # "does not pay".
                a = self.alpha
                orig = s.orig
                orig += a * (original - orig)
                comp = s.comp
                comp += a * (compressed - comp)
                s.orig = orig
                s.comp = comp
                if comp > self.max_ratio * orig:
                    s.pays = False
            else:
                self._book(s, original, compressed)
        if payload is None:
            return False
        code = self._code
        if code != _ADAPTIVE:
            return code == _ALWAYS or (code == _THRESHOLD and len(payload) >= self.threshold_bytes)
        n = len(payload)
        if n < self.min_bytes:
            return False
        try:
            state = self._states[type]
        except KeyError:
            state = self._states[type] = _TypeState(self.probe_every)
        # All-ASCII payloads are the common case: testing the whole payload needs no
        # slice and stops at its first non-ASCII byte; the head decides the rest.
        if n < self._check_from or payload.isascii() or payload[:HEAD_BYTES].isascii():
            stream = state.plain
        elif state.trusted:
            state.trusted -= 1
            stream = state.binary
        else:
            stream = (state.noisy if len(set(payload[:HEAD_BYTES])) >= self.noisy_distinct
                      else state.plain)
            if stream is state.binary:
                state.streak += 1
            else:
                state.binary = stream
                state.streak = 1
            if state.streak >= self.settle:
                state.trusted = self.recheck_every - 1
        self._last = stream
        if stream.pays:
            return True
        stream.skipped += 1
        if stream.skipped >= stream.interval:
            stream.skipped = 0
            stream.probing = True
            stream.steady = False
            return True
        return False

    def _book(self, s: _Stream, original: int, compressed: int) -> None:
        """The sizes of a frame of a stream still warming up or being probed."""
        paid = compressed <= self.max_ratio * original
        if s.samples == 0 or (paid and s.probing):
            # A first sample, or a probe that found savings where the average said there
            # were none: the content changed, so the old average is dropped, not blended.
            s.orig = float(original)
            s.comp = float(compressed)
        else:
            a = self.alpha
            s.orig += a * (original - s.orig)
            s.comp += a * (compressed - s.comp)
        s.samples += 1
        if s.probing:
            s.probing = False
            s.interval = self.probe_every if paid else min(s.interval * 2,
                                                           self.max_probe_every)
        s.pays = s.samples < self.warmup or s.comp <= self.max_ratio * s.orig
        if s.pays:
            s.skipped = 0  # skips are counted from the moment the stream stops paying
        s.steady = s.samples >= self.warmup

    @property
    def last_class(self) -> str | None:
        """The content class (``plain``/``noisy``) the latest adaptive decision was taken in."""
        return self._last.content if self._last is not None else None

    def ratio(self, type: str) -> float | None:
        """The running measured ratio of a type's plain stream (None before any data)."""
        state = self._states.get(type)
        if state is None or state.plain.samples == 0 or state.plain.orig <= 0:
            return None
        return state.plain.comp / state.plain.orig

    def reset(self) -> None:
        """Forget everything learned (e.g. for a new connection's fresh context)."""
        self._states.clear()
        self._last = None


# --- the compiled twin is this source down to here (scripts/build_native.py) ---

PythonCompressionSelector = CompressionSelector
"""The selector as plain Python, whichever implementation runs (tests hold them together)."""

from wslab.compiled import current_twin  # noqa: E402  (only the pure module loads a twin)

if not TYPE_CHECKING:
    # This very source compiled (wslab/compiled.py), when built: the same rules, a few times
    # cheaper per frame, which is most of what ``adaptive`` adds to a simulation.
    _twin = current_twin(__name__, __file__)
    if _twin is not None:
        CompressionSelector = _twin.CompressionSelector
