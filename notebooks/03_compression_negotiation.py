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
# # 03 · Compression: negotiating permessage-deflate, and what it costs
#
# WebSocket compression is an *extension*: both ends must agree to it during the opening
# handshake, and they agree on parameters that decide how well it compresses and how much
# memory every connection pins. The extension almost everyone uses is **permessage-deflate**
# (RFC 7692). This notebook walks through the negotiation with real header values, looks at
# the bytes of a compressed frame, explains why *context takeover* is the parameter that
# matters most, and then lets you tune all of it on a trace.
#
# ## 1. The offer and the answer
#
# The client lists what it is willing to do in its `Sec-WebSocket-Extensions` request
# header, one or more offers in order of preference, separated by commas. Each offer may
# carry four parameters:
#
# | parameter | in an offer, the client says | in the answer, the server says |
# |---|---|---|
# | `server_max_window_bits=N` | "please compress with at most a 2^N-byte window" | "I will use at most 2^N" (must be ≤ what was asked) |
# | `client_max_window_bits[=N]` | "I can limit my window; (I will use at most 2^N)" | "limit yours to 2^N" (only if the client offered the parameter) |
# | `server_no_context_takeover` | "please reset your compressor after each message" | "I will" (must be echoed if asked) |
# | `client_no_context_takeover` | "I will reset mine" (a hint) | "reset yours after each message" |
#
# The server accepts **at most one** offer (the first it can satisfy) and answers with the
# parameters that now bind both sides, or leaves the extension out and the connection runs
# uncompressed. An offer the server cannot satisfy is declined, not an error; an *answer*
# the client did not allow fails the connection.
#
# wslab implements these rules in `wslab.codecs.negotiation`, one table row at a time.
# Here is a browser-like client offering two alternatives to a server configured like the
# python-websockets default (12-bit windows):

# %%
from wslab.codecs import (
    DeflateEncoder,
    DeflateParams,
    ServerDeflateLimits,
    client_check_response,
    deflate_memory_bytes,
    parse_extensions,
    server_accept,
)

offer = ("permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
         "permessage-deflate; client_max_window_bits")
limits = ServerDeflateLimits(server_max_window_bits=12, client_max_window_bits=12)
declined: list[str] = []
answer = server_accept(offer, limits, declined)
assert answer is not None
response, agreed = answer
print("client offers:   Sec-WebSocket-Extensions:", offer)
print("server answers:  Sec-WebSocket-Extensions:", response.header())
print("declined offers:", declined or "none")
first_offer = DeflateParams.from_params(parse_extensions(offer)[0].params)
print("client concludes:", client_check_response(first_offer, response.header()))

# %% [markdown]
# Read the answer line by line: the client asked the server for a 10-bit window, so the
# server *must* answer `server_max_window_bits` with 10 or less — it answers 10. The client
# said it can limit its own window (`client_max_window_bits` without a value), and the
# server, configured for 12, tells it to use 12. Neither side asked for
# `no_context_takeover`, so both keep their compressor between messages.
#
# ## 2. The bytes of a compressed message
#
# After the handshake a compressed message is sent with the **RSV1** bit of its first
# frame set (RSV1 is otherwise reserved and must be 0). The payload is raw DEFLATE data,
# compressed and then flushed with `Z_SYNC_FLUSH`, which ends with the four bytes
# `00 00 ff ff`; RFC 7692 removes those four bytes on the wire and the receiver appends
# them back before inflating. The RFC's own example is the text message "Hello":

# %%
encoder = DeflateEncoder(window_bits=15, mem_level=8, level=-1)  # context kept
for attempt in (1, 2):
    payload = encoder.encode(b"Hello")
    first_byte = 0x80 | 0x40 | 0x1  # FIN, RSV1 (compressed), opcode 1 (text)
    frame = bytes([first_byte, len(payload)]) + payload
    print(f"'Hello' #{attempt}: frame {frame.hex(' ')}  ({len(frame)} bytes for 5)")

# %% [markdown]
# `c1` is FIN + RSV1 + text; `07` the payload length; `f2 48 cd c9 c9 07 00` the deflated
# "Hello" — exactly the bytes in RFC 7692 §7.2.3.1. The second "Hello" shrinks to 5 bytes
# of payload (`f2 00 11 00 00`, §7.2.3.2): it is a back-reference to the first, which is
# still in the compressor's window. That is **context takeover**.
#
# ## 3. Why context takeover matters — and what it costs
#
# With context takeover each connection keeps a compressor (and the peer a decompressor)
# alive for its whole life, so that every message can refer back to the previous ones.
# WebSocket messages are usually small and similar (the same JSON keys again and again), so
# most of what a message could gain comes from the messages before it, not from inside
# itself: notebook 01 showed small JSON going from ~0.9 alone to ~0.5 with context.
#
# The cost is memory, held per connection whether it is busy or idle. zlib documents it:
# a compressor takes `2^(windowBits+2) + 2^(memLevel+9)` bytes and a decompressor
# `2^windowBits`. The window bits (LZ77 history) bound how far back a match can reach;
# memLevel sizes the hash table used to find matches (and an internal buffer).

