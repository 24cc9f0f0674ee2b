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
# # 04 · Connection scaling: what a connection costs, and how many one host can hold
#
# An HTTP request comes and goes; a WebSocket stays. A chat or trading screen keeps its
# connection open for hours, mostly silent, and the server pays for every one of them the
# whole time, whether a message flows or not. So the scaling question for WebSockets is not
# "how many requests per second" but "how many idle connections can I hold, what does each
# one pin, and what happens when a message has to reach all of them". This notebook adds up
# the cost of one connection, shows the limits a single host hits first, explains how
# messages cross worker processes, and what a server should do when more clients arrive
# than it can take. Then a panel estimates all of it for your numbers and measures it live.
#
# ## 1. What one connection costs
#
# **A file descriptor.** Every socket is an open file. Linux caps open files per process
# (`RLIMIT_NOFILE`): a soft limit the process may raise itself, up to a hard limit only root
# can lift. On this machine the hard limit is 20,000, so one process can never hold 20,000
# connections: it also needs descriptors for its libraries, logs and pipes. When a test
# client runs on the same host, each loopback connection costs **two** descriptors on the
# machine, one for each end.
#
# **Process memory.** The library keeps an object per connection: the protocol state
# machine, read and write buffers, the asyncio transport, a task or two. The python-websockets
# documentation puts this at about **14 KiB** per connection with compression off. With
# its default permessage-deflate it measured about **64 KiB**: the compressor and the
# decompressor each keep their own window and tables for as long as the connection lives
# (that is what context takeover means; see notebook 03). zlib documents how big they are:
#
# - compressor: `2^(windowBits + 2) + 2^(memLevel + 9)` bytes;
# - decompressor: `2^windowBits` bytes;
#
# plus a few KiB of fixed state that the formula leaves out. Our estimate of process memory
# per connection is therefore *14 KiB + the formula*:

# %%
from wslab.codecs.deflate import deflate_memory_bytes

BASE_KIB = 14  # python-websockets docs, compression off
for label, (wbits, mem) in {"websockets default": (12, 5), "largest window": (15, 8),
                            "smallest window": (9, 1)}.items():
    codec = deflate_memory_bytes(wbits, mem) / 1024
    print(f"{label:>18} {wbits}/{mem}: {codec:5.0f} KiB of zlib state -> "
          f"~{BASE_KIB + codec:3.0f} KiB per connection, "
          f"{10_000 * (BASE_KIB + codec) / 2**20:.2f} GiB for 10,000")

# %% [markdown]
# The default comes out at 50 KiB against the 64 KiB measured: the gap is zlib's fixed
# state and the allocator's rounding. The shape is what matters — the window dominates, and
# each extra window bit doubles it.
#
# **Kernel memory, which RSS does not show.** The TCP control block, socket structures and
# any buffered bytes belong to the kernel, not to the process, so they never appear in the
# server's resident set size. An idle socket with empty buffers costs a few KiB (Centrifugo
# reports about 4 KB per socket); a socket with unread or unsent data can hold much more, up
# to the limits in `tcp_rmem` / `tcp_wmem` (minimum, default, maximum bytes per socket). So
# a memory figure measured as RSS growth divided by connections is a *lower* bound on what
# a connection costs the machine.

# %%
from pathlib import Path

for name in ("tcp_rmem", "tcp_wmem"):
    path = Path("/proc/sys/net/ipv4") / name
    print(name, path.read_text().strip() if path.exists() else "(not readable here)")

