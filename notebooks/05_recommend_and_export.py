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
# # 05 · Recommend and export: from a cloud of trade-offs to a config a server accepts
#
# The earlier notebooks tuned one knob at a time: how long to hold a batch, which deflate
# window, which link. A real decision sets all of them at once, and every setting moves
# several costs in different directions. This notebook explains how wslab turns a sweep of
# many configs into one recommendation you can defend, and how that recommendation becomes
# files for the server you actually run — including what each server cannot be told.
#
# ## 1. Why there is no single best config
#
# Every config in a sweep is scored on four costs, all of which we want low:
#
# | cost | column | what drives it |
# |---|---|---|
# | bytes on the wire per message | `ws_bytes_per_msg` | compression, frame headers saved by batching |
# | p99 latency | `latency_p99_ms` | batch hold time, link serialisation, compression time |
# | CPU per message | `cpu_us_per_msg` | compressing (and the per-frame work batching saves) |
# | memory per connection | `mem_kib_per_conn` | the compressor's window and hash table, kept per connection |
#
# These pull against each other. A bigger deflate window saves bytes and costs memory.
# Holding messages for 50 ms saves header bytes and adds up to 50 ms of latency. Turning
# compression off costs no CPU and no memory and sends four times the bytes.
#
# So compare two configs A and B cost by cost. If A is at least as good as B on **every**
# cost and strictly better on at least one, A *dominates* B: nobody should ever pick B,
# whatever they care about. The configs that no other config dominates form the **Pareto
# frontier**. Every config on it is the best answer to *some* question ("least bytes
# without exceeding 64 KiB per connection", "lowest p99 at any CPU cost", ...); no config
# on it is better than another without qualification. That is why a tuning tool that
# prints one "optimal" config without asking about your constraints is hiding a choice.
#
# A toy table with two costs makes this concrete:

# %%
import pandas as pd

from wslab.tune.recommend import pareto_front

toy = pd.DataFrame({
    "config": ["A", "B", "C", "D", "E"],
    "ws_bytes_per_msg": [110, 31, 28, 24, 35],
    "latency_p99_ms": [47, 50, 95, 95, 96],
    "lost": 0, "duplicated": 0, "reordered": 0,
})
two_costs = {"ws_bytes_per_msg": "min", "latency_p99_ms": "min"}
print(pareto_front(toy, two_costs)["config"].tolist())

