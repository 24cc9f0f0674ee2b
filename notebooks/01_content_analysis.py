# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: jupyter,tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Content analysis: what is in your messages?
#
# Whether compression pays depends far more on *what* you send than on which knob you turn.
# Before tuning anything, look at the content. This notebook builds up three measures from
# first principles, shows them on the bundled traces, and then hands you a panel for your
# own.
#
# ## Two reasons a message compresses
#
# A DEFLATE compressor (the algorithm inside permessage-deflate, zlib and gzip) does two
# things in sequence:
#
# 1. **LZ77 matching**: it replaces a run of bytes it has already seen within its *window*
#    (the last 2^window_bits bytes) by a back-reference, (distance, length). Repetition is
#    what this stage feeds on: JSON keys, enum strings, timestamps that share a prefix.
# 2. **Huffman coding**: what is left (literals and references) is coded with fewer bits
#    for frequent symbols. This stage feeds on a skewed byte distribution: text uses a few
#    dozen byte values, not 256.
#
# Two measures follow. **Entropy** (Shannon, in bits per byte) says how skewed the byte
# distribution is: 8 bits per byte means every value is equally likely (random or
# encrypted data, already-compressed images), and Huffman coding can save nothing; English
# text sits near 4–5. **Repetition** is the share of a message's bytes that an LZ77 match
# could cover: bytes that occurred before, within the window.

# %%
import zlib

import numpy as np

from wslab.lab import ContentPanel, load_trace


def entropy_bits_per_byte(data: bytes) -> float:
    """Shannon entropy of the byte histogram: -sum p log2 p."""
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
    p = counts[counts > 0] / len(data)
    return float(-(p * np.log2(p)).sum())


samples = {
    "JSON": b'{"type":"trade","symbol":"BTC-USD","price":43127.5,"size":0.0125,"side":"buy"}',
    "English": b"the quick brown fox jumps over the lazy dog while the cat sleeps in the sun",
    "random": np.random.default_rng(1).bytes(80),
}
for name, data in samples.items():
    packed = zlib.compress(data, 6)[2:-4]  # raw deflate: drop the zlib header and checksum
    print(f"{name:8} {len(data):3} B  entropy {entropy_bits_per_byte(data):.2f} bits/B  "
          f"-> {len(packed):3} B deflated")

# %% [markdown]
# (Eighty random bytes cannot show more than log2(80) ≈ 6.3 bits per byte of entropy; a
# longer random buffer approaches the full 8.)
#
# A single short message barely compresses even when it is tidy JSON: there is not enough
# text for LZ77 to find repeats, and deflate adds its own few bytes of block header.
# Random bytes *grow*. This is why servers such as Node's `ws` default to a compression
# threshold (1 KiB) — but see below for why that advice changes with context takeover.
#
# ## The third reason: the messages before it
#
# permessage-deflate (RFC 7692) lets a connection keep one compressor for all its messages:
# **context takeover**. The LZ77 window then still holds the previous messages, so the
# second trade message can refer back to the keys, the symbol and most of the price of the
# first. Small, repetitive messages compress well *together* even though each one alone
# does not.

# %%
trades = [
    b'{"type":"trade","symbol":"BTC-USD","price":43127.5,"size":0.0125,"side":"buy"}',
    b'{"type":"trade","symbol":"BTC-USD","price":43127.0,"size":0.2000,"side":"sell"}',
    b'{"type":"trade","symbol":"BTC-USD","price":43126.5,"size":0.0310,"side":"sell"}',
]
shared = zlib.compressobj(6, zlib.DEFLATED, -12, 5)  # one stream, 12-bit window, memLevel 5
for i, msg in enumerate(trades):
    alone = zlib.compressobj(6, zlib.DEFLATED, -12, 5)
    fresh = alone.compress(msg) + alone.flush(zlib.Z_SYNC_FLUSH)
    kept = shared.compress(msg) + shared.flush(zlib.Z_SYNC_FLUSH)
    # RFC 7692 strips the 4-byte 00 00 ff ff tail each sync flush leaves.
    print(f"message {i}: {len(msg)} B -> alone {len(fresh) - 4} B, "
          f"with context {len(kept) - 4} B")

