"""Measured ratios must be exactly what the codecs produce."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wslab.analysis.ratios import (
    CodecSettings,
    dictionary_split,
    message_sizes,
    ratios_by_type,
    zstd_dictionary_sizes,
)
from wslab.codecs.deflate import DeflateEncoder
from wslab.codecs.zstd import ZstdEncoder, train_dictionary
from wslab.traces.model import Trace


def test_message_sizes_equal_direct_codec_calls(mixed_trace: Trace) -> None:
    s = CodecSettings(window_bits=11, mem_level=4, level=5, zstd_level=2)
    sizes = message_sizes(mixed_trace, s)
    streams = {d: DeflateEncoder(11, 4, 5) for d in ("s2c", "c2s")}
    for i, m in enumerate(mixed_trace.messages):
        assert sizes["size"].iloc[i] == len(m.payload)
        assert sizes["deflate"].iloc[i] == len(streams[m.dir].encode(m.payload))
        alone = DeflateEncoder(11, 4, 5, no_context_takeover=True).encode(m.payload)
        assert sizes["deflate_no_context"].iloc[i] == len(alone)
        assert sizes["zstd"].iloc[i] == len(ZstdEncoder(2).encode(m.payload))


def test_ratios_by_type_are_byte_weighted(mixed_trace: Trace) -> None:
    sizes = message_sizes(mixed_trace)
    r = ratios_by_type(mixed_trace, sizes=sizes)
    assert list(zip(r["type"], r["dir"], strict=True)) == [
        ("chat", "s2c"), ("blob", "c2s"), ("tick", "s2c"), ("rare", "c2s")]
    chat = np.array([m.type == "chat" for m in mixed_trace.messages])
    want = sizes["deflate"][chat].sum() / sizes["size"][chat].sum()
    assert r.loc[0, "deflate_ratio"] == pytest.approx(want)
    assert r.loc[0, "messages"] == chat.sum()
    assert r.loc[0, "deflate_ratio"] < r.loc[0, "deflate_ratio_no_context"] < 1
    assert r.loc[1, "deflate_ratio"] > 1.0  # random bytes grow
    rare = r.loc[3]
    assert math.isnan(rare["zstd_dict_ratio"]) and "too few" in rare["zstd_dict_note"]


def test_dictionary_trained_on_leading_messages_measured_on_the_rest(
    mixed_trace: Trace,
) -> None:
    payloads = [m.payload for m in mixed_trace.messages if m.type == "chat"]
    k = dictionary_split(len(payloads))
    assert k == 40  # 20 % of 200
    res = zstd_dictionary_sizes(payloads, 3)
    enc = ZstdEncoder(3, dictionary=train_dictionary(payloads[:k], search=False))
    held_out = payloads[k:]
    want = sum(len(enc.encode(p)) for p in held_out) / sum(map(len, held_out))
    assert res.ratio == pytest.approx(want)
    assert res.trained_on == k and res.note == ""
    assert np.isnan(res.sizes[:k]).all() and not np.isnan(res.sizes[k:]).any()