# %% [markdown]
# E is dominated by B (more bytes *and* more latency); C is dominated by D (same latency,
# more bytes). A, B and D survive: A is the fastest, D the smallest, B sits between. Which
# one is "best" depends on what you can afford — and that is what constraints say.
#
# ## 2. How constraints pick one point
#
# You state upper bounds — "p99 at most 250 ms", "at most 64 KiB per connection", "at
# most 50 µs of CPU per message" — and one cost to minimise (the *objective*, bytes per
# message unless you say otherwise). `wslab.tune.recommend.recommend` then:
#
# 1. drops every config that lost, duplicated or reordered a message (never eligible);
# 2. keeps the configs that meet every bound (the *feasible* set);
# 3. picks the feasible config with the lowest objective, breaking ties by the other costs
#    in order — so the chosen point is always on the frontier;
# 4. names the **binding** constraint: the one whose loosening would improve the objective
#    most, and by how much ("raise the memory limit to 140 KiB and you save another 20 %");
# 5. if nothing is feasible, says what to **relax**: the smallest loosening of one bound
#    that lets some config through (or of several bounds together, if one is not enough).
#
# An impossible request is an answer, not an error: "no config on this link gets p99
# under 30 ms; 50 ms is the floor" is worth knowing before you promise it to anyone.
#
# ## 3. The yardstick: the library defaults
#
# A recommendation is only interesting relative to what you would get by doing nothing.
# For a Python service that is the `websockets` library's own behaviour: permessage-deflate
# on, with 12-bit windows for both sides, memLevel 5, zlib's default level, context kept
# between messages, and no batching (one frame per message). The websockets documentation
# measured about 64 KiB per connection with those settings against about 14 KiB with
# compression off, and chose 12/5 because larger windows bought little ratio for a lot of
# memory (15/8 costs 316 KiB per connection for about 10 % fewer bytes; see the field
# notes in `/work/shared/FIELD-NOTES.md`).
#
# So every recommendation is reported against two baselines, on the same link: the
# **library defaults**, and **plain** (no batching, no compression — the floor for CPU and
# memory). If the chosen config saves 8 % of bytes but doubles p99 latency against the
# defaults, you see both numbers side by side and can decide whether the saving is worth
# it. Both baselines are part of the panel's sweep, so they are measured exactly like every
# other point.
#
# ## 4. What each export target can and cannot express
#
# The chosen `TuningConfig` is wslab's own vocabulary. Real servers each understand a
# subset of it, and every exported file says, in comments, what it could not express and
# what it chose instead. The main gaps:
#
# - **Batching** is never a server option: it is how the application's send path groups
#   messages (wslab's `SendPipeline`). Every target says so. Centrifugo is the nearest
#   exception: it merges queued messages into one frame by itself and can delay writes.
# - **python-websockets** (`server.py`) takes window bits, memLevel, level and context
#   takeover exactly, plus `max_size`, `max_queue`, `write_limit` and its own ping
#   heartbeat. A per-message policy (`adaptive`, `threshold`) has no option there.
# - **Node `ws`** (`ws-options.js`, `server.js`) has compression **off by default** since
#   ws 3.0 because of CPU, memory and zlib fragmentation (ws issues #1202, #1369), with a
#   reported cost of ~9–11k msg/s with deflate against ~78–81k without (ws #756). Its
#   `threshold` (1024 bytes by default) looks like wslab's threshold policy, but since ws
#   8.2.3 it is **ignored while context takeover is on** (ws #1950: with a kept window even
#   small messages compress well). A threshold only takes effect together with
#   `server_no_context_takeover`. ws also sends no pings by itself: the exported script
#   does the ping/terminate loop.
# - **uWebSockets** has no free window or memLevel knobs, only a fixed menu of presets:
#   `DEDICATED_COMPRESSOR_3KB` (window 9, memLevel 1) up to `DEDICATED_COMPRESSOR_256KB`
#   (15, 8), and `SHARED_COMPRESSOR`, one compressor for all sockets with no sliding window
#   (no context takeover, no per-socket memory). The exporter picks the nearest preset
#   (same window first) and says so; the deflate level cannot be set at all. Its own advice
#   is a shared compressor for large JSON, a small dedicated one for small JSON, none for
#   binary.
# - **Centrifugo** compresses with a fixed 15-bit window and **no context takeover**;
#   compression is off by default, level 1, no minimum size. It cannot keep a context, so
#   the cross-message savings that dominate small JSON are not available — but it
#   compresses a broadcast once for all subscribers (prepared messages: 16.5 ms to 7.7 ms
#   at 10k connections in gorilla's benchmark), which wslab's per-connection model does
#   not credit. Its pong timeout must be shorter than its ping interval.
# - **nginx** does not compress WebSocket messages at all: it passes the extension offer
#   and answer through, so the backends negotiate end to end. What it *does* need is
#   timeouts that agree with the heartbeat: an upgraded connection that is quiet for
#   `proxy_read_timeout` (60 s by default) is closed, so the exporter sets it to ping
#   interval + pong timeout + slack. It also sizes `worker_connections` (512 by default,
#   counting the upstream side too) from `max_connections`.
#
# Each exported file carries this list for its own target. For example, for the
# library defaults with a 16 ms batch, here is what Node's `ws` cannot do:

# %%
from wslab.config import TuningConfig
from wslab.tune.export import render

example = TuningConfig().updated({"batching.strategy": "hybrid",
                                  "compression.policy": "threshold",
                                  "compression.threshold_bytes": 256})
ws_options = render(example, "ws")["ws-options.js"]
start = ws_options.index("// What this target cannot express")
print(ws_options[start:ws_options.index("// The options object")])