# %% [markdown]
# ## 2. Heartbeats, and the proxy that closes quiet connections
#
# A TCP connection whose peer vanished (a phone lost its signal, a laptop went to sleep)
# can look open for hours: nothing is sent, so nothing fails. The server keeps paying for
# it. A **heartbeat** fixes that: every `heartbeat_interval_s` the server sends a Ping
# frame, and if no Pong comes back within `heartbeat_timeout_s` it closes the connection.
# python-websockets does this by default every 20 s with a 20 s timeout.
#
# Heartbeats also keep proxies from cutting the connection. nginx treats an upgraded
# WebSocket like any proxied response: if nothing is read from the backend for
# `proxy_read_timeout` (60 s by default), it closes the connection. A chat room that is
# quiet for a minute loses every client — unless pings cross the proxy more often than
# that. So the rule is: ping interval well under every idle timeout on the path (nginx,
# load balancers, NATs), or raise those timeouts (wslab's nginx export sets
# `proxy_read_timeout` to ping interval + pong timeout + 10 s).
#
# Pings are cheap but not free: 10,000 connections pinged every 20 s is 500 pings and 500
# pongs a second, each a tiny frame in its own TCP segment, and 500 wake-ups of the server.

# %%
PING_WIRE_BYTES = 6 + 10 + 2 * 52  # ping + masked pong, each in a TCP/IP segment
for interval in (5, 20, 60):
    per_s = 10_000 / interval
    print(f"ping every {interval:>2} s: {per_s:6,.0f} pings/s, "
          f"{per_s * PING_WIRE_BYTES / 1024:6.1f} KiB/s for 10,000 connections")

# %% [markdown]
# ## 3. Why one host runs out of ports, and how 127.0.0.x fixes it
#
# A TCP connection is named by four numbers: source address, source port, destination
# address, destination port. When a load generator opens many connections to *one* server
# address and port from *one* source address, only the source port can differ — and the
# kernel hands those out from the ephemeral range, 32768–60999 here: **28,232 ports**.
# Past that, `connect()` fails with "address not available", however much memory is left.
#
# The way out is another source address. The whole 127.0.0.0/8 block is loopback, so
# 127.0.0.2, 127.0.0.3, ... are all this machine, and each brings its own 28k ports. Load
# tools do exactly this (wrk's `-b 127.0.0.1/28`, Tsung's IP lists, uWebSockets' million-
# connection test). The scale layer plans it for you, together with the number of client
# processes the file limit requires:

# %%
from wslab.harness.cluster import plan_load

for n, workers in ((10_000, 1), (60_000, 4)):
    plan = plan_load(n, workers)
    print(f"{n:,} connections, {workers} worker(s): {plan.client_processes} client "
          f"process(es), source addresses {plan.source_addresses}, "
          f"problems: {plan.problems or 'none'}")
print(plan_load(50_000, 1).problems[0])

