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
# # 00 · A tour of wslab
#
# A WebSocket message is cheap to write and surprisingly expensive to deliver. Between
# `send()` on the server and `onmessage` in a browser it picks up a frame header, maybe a
# trip through a compressor, one or more TCP/IP headers, a wait in a queue and a trip across
# a link that may be a loopback cable or a satellite. Every knob a server offers (batch or
# not, compress or not, with which window) moves some of those costs around.
#
# wslab replaces folklore about those knobs with numbers from *your* traffic:
#
# 1. **analyse** a trace of messages (what is in it, what compresses),
# 2. **simulate** it through the same send pipeline a live server runs, on a virtual clock,
# 3. **measure** it live on real `websockets` servers, **scale** it to many connections,
#    and **recommend and export** a configuration your server accepts.
#
# These notebooks are the hands-on part. Each one explains one idea from first principles,
# then hands you a panel of sliders wired to the simulator so you can see the trade-off move.
#
# | notebook | topic |
# |---|---|
# | `00_tour` | this page: traces, the config, one simulation |
# | `01_content_analysis` | what is in a trace and what each message type compresses to |
# | `02_frame_batching` | what a frame costs, and what holding messages buys |
# | `03_compression_negotiation` | RFC 7692 negotiation, window bits, context takeover, compression policies |
# | `04_connection_scaling` | what a connection costs, the limits one host hits, fan-out, admission control |
# | `05_recommend_and_export` | Pareto frontiers, constraints, browser or custom clients, export to real servers |
#
# **Fast mode.** With `WSLAB_FAST=1` in the environment every panel replays only the first
# 2,000 messages of a trace and uses small grids, so a workshop room full of laptops can run
# every notebook top to bottom in seconds. Numbers then differ a little from the full runs.

# %%
from wslab.config import TuningConfig
from wslab.lab import bundled_names, fast_mode, load_trace
from wslab.sim import simulate

print("fast mode:", fast_mode())
print("bundled traces:", ", ".join(bundled_names()))

# %% [markdown]
# ## A trace
#
# A trace is a list of messages with a send time, a direction (`s2c` server to client or
# `c2s`), a type label, a priority and the payload bytes. The bundled ones are synthetic but
# shaped like real services: a chat room, a multiplayer game, a market-data screen,
# telemetry, binary sensor frames, and a mix of all of them. You can also import your own
# from a browser HAR export (`wslab trace import`).

# %%
trace = load_trace("market")
df = trace.frame()
print(f"{len(trace):,} messages over {trace.duration:,.1f} s "
      f"({len(trace) / trace.duration:,.1f} messages/s), {trace.payload_bytes:,} payload bytes")
df.groupby(["type", "dir"], observed=True)["size"].agg(["count", "mean", "max"]).round(1)

# %% [markdown]
# ## One configuration for everything
#
# `TuningConfig` has four sections: `batching`, `compression`, `scaling` and `link`. The
# defaults are the python-websockets library's own where it has one (for example
# permessage-deflate with 12-bit windows and memLevel 5). The same object drives the
# simulator, the live harness, the sweeps and every panel in these notebooks. Changing a
# field returns a new config:

# %%
config = TuningConfig().updated({"batching.strategy": "time", "batching.interval_ms": 16,
                                 "link.profile": "4g"})
print(config.to_yaml())

# %% [markdown]
# ## One simulation
#
# `simulate` replays the trace through the real batcher and the real zlib, prices every
# frame in header bytes and TCP segments, and sends it over a model of the link. It returns
# one row per message, one row per frame, and a summary record.

# %%
result = simulate(trace, config)
s = result.summary
print(f"{s['messages']:,} messages -> {s['frames']:,} frames, "
      f"{s['tcp_segments']:,} TCP segments")
print(f"payload {s['payload_bytes']:,} B -> compressed {s['compressed_bytes']:,} B "
      f"(ratio {s['compression_ratio']:.3f}); on the wire {s['tcp_bytes']:,} B")
print("latency (ms):", {k: round(v, 1) for k, v in s["latency_ms"].items()})
print("integrity:", {k: s[k] for k in ("lost", "duplicated", "reordered")})

# %% [markdown]
# Every message's latency is split into its parts, which is what the later notebooks pull
# apart: time held by the batcher, compression, queueing and serialisation on the link,
# propagation, decompression.

# %%
parts = ["batch_wait_ms", "compression_ms", "queue_ms", "serialisation_ms", "propagation_ms",
         "decompression_ms", "latency_ms"]
summary = result.messages[parts].describe(percentiles=[0.5, 0.95, 0.99])
summary.loc[["mean", "50%", "95%", "99%"]].round(3)

# %% [markdown]
# ## A panel
#
# The panels in `wslab.lab` wrap exactly these calls in sliders. Move one and the trace is
# simulated again (debounced, in a background thread so the notebook stays responsive) and
# the figures redraw in place. Try the interval and the link.
#
# Every panel works the same way. Hover over a control to see what it does and its unit; a
# control the current settings do not use is greyed out (the interval under strategy
# `priority`, say). **Pin as baseline** keeps the current run and draws it beside every
# later one (dotted curves, a "pinned" bar and column), **Reset** puts every control back,
# and **config (YAML)** downloads the current settings as a file that every `--config`
# option of the command line reads.

# %%
from wslab.lab import BatchingPanel

BatchingPanel(trace, config)

# %% [markdown]
# ## Exercises
#
# 1. Load the `game` trace instead of `market`. How many messages per second does it send,
#    and how does that compare with `chat`?
# 2. Simulate `market` on the `loopback` profile and on `slow-3g` with the same config.
#    Which part of the latency grows, and why does compression matter more on one than on
#    the other?
# 3. Set `compression.algorithm` to `none`. By how much do the bytes on the wire grow?

# %% [markdown] tags=["answer"]
# <details class="wslab-answer"><summary><b>Answers</b> (click to open)</summary>
#
# 1. `len(load_trace("game")) / load_trace("game").duration`: about 120 messages/s, versus
#    about 2 for `chat`: a game server talks fifty times as fast, which is why batching pays
#    off there and hardly at all in a chat room.
# 2. On loopback the link adds microseconds and has no bandwidth limit, so latency is almost
#    only the batch wait and CPU. On `slow-3g` (400 kbit/s, 2 s round trip) propagation and
#    serialisation dominate, and every byte saved by compression shortens the queue. On
#    loopback compression can only cost time; on a slow link it buys time.
# 3. With the market trace and a 16 ms batch window the wire bytes roughly triple: the
#    payload compresses to about a quarter of its size, while the headers stay the same.
#
# </details>

# %% tags=["answer"] jupyter={"source_hidden": true}
from wslab.lab import answer_check


def check() -> None:
    for profile in ("loopback", "slow-3g"):
        r = simulate(trace, config.updated({"link.profile": profile}), verify=False)
        print(profile, {k: round(v, 1) for k, v in r.summary["latency_ms"].items()})
    plain = simulate(trace, config.updated({"compression.algorithm": "none"}), verify=False)
    print("wire bytes, uncompressed / compressed:",
          round(plain.summary["tcp_bytes"] / s["tcp_bytes"], 2))


answer_check(check, "latency on two links, wire bytes without compression")