# %% [markdown]
# ## 5. The panel
#
# `RecommendPanel` runs the whole loop on a trace. It takes the first few thousand
# messages of the chat trace, replays them 16 times faster (a busier connection), and:
#
# - **Run sweep** simulates a grid of configs (batching none / hybrid at several hold
#   times / priority × compression none / deflate at several windows, memLevels and
#   policies / zstd) on a 4G link, as a background job with a progress bar and Cancel.
#   With `WSLAB_FAST=1` the grid and the trace are small.
# - The sliders set the three upper bounds ("no limit" at the right end), **minimise** the
#   objective, and **clients** who connects. `browser` (the default) is a web page's own
#   `WebSocket`: it offers permessage-deflate only, so zstd (wslab's own `x-wslab-zstd`
#   extension) is out, and so is a `client_max_window_bits` below 15 (Firefox and Safari do
#   not offer the parameter, so they compress with a 32 KiB window the server must hold).
#   The panel leaves those configs out and says what they would have saved. `custom`
#   (clients you write yourself, for instance with wslab's client) leaves nothing out.
# - Each move re-runs `recommend` on the table (a few tens of milliseconds) and redraws the
#   scatter in place: every config in grey, the feasible ones in blue, the ones the clients
#   cannot negotiate crossed out, the frontier circled in orange, the library defaults as a
#   diamond, the chosen config as a red star, and the p99 limit as a dashed line. The
#   frontier is computed on all four costs, so some frontier points look dominated in this
#   two-cost picture: they win on CPU or memory, which the picture does not show.
# - Under the plot: the reasons in plain words (or what to relax), with what the left-out
#   configs would have bought and, when the choice uses policy `threshold` or `adaptive`,
#   what that changed against `always`; the chosen config as YAML, and a preview of every
#   export target's files. **Export all** writes them to the folder shown.
# - **Validate live** runs the best candidates for real — a websockets server and client in
#   separate processes, through the link shaper on loopback — on a short slice of the
#   trace, and plots measured beside simulated. **Write report** saves the HTML report.

# %%
from wslab.lab import RecommendPanel

panel = RecommendPanel("chat")
panel

# %% [markdown]
# Pressing **Run sweep** starts the sweep in the background; the cell below does the same
# from code and waits for it, so the cells after it see the results.

# %%
await panel.start_sweep()  # top-level await: runs on the notebook's own event loop
print(panel.result.rec.text)

# %% [markdown]
# From code, `panel.set(...)` moves the sliders. Lift the memory bound and see which
# config wins, and what it costs:

# %%
import math

for kib in (64.0, math.inf):
    panel.set(max_kib_per_conn=kib)
    chosen = panel.result.rec.chosen
    print(f"max KiB/connection {kib:>4}: window {chosen['compression.server_max_window_bits']}, "
          f"{chosen['ws_bytes_per_msg']:.1f} B/msg, {chosen['mem_kib_per_conn']:.0f} KiB")
panel.set(max_kib_per_conn=64.0)

# %% [markdown]
# An impossible request — p99 under 10 ms on a 4G link — gets advice instead of a config:

# %%
panel.set(max_p99_ms=10.0)
print(panel.result.rec.text)
panel.set(max_p99_ms=250.0)

# %% [markdown]
# The preview shows exactly what `render(config, target)` returns; `show_file` selects a
# target (and file) from code. Here is the uWebSockets behaviour for the chosen config —
# note the preset it settled on:

# %%
uws = panel.show_file("uwebsockets", "uws-behavior.hpp")
print("\n".join(line for line in uws.splitlines() if "COMPRESS" in line and "->" not in line))

# %% [markdown]
# Export every target at once, then run the chosen config live beside its simulation
# (in fast mode: one candidate, 1.5 s of trace; otherwise three candidates, 10 s each):

# %%
written = panel.export_all()
print(f"{len(written)} files under {panel.folder.value}")
await panel.start_validation()
for row in panel.live_rows:
    print(f"{row['mode']:>4}: {row['ws_bytes_per_msg']:6.1f} B/msg, "
          f"p99 {row['latency_p99_ms']:6.1f} ms, lost {row['lost']}")
print("report:", panel.write_report())

# %% [markdown]
# ## Exercises
#
# 1. In the toy table of section 1, add a config F with 26 bytes per message and 60 ms.
#    Which configs are on the frontier now? Which config does F knock off, if any?
# 2. With the default bounds (250 ms, 64 KiB, 50 µs), which constraint binds? Move it to
#    "no limit". What does the recommendation gain, and what does it pay, against the
#    library defaults?
# 3. Set the p99 bound to 30 ms. What does the panel tell you to relax, and why can no
#    config on a 4G link do better, whatever it sends?
# 4. Switch the objective to p99 latency. Which batching does the winner use, and why is
#    it not compression-free, even though compression costs CPU time?
# 5. Set the CPU bound to 2 µs. What gets chosen? Is that a config you would deploy?
# 6. Section 4 rendered a config with a 256-byte threshold for `ws`. Does ws honour that
#    threshold? What would you have to change so that it does, and what would that cost?
#    Then preview `ws` for the chosen config: what does its comment say about the policy?
# 7. Preview `nginx.conf`. How is `proxy_read_timeout` derived? What goes wrong if you
#    raise the heartbeat interval to 90 s and keep nginx's default timeout?
# 8. After **Validate live**, compare measured with simulated. Which figure agrees best,
#    and which one can you not expect to agree exactly?
# 9. Switch **clients** to `custom`, then lift the memory bound. Does zstd win now? Switch
#    back to `browser`: what do the "Left out for browser clients" lines say, and why is
#    the library-defaults diamond crossed out?