# %%
print("window/mem   compressor + decompressor (zlib formula)")
for w, m in ((15, 8), (14, 7), (13, 6), (12, 5), (11, 4), (10, 3), (9, 2)):
    print(f"   {w}/{m}      {deflate_memory_bytes(w, m) / 1024:6.0f} KiB")

# %% [markdown]
# python-websockets measured 64 KiB per connection at its 12/5 default (against 14 KiB with
# compression off) and 316 KiB at 15/8: the formula covers the big buffers, the rest is
# fixed state and allocator overhead. At 10,000 connections, 12/5 instead of 15/8 is the
# difference between ~0.6 GiB and ~3 GiB. With `no_context_takeover` an implementation may
# free or share the compressor between messages, saving that memory — and most of the
# ratio. Node's `ws` turns compression off by default for exactly this CPU and memory, and
# uWebSockets offers a shared compressor with no sliding window at all.
#
# There is one more axis, the link: on loopback compression can only add CPU time; on a
# slow link every byte saved is queueing and serialisation time saved.
#
# ## 4. Tune it
#
# The panel replays the chat trace through the real zlib (or zstd) with your settings on a
# 4G link and compares it with the same trace sent uncompressed: compression ratio, CPU
# per message (measured on this machine), codec memory per connection (zlib's formula, as
# above), and the latency distribution on the link. **Compute heatmap** measures the ratio
# of this trace at every window-bits × memLevel pair (a background job with a progress bar
# and a Cancel button; the notebook stays usable meanwhile).
#
# Whether a frame is compressed at all is the config's **policy**, decided frame by frame:
# `always` (the default), `threshold` (frames under `threshold_bytes` go uncompressed: Node
# `ws`'s rule; the slider sets it) or `adaptive` (tick the box: a message type whose frames
# stop shrinking goes uncompressed and is probed now and then; a threshold, if set, is its
# size floor). With `threshold` or `adaptive` a second table sets the run beside the same
# config with policy `always` — bytes and compress CPU per message, and the difference —
# and says how many frames went uncompressed, of which message types.

# %%
from wslab.lab import CompressionPanel, load_trace

panel = CompressionPanel(load_trace("chat"))
panel

# %% [markdown]
# From code, the same panel answers questions directly:

# %%
for takeover in (True, False):
    panel.set(context_takeover=takeover)
    print(f"context takeover {takeover!s:5}: ratio {panel.result.ratio:.3f}, "
          f"{panel.result.cpu_us:.1f} us/msg, {panel.result.memory_kib:.0f} KiB/connection")
panel.set(context_takeover=True)

# %% [markdown]
# ## 5. Probe a server you already run
#
# What does a server *really* negotiate, and does it do what it answered? `wslab probe URL`
# (here `wslab.lab.probe`) offers every parameter alone, every window from 8 to 15 bits
# and wslab's zstd extension, each on its own connection, checks every answer against
# RFC 7692, then watches the server: does a repeated message come back smaller (context
# takeover in fact), from which size on are messages compressed, how fast are pings
# answered. The cell starts a python-websockets echo server whose settings the probe is not
# told, and finds them out:

# %%
from wslab.lab import echo_server, probe

with echo_server(server_max_window_bits=11, server_no_context_takeover=True) as url:
    found = probe(url)
found

# %% [markdown]
# How to read it. The first table is what the server turned out to be configured with: with
# no wish from the client it compresses with an 11-bit window, as configured, and it resets
# that window after every message even when nobody asked (`server_no_context_takeover`
# forced). The server-window row shows its answer to each window offered: never more than
# offered, never more than its own 11 (8 is declined: zlib has no 8-bit window). The second
# table is what it does: the repeated message comes back no smaller the second time, the
# reset in fact. The last lists every offer with the answer and what was agreed; a flag
# there is an answer that breaks RFC 7692, or one a zlib client cannot honour.
#
# To audit your own server, give its URL: `probe("ws://127.0.0.1:PORT/path")` here (loopback
# only), or `wslab probe ws://127.0.0.1:PORT/` in a terminal (`--allow-remote` for a server
# you run elsewhere, `--trace T` for your own messages, `--json` for a file). Two slower
# probes, idle behaviour (server pings, pong timeout) and the largest accepted message, are
# left out here; `probe(url, skip=frozenset())` runs them too.