# %% [markdown]
# ## 4. Fan-out across workers through Redis
#
# One Python process runs on one core. To use the others you start several **worker**
# processes behind one port: the kernel spreads new connections over them
# (`SO_REUSEPORT`), or nginx does (`hash $remote_addr consistent`). Now a broadcast has a
# problem: the worker that wants to send it holds only its own share of the clients.
#
# The usual answer is a **pub/sub broker**. Every worker subscribes to a channel in Redis;
# to broadcast, a worker publishes the message *once* to Redis, Redis delivers it to every
# worker, and each worker sends it to its own clients. Socket.IO's Redis adapter and most
# chat servers work like this. A direct message to one connection needs one more piece:
# a **registry** (also in Redis) of which worker holds which connection, cleaned up when
# connections close. With a single worker none of this is needed, and wslab uses an
# in-memory broker behind the same interface — which is also why the memory broker cannot
# serve two workers: each would only hear itself.
#
# Fan-out latency is measured from the worker's hand-off to each client's receipt. Its
# tail grows with the number of connections: one event loop writes the message into every
# socket in turn, so the last client waits for all the writes before it.
#
# ## 5. Admission control: saying "later" instead of falling over
#
# Servers get **connection storms**: a deploy restarts a node and all its clients
# reconnect within seconds. A server that accepts everything runs out of descriptors or
# memory and fails for everyone. wslab's server admits at most `max_connections`; beyond
# that a handshake waits in a **pending queue** (at most `pending_queue` of them, each for
# at most `pending_timeout_s`) for a slot to free up, and everything else is accepted just
# long enough to be closed with code **1013, "Try Again Later"**. A client that sees 1013
# backs off and retries; the server stays healthy for the clients it already holds.
#
# ## 6. The panel
#
# `ScalingPanel` puts it together. The upper half is an **estimate that runs nothing**: as
# you move connections, workers, heartbeat, `max_connections`, broker and compression, it
# redraws memory per connection (14 KiB + zlib's formula, beside the websockets docs'
# figures) and a bar per limit — descriptors per worker and per client process, ports per
# source address, connections per worker against `max_connections`, ping interval against
# nginx's timeout — red past 100 %. Problems that would stop a run are listed in words.
#
# The lower half **measures**. *Live run* starts real worker and client processes on
# loopback with the panel's settings (`wslab.harness.scale.run_scale`): it ramps up the
# connections, idles with heartbeats, broadcasts, and plots the ramp, the fan-out latency,
# and the measured memory per connection beside the estimate. *Storm* sends
# `storm_factor × max_connections` clients at one worker (`run_storm`) and counts who was
# held, who waited, and who got 1013. *Processing* is about what clients send: it floods
# one live server with the bundled traces' client messages, which its processing queue
# parses and sums per message type, first in batches of one type (up to the panel's batch
# size), then one message per handler call, as `wslab serve --processing batched` and
# `--processing per-message` do, and shows messages per second and wait + handling latency
# side by side. All three run in the background (the notebook stays usable), show
# progress, and stop every process they started when they finish or when you press Cancel.
# With `WSLAB_FAST=1` the live run is 200 connections, one worker, memory broker.

# %%
from wslab.lab import ScalingPanel

panel = ScalingPanel()
panel

# %% [markdown]
# From code, `panel.set(...)` moves the controls and `panel.result` is the estimate:

# %%
start = panel.params["connections"]
for n in (1_000, 10_000, 50_000):
    panel.set(connections=n)
    est = panel.result
    worst = max(est.usage, key=lambda u: u.percent)
    print(f"{n:>6,} connections: {est.server_mib:7,.0f} MiB, busiest limit: {worst.name} "
          f"at {worst.percent:.0f} %")
panel.set(connections=start)

# %% [markdown]
# A live run with the websockets default compression, then one with compression off
# (pressing *Live run* does the same; `await` waits for it so the next cell sees the
# result):

# %%
for variant in ("websockets default", "off"):
    panel.set(compression=variant)
    await panel.start_live()
    s = panel.live.summary
    print(f"{variant:>18}: {s['opened']} open in {s['time_to_n_s']:.2f} s, "
          f"{s['memory_per_connection_kib']:.1f} KiB/connection measured "
          f"(estimate {panel.result.per_connection_kib:.0f}), broadcast p99 "
          f"{s['broadcast_latency_ms']['p99']:.1f} ms, lost {s['lost']}")

# %% [markdown]
# A storm: 50 slots, three times as many clients, a one-second pending timeout.

# %%
panel.set(max_connections=50, pending_timeout_s=1.0, storm_factor=3.0)
await panel.start_storm()
storm = panel.storm
print(f"{storm['clients']} clients: {storm['held']} held, {storm['refused_1013']} refused "
      f"with 1013, {storm['admission'].get('queued', 0)} waited first; server alive: "
      f"{storm['worker_alive'] and storm['healthz_ok']}")
panel.set(max_connections=10_000, pending_timeout_s=10.0, compression="websockets default")

