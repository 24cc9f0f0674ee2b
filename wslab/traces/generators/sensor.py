"""Binary sensor frames streamed by a device (or gateway) to a server.

What lives here: :func:`sensor_stream`, the stream behind ``generate("sensor")``, and
:func:`parse_frame` that reads a frame back (used by tests and handy for analysis).

Modelling choices (a generic layout, not any vendor's protocol):

* A frame is a fixed 24-byte little-endian header (magic ``b"WSLS"``, version, channel
  count, device id, sequence number, capture time in microseconds, sample rate, samples
  per channel), the samples as interleaved ``int16``, and a CRC-32 trailer.
* Each channel is an offset (gravity, bias) with a slow random-walk drift, a low-frequency
  sinusoid (motion, 0.2-8 Hz) small against full scale, mains hum at 50 Hz and Gaussian
  noise of about 2 LSB. The high bytes change slowly and the low bytes are noisy, so frames
  are partly compressible, as real sampled signals are.
* Frames leave at a steady rate (20-50 per second, 4-16 samples per channel, so sample
  rates of 80-800 Hz, typical of IMU and vibration sensors) with network
  jitter; every 10 s a JSON ``sensor.status`` (battery, signal, temperature) goes out at
  ``background`` priority. The server acknowledges every 50th frame and occasionally sends
  a ``critical`` command (recalibrate, change rate).
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Iterator

import numpy as np

from wslab.priority import BACKGROUND, CRITICAL, NORMAL
from wslab.traces.generators._common import Event, periodic, poisson, text, timeline
from wslab.traces.model import Message

MAGIC = b"WSLS"
HEADER = struct.Struct("<4sBBHIQHH")  # magic, version, channels, device, seq, t_us, rate, n


def parse_frame(frame: bytes) -> tuple[dict[str, int], np.ndarray]:
    """Split a sensor frame into its header fields and a ``(n, channels)`` int16 array.

    Raises:
        ValueError: If the magic, length or CRC does not match.
    """
    magic, version, channels, device, seq, t_us, rate, n = HEADER.unpack_from(frame)
    if magic != MAGIC:
        raise ValueError("not a sensor frame")
    body_end = HEADER.size + 2 * channels * n
    if len(frame) != body_end + 4:
        raise ValueError("frame length does not match its header")
    (crc,) = struct.unpack_from("<I", frame, body_end)
    if crc != zlib.crc32(frame[:body_end]):
        raise ValueError("CRC mismatch")
    samples = np.frombuffer(frame, dtype="<i2", count=channels * n, offset=HEADER.size)
    header = {"version": version, "channels": channels, "device": device, "seq": seq,
              "t_us": t_us, "rate": rate, "samples": n}
    return header, samples.reshape(n, channels)


def sensor_stream(rng: random.Random) -> Iterator[Message]:
    """An endless, time-ordered sensor trace for one device; see the module docstring."""
    noise = np.random.RandomState(rng.getrandbits(32))  # legacy generator: a frozen stream
    channels = rng.choice((1, 3, 6))
    n = rng.choice([k for k in (4, 8, 16) if channels * k <= 48])
    frame_hz = rng.choice((20, 25, 50))
    rate = n * frame_hz
    device = rng.randrange(1, 65536)
    offsets = np.array([rng.uniform(-4000, 4000) for _ in range(channels)])
    amps = np.array([rng.uniform(20, 800) for _ in range(channels)])
    freqs = np.array([rng.uniform(0.2, 8.0) for _ in range(channels)])
    hum = np.array([rng.uniform(0, 30) for _ in range(channels)])
    phase = np.array([rng.uniform(0, 6.283) for _ in range(channels)])
    seq = [0]
    sample_no = [0]
    drift = np.zeros(channels)

    def frame(t: float) -> bytes:
        seq[0] += 1
        k = np.arange(sample_no[0], sample_no[0] + n, dtype=np.float64)[:, None] / rate
        sample_no[0] += n
        drift[:] += noise.standard_normal(channels) * 2
        signal = (offsets + drift + amps * np.sin(2 * np.pi * freqs * k + phase)
                  + hum * np.sin(2 * np.pi * 50.0 * k)
                  + noise.standard_normal((n, channels)) * 2.0)
        body: bytes = np.clip(np.rint(signal), -32768, 32767).astype("<i2").tobytes()
        head = HEADER.pack(MAGIC, 1, channels, device, seq[0] & 0xFFFFFFFF,
                           round(t * 1e6), rate, n)
        data = head + body
        return data + struct.pack("<I", zlib.crc32(data))

    def on_frame(t: float) -> list[Event]:
        out: list[Event] = [(t, "c2s", "sensor.frame", NORMAL, frame(t), False)]
        if seq[0] % 50 == 0:
            out.append(text(t + rng.uniform(0.01, 0.06), "s2c", "sensor.ack", NORMAL,
                            {"type": "ack", "device": device, "upto": seq[0]}))
        return out

    def on_status(t: float) -> list[Event]:
        return [text(t, "c2s", "sensor.status", BACKGROUND,
                     {"type": "status", "device": device,
                      "battery": round(100 - t / 360 % 100, 1),
                      "rssi": rng.randint(-90, -45), "temp_c": round(rng.gauss(31, 1.5), 1),
                      "dropped": rng.randint(0, 2)})]

    def on_command(t: float) -> list[Event]:
        cmd = rng.choice(("calibrate", "set_gain", "identify"))
        return [text(t, "s2c", "sensor.command", CRITICAL,
                     {"type": "command", "device": device, "cmd": cmd,
                      "id": rng.getrandbits(32)})]

    hello: list[Event] = [text(0.0, "c2s", "sensor.hello", NORMAL,
                               {"type": "hello", "device": device, "channels": channels,
                                "rate": rate, "frame_hz": frame_hz, "fw": "2.4.1"})]
    yield from timeline([
        (iter([0.0]), lambda _t: hello),
        (periodic(rng, 1.0 / frame_hz, 0.004), on_frame),
        (periodic(rng, 10.0, 0.05), on_status),
        (poisson(rng, 1 / 120.0), on_command),
    ])