# %% [markdown]
# ## Exercises
#
# 1. A client offers `permessage-deflate; server_no_context_takeover`. A server that
#    supports the parameter accepts. What must its answer contain, and what does the server
#    lose by agreeing?
# 2. Compute the heatmap. Where is the knee: from which window size on does a larger window
#    stop paying on the chat trace? Does memLevel matter as much as window bits?
# 3. Your server holds 20,000 connections. Using the formula above, how much codec memory
#    do 15/8 and 12/5 need? What does the heatmap say you gain in ratio for it?
# 4. Switch the link to `loopback` and compare the latency curves with and without
#    compression. Then `slow-3g`. When does compression lower latency?
# 5. Make a panel for the binary `sensor` trace, `CompressionPanel(load_trace("sensor"))`.
#    Predict first: with *adaptive* ticked, does the selector stop compressing the binary
#    sensor frames? Then check the ratio and CPU per message.
# 6. Back on chat, leave *adaptive* unticked and set the threshold to 1,024 bytes (Node
#    `ws`'s default). What does the policy table say against `always`? Then try 256.
# 7. Restart the echo server of section 5 with `server_max_window_bits=9` and without
#    `server_no_context_takeover`. Predict the probe's two first tables before you run it.

# %% [markdown] tags=["answer"]
# <details class="wslab-answer"><summary><b>Answers</b> (click to open)</summary>
#
# 1. The answer must echo `server_no_context_takeover` (RFC 7692 §7.1.1.1): a server that
#    accepts the offer may not keep its context. It loses the cross-message matches —
#    typically the larger share of the savings on small JSON messages — and gains the
#    memory back between messages.
# 2. On chat (first 5,000 messages) the ratio falls from about 0.49 at 9 bits to 0.26 at
#    12 and 0.20 at 15. Each extra bit helps less than the one before: 9 -> 10 removes a
#    quarter of the compressed bytes, 14 -> 15 only a few per cent, while each bit doubles
#    the window memory. memLevel barely matters on this trace (the third decimal moves):
#    the messages are short, so the hash table is rarely the limit.
# 3. 15/8: 2^17 + 2^17 + 2^15 = 288 KiB per connection by the formula, ≈5.5 GiB for 20,000;
#    12/5: 36 KiB, ≈0.7 GiB (python-websockets measured 316 vs 64 KiB with overheads). On
#    chat the heatmap shows about 0.26 -> 0.20: a fifth fewer compressed bytes for eight
#    times the memory. Worth it only when bandwidth is dearer than memory (mobile users on
#    metered links, say); otherwise 12/5 is the better trade.
# 4. On loopback the link takes microseconds: compression only adds its CPU time, so the
#    compressed curve is (slightly) to the right. On slow-3g serialisation of every byte
#    costs time (400 kbit/s is 50 bytes per millisecond), so smaller messages arrive
#    sooner and the compressed curve moves left of the uncompressed one.
# 5. Hardly: on this trace the sensor frames still shrink by about 13 % (ratio ≈ 0.87),
#    so the selector keeps compressing them. The policy table shows a few dozen of the
#    6,000 frames sent uncompressed (small status messages and a few frames that did not
#    pay), and bytes and CPU per message barely move against `always`.
#    *Adaptive* means "skip what does not pay", not "skip binary". Whether 13 % is worth
#    ~6 µs of CPU per message is a judgment about the link: on slow-3g it is, on a LAN
#    it is not — a case for `policy: never` on such a service, or for a threshold.
# 6. At 1,024 bytes no chat message qualifies: all frames go uncompressed, and the bytes
#    per message grow to about 3.7 times those of `always` (≈ 112 against ≈ 31 B) while
#    the compress CPU drops to zero. At 256 only a few dozen large messages are
#    compressed, and the bytes are still ≈ 3.6 times. A size threshold is advice for
#    compressors *without* context takeover, where a small message alone does not shrink;
#    with a kept window even short chat messages compress to a quarter — which is why `ws`
#    ignores its threshold while context takeover is on (ws #1950).
# 7. The server now compresses with 9 bits when the client asks for no window, and answers
#    every larger offer with 9 (an offer of 9 gets 9, 8 is still declined); it no longer
#    resets its window unasked, and the repeated message comes back smaller the second
#    time: the context is kept.
#
# </details>

# %% tags=["answer"] jupyter={"source_hidden": true}
from wslab.lab import answer_check


def check() -> None:
    for w, m in ((15, 8), (12, 5)):
        per_conn = deflate_memory_bytes(w, m)
        print(f"{w}/{m}: {per_conn / 1024:.0f} KiB per connection, "
              f"{20_000 * per_conn / 2**30:.2f} GiB for 20,000")


answer_check(check, "codec memory for 20,000 connections")