# %% [markdown]
# ## Exercises
#
# 1. Your service must hold 10,000 connections on one worker with the websockets default
#    compression. Estimate the process memory and the kernel memory. How much would turning
#    compression off save? Compare the panel's estimate with the docs' 64 and 14 KiB.
# 2. Set 50,000 connections and one worker. What does the panel say cannot run, and why?
#    How many workers does it take, and how many 127.0.0.x source addresses does the load
#    need?
# 3. Set the heartbeat to 90 s. Which bar turns red, and what would your users notice
#    behind a default nginx? Give two fixes.
# 4. After the two live runs above, compare measured memory per connection with the
#    estimate for both variants. Which one agrees better, and why can a small run not agree
#    exactly? What does neither number include?
# 5. In the storm, why did every refused client wait about a second before its 1013? What
#    would change with `pending_queue` set to 0? Why is refusing with 1013 better than
#    accepting everyone?
# 6. Set workers to 2 with the memory broker. What does the panel warn, and what would a
#    broadcast do if you ran it anyway? (If `redis-server` is installed, switch the broker to
#    redis and press *Live run*: compare the fan-out latency with one worker.)

# %% [markdown] tags=["answer"]
# <details class="wslab-answer"><summary><b>Answers</b> (click to open)</summary>
#
# 1. 14 KiB + 36 KiB of zlib state (12/5: 16 + 16 KiB compressor, 4 KiB decompressor) =
#    50 KiB per connection, ≈ 490 MiB for 10,000, plus ≈ 40 MiB of kernel socket memory
#    (4 KiB each) that RSS will not show. Compression off: 14 KiB, ≈ 140 MiB — about
#    350 MiB saved, for roughly four times the bytes on the wire (notebook 03). The docs'
#    64 and 14 KiB are measured with the fixed zlib state and allocator overhead included,
#    so our formula-based figure for deflate is the lower one.
# 2. One worker would hold 50,000 sockets but may open only 20,000 files (hard
#    `RLIMIT_NOFILE`); the scale layer asks for at least 4 workers (50,000 × 1.25 for uneven
#    spreading, over 20,000 − 256 spare descriptors each). The ports bar shows the other
#    limit: 50,000 connections over 28,232 ports per address (the planner uses 90 % of
#    them) need 2 source addresses, 127.0.0.2 and 127.0.0.3. Clients need several processes
#    too, for the same file limit.
# 3. "ping interval vs nginx proxy_read_timeout" reaches 150 %. Behind nginx's default
#    60 s timeout a quiet connection is closed before the first ping crosses it: users of
#    a quiet room are disconnected every minute and reconnect (a small storm each time).
#    Fixes: ping more often than the timeout (20–30 s is usual), or raise
#    `proxy_read_timeout` above ping interval + pong timeout (wslab's nginx export does).
# 4. Compression off agrees closely (14–15 KiB measured against 14); default deflate
#    measured 53–57 KiB against an estimate of 50 (the docs say 64): the formula leaves
#    out zlib's fixed state and malloc's overhead. With 200 connections the RSS growth is
#    a few MiB, so allocator arenas and memory the runtime grabs in chunks move the
#    figure by several KiB per connection; thousands of connections average that out.
#    Neither figure includes kernel socket memory, which is not in RSS.
# 5. With the default `pending_queue` (100) all 100 extra clients fit in the queue: each
#    waited `pending_timeout_s` (1 s) for a slot, none freed up, so each was closed with
#    1013 when its wait ran out (the admission counters show 100 queued). With a queue of
#    0 they would be refused at once: faster feedback, but no chance to take a slot freed
#    by a client that leaves. Refusing keeps the server inside its descriptor and memory
#    budget, so the 50 it holds stay healthy, and 1013 tells well-behaved clients to back
#    off and retry rather than hammer the server.
# 6. "the memory broker cannot fan out across worker processes": each worker's in-memory
#    broker lives in its own process, so a broadcast published on worker 0 would reach
#    only worker 0's clients, about half of them. The scale layer refuses to start such a
#    run. With Redis every worker hears every broadcast; fan-out latency grows by the
#    Redis round trip (a fraction of a millisecond on loopback) plus the second worker's
#    scheduling, while each worker writes to only half the sockets.
#
# </details>