# %% [markdown]
# The analysis in `wslab.analysis` measures exactly this on a whole trace, per message type
# and direction: entropy, repetition within a message and across messages, the share of
# JSON, and the ratio that deflate (with and without context), zstd and zstd with a
# trained dictionary actually reach. It then advises per type: compress, skip, or use a
# dictionary.
#
# ## The panel
#
# The sliders set the deflate settings the ratios are measured at (window bits, memLevel,
# level; they recompute on release). Pick a message type to list its messages.
#
# * Left: ratio per type (compressed ÷ original, lower is better) under four codecs.
# * Right: each type placed by entropy and repetition; the marker's area is its share of
#   the bytes. Bottom-right types (low entropy, high repetition) are the ones to compress.

# %%
panel = ContentPanel(load_trace("mixed"))
panel

# %% [markdown]
# Things to look for in the `mixed` trace (chat, market data, telemetry and orders on one
# connection):
#
# * the market depth updates: most of the bytes, and a ratio of about 0.3 with context
#   takeover against about 0.7 without;
# * the telemetry batches and market snapshots: large and repetitive, ratios far below
#   0.5 even alone;
# * pings, pongs and acks: tiny; alone they *grow* (ratios above 1, zstd per message up to
#   1.7), with context some shrink and the market pings still do not.
#
# The same analysis is available without widgets, as a table:

# %%
panel.result.per_type[["type", "dir", "messages", "mean_size", "entropy_bits_per_byte",
                        "repetition", "deflate_ratio", "deflate_ratio_no_context",
                        "recommendation"]].round(3)

# %% [markdown]
# ## Exercises
#
# 1. Make a panel for the binary sensor trace, `ContentPanel(load_trace("sensor"))`, and
#    pick `sensor.frame`. Why does its deflate ratio stay near 0.9 even with context
#    takeover, and above 1 without? What would you configure for it?
# 2. Compare `deflate_ratio` with `deflate_ratio_no_context` for the small types (pings,
#    acks, typing notifications). Which setting wins, and what does that mean for a size
#    threshold like Node `ws`'s 1 KiB default?
# 3. Move the window-bits slider from 15 down to 9. Which types lose the most, and why
#    those?
# 4. A chat message is 100 bytes of JSON. Estimate its ratio alone and with context from
#    the first cell's reasoning, then check in the panel with `chat.message`.

# %% [markdown] tags=["answer"]
# <details class="wslab-answer"><summary><b>Answers</b> (click to open)</summary>
#
# 1. The sensor frames are 76 bytes of binary measurements: entropy about 5.3 bits per
#    byte, close to the most 76 bytes can show (log2 76 ≈ 6.2, see the note after the
#    first cell), and almost nothing repeats (0.3 % of the bytes). Neither LZ77 nor Huffman
#    coding has much to work with: with context takeover deflate saves about 12 % (ratio
#    ≈ 0.88), alone the frames grow (≈ 1.07). Whether 12 % is worth the CPU depends on the
#    link (notebook 03, exercise 5); if not, skip compression for them with a per-type
#    rule, or `compression.policy: never` on such a service. uWebSockets' advice "no
#    compression for binary" says the same. `adaptive` keeps compressing them, since they
#    do shrink a little.
# 2. With context takeover the small types compress far better (typically 0.5–0.8
#    instead of 0.9–1.15: alone, many *grow*), because the previous messages in the window
#    hold their keys. Market ticks gain the most (about 0.2–0.3 instead of 0.7–0.9). A size
#    threshold therefore throws away savings when context takeover is on — which is why
#    `ws` ignores its threshold while context takeover is enabled (ws #1950).
# 3. The large repetitive types (market snapshots, telemetry batches) lose the most: their
#    repeats lie further back than 512 bytes, outside a 9-bit window. Small messages lose
#    less, as long as the window still covers the previous message or two.
# 4. Alone: about 0.85 (too short to find many repeats, and deflate's block overhead
#    weighs on 100–200 bytes). With context: about 0.5, because keys, room and user names
#    repeat from earlier messages. (Figures from the `mixed` trace; yours may differ.)
#
# </details>

# %% tags=["answer"] jupyter={"source_hidden": true}
from wslab.lab import answer_check


def check():
    table = panel.result.per_type.set_index(["type", "dir"])
    return table[["deflate_ratio", "deflate_ratio_no_context", "entropy_bits_per_byte"]].round(3)


answer_check(check, "ratios with and without context, per type")
