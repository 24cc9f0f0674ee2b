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
# # 02 · Frame batching: fewer frames, at the price of waiting
#
# ## What one frame costs
#
# Every WebSocket message travels in (at least) one frame, and RFC 6455 §5.2 gives each
# frame a header:
#
# ```
#  byte 0: FIN | RSV1 RSV2 RSV3 | opcode (4 bits)     0x81 = final text frame
#  byte 1: MASK | payload length (7 bits)             0..125 = the length itself
#          126 -> 2 more bytes hold the length (up to 65,535)
#          127 -> 8 more bytes hold the length
#  4 bytes masking key, only on frames from client to server
# ```
#
# So a frame costs 2 bytes of header for payloads up to 125 bytes, 4 up to 64 KiB, 10
# beyond, plus 4 on every client-to-server frame. Small — but the frame is not all. Each
# write becomes at least one **TCP segment**, and each segment carries its own IPv4 header
# (20 bytes), TCP header (20 bytes) and, on Linux by default, the TCP timestamp option
# (12 bytes): 52 bytes, before any Ethernet or Wi-Fi framing. A segment holds at most one
# MSS of data (1,448 bytes on a 1,500-byte-MTU link with timestamps).
#
# Add the CPU: each frame is a `send` system call, a wake-up of the peer, and with
# permessage-deflate a sync flush of the compressor (which ends a deflate block and costs
# a few bytes of its own).

# %%
from wslab.config import TuningConfig
from wslab.lab import BatchingPanel, load_trace
from wslab.wire import ETHERNET_MSS, TCP_IP_HEADER_BYTES, ws_header_bytes

for size in (20, 125, 126, 1_000, 65_535, 65_536):
    s2c = ws_header_bytes(size, masked=False)
    c2s = ws_header_bytes(size, masked=True)
    print(f"payload {size:6,} B: header {s2c:2} B server->client, {c2s:2} B client->server")
print(f"TCP/IP headers per segment: {TCP_IP_HEADER_BYTES} B; MSS on Ethernet: {ETHERNET_MSS} B")

# %% [markdown]
# A 40-byte price tick sent alone therefore costs 2 + 52 = 54 bytes of headers for 40
# bytes of content: more than half of what crosses the wire is overhead. That is the case
# for **batching**: hold messages for a short while and send several in one frame.
#
# ## What one frame holding twenty messages costs
#
# Several messages in one frame need an **envelope** so the receiver can split them again:
# a JSON array (`[m1,m2,...]`), newline-delimited JSON, or length-prefixed binary. The
# envelope is an application-level agreement — the client code must unpack it — and it
# costs a few bytes (brackets and commas). wslab picks one that fits the trace
# (`batching.envelope: auto`).

