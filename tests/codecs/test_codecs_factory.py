"""make_encoder / make_decoder: the config's compression section as codec objects."""

from __future__ import annotations

import pytest

from wslab.codecs import (
    DeflateDecoder,
    DeflateEncoder,
    ZstdDecoder,
    ZstdEncoder,
    make_decoder,
    make_encoder,
)
from wslab.codecs.zstd_dict import DictionarySet, train_dictionary_set
from wslab.config import CompressionConfig
from wslab.errors import ConfigError

MESSAGES = [b'{"op":"ping","n":%d}' % i for i in range(40)] + [b"", b"x" * 70_000]


def test_none_gives_no_codecs() -> None:
    cfg = CompressionConfig(algorithm="none")
    assert make_encoder(cfg, "server") is None
    assert make_decoder(cfg, "client") is None


def test_deflate_uses_the_senders_parameters() -> None:
    cfg = CompressionConfig(server_max_window_bits=10, client_max_window_bits=13, mem_level=3,
                            level=1, server_no_context_takeover=True)
    server_enc = make_encoder(cfg, "server")
    client_enc = make_encoder(cfg, "client")
    assert isinstance(server_enc, DeflateEncoder) and isinstance(client_enc, DeflateEncoder)
    assert (server_enc.window_bits, server_enc.no_context_takeover) == (10, True)
    assert (client_enc.window_bits, client_enc.no_context_takeover) == (13, False)
    assert (server_enc.mem_level, server_enc.level) == (3, 1)
    client_dec = make_decoder(cfg, "client")  # reads the server's messages
    server_dec = make_decoder(cfg, "server")  # reads the client's messages
    assert isinstance(client_dec, DeflateDecoder) and isinstance(server_dec, DeflateDecoder)
    assert (client_dec.window_bits, client_dec.no_context_takeover) == (10, True)
    assert (server_dec.window_bits, server_dec.no_context_takeover) == (13, False)
    assert [client_dec.decode(server_enc.encode(m)) for m in MESSAGES] == MESSAGES
    assert [server_dec.decode(client_enc.encode(m)) for m in MESSAGES] == MESSAGES


def test_client_window_8_compresses_with_9() -> None:
    cfg = CompressionConfig(client_max_window_bits=8)
    enc = make_encoder(cfg, "client")
    assert isinstance(enc, DeflateEncoder) and enc.window_bits == 9
    dec = make_decoder(cfg, "server")
    assert dec is not None
    assert [dec.decode(enc.encode(m)) for m in MESSAGES] == MESSAGES


def test_zstd_stream() -> None:
    cfg = CompressionConfig(algorithm="zstd-stream", zstd_level=5)
    enc, dec = make_encoder(cfg, "server"), make_decoder(cfg, "client")
    assert isinstance(enc, ZstdEncoder) and isinstance(dec, ZstdDecoder)
    assert enc.algorithm == "zstd-stream" and enc.level == 5 and dec.stream
    assert [dec.decode(enc.encode(m)) for m in MESSAGES] == MESSAGES


def test_zstd_dict_needs_dictionaries() -> None:
    cfg = CompressionConfig(algorithm="zstd-dict")
    with pytest.raises(ConfigError, match="zstd-dict needs dictionaries"):
        make_encoder(cfg, "server")
    with pytest.raises(ConfigError, match="zstd-dict needs dictionaries"):
        make_decoder(cfg, "client", DictionarySet())
    dictionaries = train_dictionary_set({"m": MESSAGES[:40]}, 1024)
    enc = make_encoder(cfg, "server", dictionaries)
    dec = make_decoder(cfg, "client", dictionaries)
    assert enc is not None and dec is not None and enc.algorithm == "zstd-dict"
    assert [dec.decode(enc.encode(m, "m")) for m in MESSAGES] == MESSAGES


def test_bad_side() -> None:
    with pytest.raises(ValueError, match="side"):
        make_encoder(CompressionConfig(), "both")  # type: ignore[arg-type]