# %% [markdown] tags=["answer"]
# <details class="wslab-answer"><summary><b>Answers</b> (click to open)</summary>
#
# 1. F (26 B, 60 ms) is dominated by nobody: A and B are faster but send more bytes; D
#    sends fewer bytes but is slower. F joins the frontier (A, B, D, F); C and E, which F
#    also dominates, were off it already, so F knocks nobody off. A new point can push old
#    ones off, though: had F been 23 B at 60 ms, it would have dominated D.
# 2. Memory per connection binds: the winner under 64 KiB is a 12-bit deflate window
#    (memLevel 4, policy adaptive) with 50 ms batches, about 28 B per message on the full
#    chat slice. With no memory limit, a 15-bit window, memLevel 8 wins: about 22 B per
#    message (a fifth fewer bytes) for about 290 KiB per connection — eight times the
#    defaults' 36 KiB (zlib's formula, with the 15-bit client window browsers use). At
#    10,000 connections that is ~2.7 GiB of compressor state for a 20 % byte saving:
#    worth it only if bandwidth is much dearer than memory. Against the defaults both
#    choices roughly double p99 (≈ 95 ms against ≈ 50 ms) because of the 50 ms hold.
# 3. It says to relax the p99 bound to about 50 ms (47 ms on the fast-mode slice). On the
#    4G profile the link's own propagation and serialisation put p99 near 50 ms for even
#    the fastest config (no batching); no sender-side setting removes the network's
#    round trip. A lower bound needs a faster link, not another config.
# 4. The shortest hold (hybrid, 5 ms) or no batching, with deflate still on: on 4G,
#    serialisation costs time per byte, so sending a quarter of the bytes more than pays
#    for a few microseconds of compression. On `loopback` the answer would flip to no
#    compression.
# 5. Only uncompressed configs cost under 2 µs per message; the winner is batching
#    without compression (≈ 112 B per message, almost four times the defaults). The
#    binding-constraint line tells you that about 4 µs would already cut bytes by ~70 %.
#    Bounding CPU that hard is rarely sensible unless the server is CPU-bound; note also
#    that CPU per message is measured on this machine and moves between runs.
# 6. No: that config keeps context takeover, and since ws 8.2.3 the `threshold` option is
#    ignored while context takeover is on (ws #1950) — every message is compressed. The
#    exported comment says so. To make the threshold bite you would turn on
#    `server_no_context_takeover`, which throws away the cross-message matches that make
#    small JSON compress well (notebook 01: ~0.9 alone against ~0.5 with context), in
#    exchange for freeing the compressor between messages. The full grid's winner uses
#    policy `adaptive`; its `ws` comment says ws cannot express that and compresses every
#    message instead (an application can skip one with `ws.send(data, {compress: false})`).
# 7. Ping interval + pong timeout + 10 s of slack: 20 + 20 + 10 = 50 s with the defaults.
#    With a 90 s heartbeat and nginx left at its 60 s `proxy_read_timeout`, a quiet
#    connection is closed by nginx after 60 s, before the first ping crosses it: clients
#    see disconnects every minute on idle connections.
# 8. Bytes per message agree closely: the simulator and the live server drive the same
#    `SendPipeline` and the same zlib, so the frames are the same. Latency agrees in shape
#    (the shaper uses the same link model) but not to the millisecond: real scheduling,
#    process start-up and the event loop add jitter that a virtual clock does not have.
#    CPU per message is the least comparable: both count only compression time, but live
#    it is timed inside a busy server process with cold caches on a few dozen messages,
#    so it reads several times higher than the simulator's warm loop (the server's whole
#    CPU time is reported apart, as `cpu_server_s`).
# 9. No: on chat the best zstd config (zstd-stream with 50 ms batches) reaches about
#    31 B per message, more than deflate's 22–28 B, and holds about 720 KiB per
#    connection. `custom` widens the choice, but zstd does not pay on this trace, so the
#    recommendation stays the same. Under `browser` the first "Left out" line says exactly
#    that (the zstd configs, none within the constraints, and what the best would need);
#    the second is the library defaults themselves: they hold the client to a 12-bit
#    window, which a browser cannot be held to, so for browsers that row's memory (and
#    client-to-server bytes) would be wrong. It stays the yardstick all the same.
#
# </details>