# %%
tick = 40
for n in (1, 5, 20):
    body = n * tick + (n + 1 if n > 1 else 0)  # JSON array: brackets and commas
    frame = body + ws_header_bytes(body, masked=False)
    segments = -(-frame // ETHERNET_MSS)
    overhead = frame + segments * TCP_IP_HEADER_BYTES - n * tick
    print(f"{n:2} messages per frame: {overhead / n:5.1f} B of overhead per message")

# %% [markdown]
# ## What batching trades
#
# The price is **latency**: a message waits in the batch until the batch is flushed. The
# strategies differ in what ends the wait:
#
# | strategy | flushes when | worst added wait |
# |---|---|---|
# | `none` | at once | 0 |
# | `time` | `interval_ms` after the batch's first message | the interval |
# | `size` / `count` | the batch reaches `max_bytes` / `max_messages`, or its first message has waited `max_hold_ms` | `max_hold_ms` (100 ms by default) |
# | `hybrid` | whichever of time, size or count comes first | the interval |
# | `priority` | per class: `critical` at once, `normal` and `background` after their own deadlines | the class's deadline |
#
# Batching pays in proportion to the message *rate* on one connection: at 2 messages a
# second a 16 ms window almost never catches two messages, while at 100 a second it
# catches a few each time. That is why Centrifugo notes that merging messages into frames
# helps a connection that receives many messages, not a broadcast to many idle ones.
#
# Batching also helps compression: one frame is one compressor flush, and the messages in a
# batch share a deflate block.
#
# ## The panel
#
# The market trace sends about 35 messages a second, most of them small depth updates,
# ticks and trades. The panel starts with a 16 ms `time` window on a 4G link.
#
# * **Left**: the latency distribution, one curve per priority class, and the same trace
#   sent unbatched (dashed). The horizontal gap between the curves is what batching adds.
# * **Right**: bytes per message on the wire, split into payload, WebSocket header and
#   TCP/IP headers, unbatched against this config.
# * **Above**: frames and segments per second, messages per frame, the latency percentiles.
#
# `message rate ×` replays the same messages faster or slower (×4 = four times as many
# messages per second), to see how the same window behaves on a busier connection.

# %%
trace = load_trace("market")
start = TuningConfig().updated({"batching.strategy": "time", "batching.interval_ms": 16,
                                "link.profile": "4g"})
panel = BatchingPanel(trace, start)
panel

# %% [markdown]
# The numbers behind the figures are also available directly, and `panel.set(...)` moves
# the controls from code (handy for a workshop's projector):

# %%
r = panel.result
print(f"frames/s {r.cost.per_second(r.cost.frames):.1f} (unbatched "
      f"{r.baseline.per_second(r.baseline.frames):.1f}); latency p50 "
      f"{r.cost.latency['p50']:.1f} ms (unbatched {r.baseline.latency['p50']:.1f} ms)")
panel.set(interval_ms=5)
print(f"at 5 ms: {panel.result.cost.per_second(panel.result.cost.frames):.1f} frames/s")

# %% [markdown]
# ## Exercises
#
# 1. By hand: a client sends a 40-byte message unbatched. How many bytes cross the wire,
#    headers included (ignore Ethernet)? And a server sending 200 bytes?
# 2. In the panel, find roughly the smallest interval that halves frames per second on the
#    market trace. What does it add to the median latency?
# 3. Set the rate to ×8 and keep the interval at 16 ms. What happens to messages per frame
#    and to the header overhead per message, and why?
# 4. The market feed has no `critical` messages, so take a trace that does: `mixed` carries
#    an order channel beside market data, chat and telemetry. Make a second panel,
#    `BatchingPanel(load_trace("mixed"), start)`, switch the strategy to `priority`, with the
#    critical deadline at 0 ms, normal at 50 ms and background at 1,000 ms. Read the three
#    latency curves. Which messages would you put in each class in a trading front end?
# 5. Switch the link from `4g` to `loopback` and then to `slow-3g`. On which link is a 16 ms
#    window a large share of the latency, and on which is it noise?

# %% [markdown] tags=["answer"]
# <details class="wslab-answer"><summary><b>Answers</b> (click to open)</summary>
#
# 1. Client to server: 40 + 2 (header) + 4 (mask) + 52 (TCP/IP) = 98 bytes, of which 58 are
#    overhead. Server to client, 200 bytes: 200 + 4 (126..65,535 needs the 16-bit length)
#    plus 52 = 256 bytes.
# 2. On the market trace a window of a few milliseconds already halves the frames (the
#    updates come in bursts); 16 ms cuts them to about a third. The median latency grows by
#    a little less than the window, since the first message of a batch waits the full
#    interval and the later ones less. The check below sweeps it (press *Compute*).
# 3. More messages arrive within each window, so messages per frame rises and the fixed
#    header cost is shared by more messages: overhead per message falls. The added latency
#    stays bounded by the interval. Batching pays most on busy connections.
# 4. The critical curve (the orders) sits on the unbatched one (no wait); normal (market
#    data, chat messages) is shifted by up to 50 ms; background (typing notices, receipts,
#    telemetry) by up to a second. Orders and fills are critical; quotes and depth updates
#    normal; news, statistics and heartbeats background.
# 5. On loopback the link adds microseconds, so a 16 ms window is nearly all of the
#    latency. On 4G (60 ms round trip) it is a third or so; on slow-3g (2 s round trip and
#    400 kbit/s) it disappears in the noise, while the bytes saved shorten the queue.
#
# </details>

# %% tags=["answer"] jupyter={"source_hidden": true}
from wslab.lab import answer_check
from wslab.sim import simulate


def check() -> None:
    for interval in (0, 2, 5, 10, 16, 50):
        cfg = panel.config.updated({"batching.strategy": "time",
                                    "batching.interval_ms": interval})
        s = simulate(trace, cfg, verify=False).summary
        print(f"interval {interval:3} ms: {s['frames'] / trace.duration:6.1f} frames/s, "
              f"p50 {s['latency_ms']['p50']:5.1f} ms")


answer_check(check, "frames per second and median latency per interval")
