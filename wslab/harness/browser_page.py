"""The page the browser client runs: a trace's client side, replayed by Chromium's WebSocket.

What lives here: :data:`PAGE`, the HTML (one inline script) that ``browser_tap.py`` serves
and ``browser_client.py`` drives with a single ``evaluate`` of ``wslabRun(plan)``. What must
not live here: Python logic (the plan is built, and the results read, in
``browser_client.py``).

The plan (one JSON object): ``url`` (the tap's ws:// URL), ``labels`` (one per
connection), ``envelope`` (a ``wslab.v1.*`` envelope to offer as the subprotocol, or null),
``speed``, ``drainMs``, ``closeMs``, ``expect`` (messages each connection should receive),
``send`` (one frame per ``c2s`` message, each ``[trace index, t seconds, is_text frame,
text or base64]``: the message itself, or the message alone in its envelope, built on
the Python side with ``wslab.envelopes``) and ``lookup`` (the ``s2c`` messages as
``[trace index, is_text, text or base64]``, so a received message is named by the trace
index of a message with the same content, with no hash in the page).

What the page does, per connection (all connections share the page's one thread):

| step     | how                                                                       |
|----------|---------------------------------------------------------------------------|
| open     | ``new WebSocket(url?wslab-client=LABEL)``, ``binaryType`` arraybuffer      |
| schedule | starts once every connection is open; a message is due at start + t/speed; |
|          | the page sleeps in ``setTimeout`` entered from a ``MessageChannel`` task,  |
|          | so Chromium's 4 ms clamp of nested timers never applies                    |
| send     | every message due is sent at once, each stamped just before ``send()``     |
| receive  | ``onmessage`` stamps ``performance.now()`` first, then names the message,  |
|          | or each message of an envelope (json-array split at its top-level commas, |
|          | ndjson at newlines, length-prefixed by its flags and LEB128 lengths)       |
| drain    | until ``expect`` arrived, the peer left, or ``drainMs`` passed quietly     |
| close    | ``close(1000)``, waiting at most ``closeMs`` for the close event           |

Times are milliseconds since ``performance.timeOrigin``, which the result carries: the
Python side maps them onto its own monotonic clock. Results come back in one piece:
columns of numbers per connection, never one call per message.
"""

from __future__ import annotations

SCRIPT = r"""
"use strict";
const channel = new MessageChannel();
const wakeups = [];
channel.port1.onmessage = () => { const go = wakeups.shift(); if (go) go(); };
// A timer armed from a message task has nesting level 0: no 4 ms clamp.
function sleep(ms) {
  return new Promise((resolve) => {
    wakeups.push(() => setTimeout(resolve, Math.max(0, ms)));
    channel.port2.postMessage(0);
  });
}
function latin1(buffer) {
  const bytes = new Uint8Array(buffer);
  let out = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  }
  return out;
}
function bytesOf(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
const utf8 = new TextDecoder();
function jsonArray(s) {
  const out = [];
  let depth = 0, inString = false, start = 1;
  for (let i = 1; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; else if (c === 34) inString = false;
      continue;
    }
    if (c === 34) inString = true;
    else if (c === 91 || c === 123) depth++;
    else if (c === 93 || c === 125) depth--;
    else if (c === 44 && depth === 0) { out.push("t" + s.slice(start, i)); start = i + 1; }
  }
  out.push("t" + s.slice(start, s.length - 1));
  return out;
}
function lengthPrefixed(buffer) {
  const bytes = new Uint8Array(buffer);
  const out = [];
  let pos = 0;
  while (pos < bytes.length) {
    const text = bytes[pos++] === 1;
    let length = 0, scale = 1, b = 0;
    do { b = bytes[pos++]; length += (b & 127) * scale; scale *= 128; } while (b & 128);
    const part = bytes.subarray(pos, pos + length);
    out.push(text ? "t" + utf8.decode(part) : "b" + latin1(part));
    pos += length;
  }
  return out;
}
// The lookup keys of the messages one frame carries.
function keysOf(data, envelope) {
  if (envelope === "json-array") return jsonArray(data);
  if (envelope === "ndjson") return data.split("\n").map((m) => "t" + m);
  if (envelope === "length-prefixed") return lengthPrefixed(data);
  return [typeof data === "string" ? "t" + data : "b" + latin1(data)];
}
function open(url, label, envelope) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url + "?wslab-client=" + encodeURIComponent(label),
                             envelope ? ["wslab.v1." + envelope] : []);
    ws.binaryType = "arraybuffer";
    const c = {label, ws, sentIndex: [], sentT: [], late: [], recvT: [], recvIndex: [],
               recvFrame: [], frames: 0, last: 0, closeCode: null, error: null,
               closed: null, wake: null};
    c.closed = new Promise((done) => {
      ws.onclose = (ev) => {
        c.closeCode = ev.code;
        if (c.wake) c.wake();
        done();
        reject(new Error("closed before open: " + ev.code));
      };
    });
    ws.onerror = () => { c.error = c.error || "error event"; };
    ws.onopen = () => resolve(c);
    ws.onmessage = (ev) => {
      const t = performance.now();
      const frame = c.frames++;
      for (const key of keysOf(ev.data, envelope)) {
        const index = window.wslabLookup.get(key);
        c.recvT.push(t);
        c.recvIndex.push(index === undefined ? -1 : index);
        c.recvFrame.push(frame);
      }
      c.last = t;
      if (c.wake && c.recvT.length >= c.expect) c.wake();
    };
  });
}
async function drive(c, plan, messages, start) {
  const speed = plan.speed;
  const n = messages.length;
  const base = n ? messages[0][1] : 0;
  let i = 0;
  while (i < n && c.ws.readyState === WebSocket.OPEN) {
    const t = messages[i][1];
    const due = start + (t - base) / speed * 1000;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    while (i < n && messages[i][1] === t) {
      const now = performance.now();
      c.ws.send(messages[i][4]);
      c.sentT.push(now);
      c.sentIndex.push(messages[i][0]);
      c.late.push(now - due);
      i++;
    }
  }
  c.last = Math.max(c.last, performance.now());
  while (c.recvT.length < c.expect && c.ws.readyState === WebSocket.OPEN) {
    const quiet = performance.now() - c.last;
    if (quiet >= plan.drainMs) break;
    await new Promise((resolve) => {
      c.wake = resolve;
      setTimeout(resolve, Math.min(250, plan.drainMs - quiet));
    });
    c.wake = null;
  }
  if (c.ws.readyState === WebSocket.OPEN || c.ws.readyState === WebSocket.CONNECTING) {
    c.ws.close(1000);
  }
  await Promise.race([c.closed, sleep(plan.closeMs)]);
}
window.wslabRun = async function (plan) {
  const lookup = new Map();
  for (const [index, isText, data] of plan.lookup) {
    const key = isText ? "t" + data : "b" + atob(data);
    if (!lookup.has(key)) lookup.set(key, index);
  }
  window.wslabLookup = lookup;
  const messages = plan.send.map(([index, t, isText, data]) =>
    [index, t, isText, data, isText ? data : bytesOf(data)]);
  const conns = [];
  for (const label of plan.labels) {
    try {
      const c = await open(plan.url, label, plan.envelope);
      c.expect = plan.expect;
      conns.push(c);
    } catch (err) {
      conns.push({label, failed: String(err && err.message || err)});
    }
  }
  const start = performance.now();
  await Promise.all(conns.filter((c) => !c.failed).map((c) => drive(c, plan, messages, start)));
  return {
    timeOrigin: performance.timeOrigin,
    isolated: self.crossOriginIsolated === true,
    userAgent: navigator.userAgent,
    connections: conns.map((c) => c.failed ? {label: c.label, error: c.failed} : {
      label: c.label, extensions: c.ws.extensions, protocol: c.ws.protocol,
      closeCode: c.closeCode, error: c.error, sentIndex: c.sentIndex, sentT: c.sentT,
      late: c.late, recvT: c.recvT, recvIndex: c.recvIndex, recvFrame: c.recvFrame,
    }),
  };
};
"""

PAGE = ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>wslab browser client"
        "</title></head><body><script>" + SCRIPT + "</script></body></html>\n").encode()
"""The page the tap serves at ``GET /``."""
