"""wslab export: every target rendered, and the runnable ones proven by running them.

- The exported Python module starts and negotiates exactly what ``server_accept`` predicts.
- The exported Node script runs with ``ws`` from npm and negotiates the same way.
- The exported nginx.conf passes ``nginx -t`` and proxies a real WebSocket session.
- uWebSockets presets are the nearest (table-driven); Centrifugo keys parse and carry values.
- The CLI command and the all-or-nothing writer, including unknown targets.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from services import node_and_npm, program
from tune.export_support import (
    MESSAGES,
    ensure_node_ws,
    free_port,
    free_port_block,
    node_env,
    parse_response,
    predicted_response,
    python_server,
    read_port,
    session,
    start,
    stop,
    wait_for_port,
)
from typer.testing import CliRunner

from wslab.cli.export_cmd import export as export_command
from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.tune.export import SINGLE_TARGETS, TARGETS, export, render
from wslab.tune.exporters.centrifugo import centrifugo_config
from wslab.tune.exporters.nginx import nginx_sizing
from wslab.tune.exporters.uwebsockets import (
    idle_timeout,
    nearest_compressor,
    nearest_decompressor,
    uws_settings,
)

pytestmark = pytest.mark.timeout(120)


def cfg(**changes: Any) -> TuningConfig:
    return TuningConfig().updated(changes)


DEFLATE_CASES = {
    "defaults-12-12": cfg(),
    "small-windows-no-takeover": cfg(**{
        "compression.server_max_window_bits": 10, "compression.client_max_window_bits": 11,
        "compression.server_no_context_takeover": True, "compression.mem_level": 4,
        "compression.level": 1}),
    "full-windows-client-reset": cfg(**{
        "compression.server_max_window_bits": 15, "compression.client_max_window_bits": 15,
        "compression.client_no_context_takeover": True, "compression.mem_level": 8}),
    "client-window-8-threshold": cfg(**{
        "compression.server_max_window_bits": 9, "compression.client_max_window_bits": 8,
        "compression.policy": "threshold", "compression.threshold_bytes": 200,
        "compression.server_no_context_takeover": True,
        "compression.client_no_context_takeover": True}),
}
NO_COMPRESSION = cfg(**{"compression.algorithm": "none"})
ODD = cfg(**{"compression.algorithm": "zstd-dict", "compression.policy": "adaptive",
             "batching.strategy": "hybrid", "scaling.workers": 3,
             "scaling.heartbeat_interval_s": None, "compression.level": -1})


def write(config: TuningConfig, target: str, out: Path, **options: int) -> dict[str, Path]:
    return {p.name: p for p in export(config, target, out, **options)}


# --- websockets: run the module, negotiate exactly ------------------------------------------


@pytest.mark.parametrize("name", list(DEFLATE_CASES))
def test_websockets_module_negotiates_exported_parameters(name: str, tmp_path: Path) -> None:
    config = DEFLATE_CASES[name]
    server_py = write(config, "websockets", tmp_path)["server.py"]
    proc = python_server(server_py)
    try:
        port = read_port(proc)
        got = session(f"ws://127.0.0.1:{port}/", config)
    finally:
        stop(proc)
    expected = predicted_response(config)
    assert got.extensions == expected.header()  # byte for byte, as websockets formats it
    assert got.echoes == got.sent


def test_websockets_module_without_compression(tmp_path: Path) -> None:
    server_py = write(NO_COMPRESSION, "websockets", tmp_path)["server.py"]
    assert "DEFLATE = None" in server_py.read_text()
    proc = python_server(server_py)
    try:
        port = read_port(proc)
        offered = session(f"ws://127.0.0.1:{port}/", cfg())  # the client offers deflate anyway
        plain = session(f"ws://127.0.0.1:{port}/", cfg(), offer_deflate=False)
    finally:
        stop(proc)
    assert offered.extensions is None and plain.extensions is None
    assert offered.echoes == list(MESSAGES) == plain.echoes


def test_websockets_module_is_standalone_and_loopback(tmp_path: Path) -> None:
    text = render(ODD, "websockets")["server.py"]
    compile(text, "server.py", "exec")
    imports = [line for line in text.splitlines() if line.startswith(("import ", "from "))]
    assert all("wslab" not in line for line in imports)
    assert 'default="127.0.0.1"' in text
    assert "PING_INTERVAL = None" in text
    assert "zstd-dict" in text and "adaptive" in text  # what it could not express


# --- ws (Node.js): run server.js with ws from npm -------------------------------------------


@pytest.fixture(scope="module")
def node_modules() -> Path:
    return ensure_node_ws(node_and_npm()[1])  # fails, never skips, if they are missing


@pytest.mark.parametrize("name", [*DEFLATE_CASES, "none"])
def test_ws_script_negotiates_exported_parameters(name: str, node_modules: Path,
                                                  tmp_path: Path) -> None:
    config = DEFLATE_CASES.get(name, NO_COMPRESSION)
    files = write(config, "ws", tmp_path)
    proc = start(["node", str(files["server.js"]), "--port", "0"], cwd=tmp_path,
                 env=node_env(node_modules))
    try:
        port = read_port(proc)
        got = session(f"ws://127.0.0.1:{port}/", cfg() if name == "none" else config)
    finally:
        stop(proc)
    assert got.echoes == got.sent
    if name == "none":
        assert got.extensions is None
    else:
        assert got.extensions is not None
        # ws orders parameters its own way; the parameters themselves must be exactly these.
        assert parse_response(got.extensions) == predicted_response(config)


def test_ws_options_carry_the_config_and_the_caveats() -> None:
    files = render(DEFLATE_CASES["client-window-8-threshold"], "ws")
    opts = files["ws-options.js"]
    body = json.loads(opts.split("module.exports = ", 1)[1].rstrip().rstrip(";"))
    pmd = body["perMessageDeflate"]
    assert pmd == {"serverMaxWindowBits": 9, "clientMaxWindowBits": 9,
                   "serverNoContextTakeover": True, "clientNoContextTakeover": True,
                   "zlibDeflateOptions": {"memLevel": 5, "level": 6}, "threshold": 200,
                   "concurrencyLimit": 10}
    assert body["maxPayload"] == 1048576
    # With context takeover on, the threshold is ignored by ws >= 8.2.3: said in the file.
    takeover = render(cfg(**{"compression.policy": "threshold",
                             "compression.threshold_bytes": 300}), "ws")["ws-options.js"]
    assert "8.2.3" in takeover and "#1950" in takeover
    assert '"serverMaxWindowBits"' in takeover
    assert "adaptive" in render(ODD, "ws")["ws-options.js"]
    assert "PING_INTERVAL_MS = null" in render(ODD, "ws")["server.js"]


# --- nginx: nginx -t and a real proxied session ---------------------------------------------


def test_nginx_sizing_follows_heartbeat_and_connections() -> None:
    size = nginx_sizing(cfg(**{"scaling.max_connections": 5000, "scaling.workers": 3}), 9000)
    assert size.proxy_timeout_s > 20 + 20
    assert size.worker_connections >= 2 * 5000
    assert size.worker_rlimit_nofile > size.worker_connections
    assert size.upstream_ports == (9000, 9001, 9002)
    assert nginx_sizing(ODD).proxy_timeout_s >= 3600
    text = render(cfg(**{"scaling.workers": 2}), "nginx", upstream_port=9100,
                  listen_port=9200)["nginx.conf"]
    for needle in ("map $http_upgrade $connection_upgrade", "proxy_http_version 1.1;",
                   "proxy_set_header Upgrade $http_upgrade;",
                   "proxy_set_header Connection $connection_upgrade;",
                   "hash $remote_addr consistent;", "server 127.0.0.1:9100;",
                   "server 127.0.0.1:9101;", "listen 127.0.0.1:9200;", "proxy_buffering off;",
                   "proxy_read_timeout 50s;", "proxy_send_timeout 50s;"):
        assert needle in text
    with pytest.raises(WslabError, match="upstream ports"):
        render(cfg(**{"scaling.workers": 4}), "nginx", upstream_port=65534)


def test_nginx_conf_passes_nginx_t_and_proxies_websockets(tmp_path: Path) -> None:
    nginx = program("nginx", "nginx")  # fails, never skips, if it is missing
    config = cfg(**{"scaling.workers": 2, "scaling.max_connections": 1000})
    upstream = free_port_block(2)
    listen = free_port()
    backend = write(config, "websockets", tmp_path / "backend")["server.py"]
    conf = write(config, "nginx", tmp_path / "conf", upstream_port=upstream,
                 listen_port=listen)["nginx.conf"]
    prefix = tmp_path / "prefix"
    (prefix / "logs").mkdir(parents=True)
    (prefix / "temp").mkdir()
    base = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs" / "error.log")]
    check = subprocess.run([*base, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    assert "test is successful" in check.stderr

    procs: list[subprocess.Popen[str]] = []
    try:
        for port in (upstream, upstream + 1):
            procs.append(python_server(backend, port))
            assert read_port(procs[-1]) == port
        procs.append(start([*base, "-g", "daemon off;"], cwd=prefix))
        wait_for_port(listen)
        got = session(f"ws://127.0.0.1:{listen}/", config)
    finally:
        for proc in reversed(procs):
            stop(proc)
    assert got.status == 101 and (got.upgrade or "").lower() == "websocket"
    assert got.echoes == got.sent
    # nginx passes the extension negotiation through: the backend's exact answer arrives.
    assert got.extensions == predicted_response(config).header()


# --- uWebSockets: nearest preset, table-driven ------------------------------------------------


@pytest.mark.parametrize(("bits", "mem", "preset"), [
    (12, 5, "DEDICATED_COMPRESSOR_32KB"),
    (9, 1, "DEDICATED_COMPRESSOR_3KB"),
    (9, 2, "DEDICATED_COMPRESSOR_4KB"),
    (9, 9, "DEDICATED_COMPRESSOR_4KB"),
    (10, 3, "DEDICATED_COMPRESSOR_8KB"),
    (10, 9, "DEDICATED_COMPRESSOR_8KB"),
    (11, 4, "DEDICATED_COMPRESSOR_16KB"),
    (12, 8, "DEDICATED_COMPRESSOR_32KB"),
    (13, 1, "DEDICATED_COMPRESSOR_64KB"),
    (14, 7, "DEDICATED_COMPRESSOR_128KB"),
    (15, 8, "DEDICATED_COMPRESSOR_256KB"),
    (15, 9, "DEDICATED_COMPRESSOR_256KB"),
    (15, 1, "DEDICATED_COMPRESSOR_256KB"),
])
def test_uws_nearest_compressor(bits: int, mem: int, preset: str) -> None:
    assert nearest_compressor(bits, mem).name == preset


@pytest.mark.parametrize(("bits", "preset"), [
    (8, "DEDICATED_DECOMPRESSOR_512B"), (9, "DEDICATED_DECOMPRESSOR_512B"),
    (10, "DEDICATED_DECOMPRESSOR_1KB"), (11, "DEDICATED_DECOMPRESSOR_2KB"),
    (12, "DEDICATED_DECOMPRESSOR_4KB"), (13, "DEDICATED_DECOMPRESSOR_8KB"),
    (14, "DEDICATED_DECOMPRESSOR_16KB"), (15, "DEDICATED_DECOMPRESSOR_32KB"),
])
def test_uws_nearest_decompressor(bits: int, preset: str) -> None:
    assert nearest_decompressor(bits).name == preset


def test_uws_settings_and_snippets() -> None:
    default = uws_settings(cfg())
    assert default.compression_expr == ["DEDICATED_COMPRESSOR_32KB", "DEDICATED_DECOMPRESSOR_4KB"]
    assert (default.max_payload_length, default.max_backpressure) == (1048576, 32768)
    assert default.idle_timeout_s == 40 and default.send_pings_automatically
    shared = uws_settings(DEFLATE_CASES["client-window-8-threshold"])
    assert shared.compression_expr == ["SHARED_COMPRESSOR", "SHARED_DECOMPRESSOR"]
    assert uws_settings(NO_COMPRESSION).compression_expr == ["DISABLED"]
    odd = uws_settings(ODD)
    assert (odd.idle_timeout_s, odd.send_pings_automatically) == (0, False)
    assert [idle_timeout(i, t) for i, t in [(20, 20), (10, 3), (1, 1), (5, None)]] == [
        40, 16, 8, 12]
    files = render(cfg(**{"compression.mem_level": 8}), "uwebsockets")
    cpp, js = files["uws-behavior.hpp"], files["uws-behavior.js"]
    assert "uWS::DEDICATED_COMPRESSOR_32KB | uWS::DEDICATED_DECOMPRESSOR_4KB" in cpp
    assert "compression: uWS.DEDICATED_COMPRESSOR_32KB | uWS.DEDICATED_DECOMPRESSOR_4KB" in js
    assert ".idleTimeout = 40" in cpp and "maxPayloadLength: 1048576" in js
    assert "memLevel 8" in cpp  # the lost memLevel is stated, with the nearest preset


# --- Centrifugo: keys and values ----------------------------------------------------------------


def test_centrifugo_json_and_yaml_carry_the_keys() -> None:
    config = DEFLATE_CASES["client-window-8-threshold"]
    files = render(config, "centrifugo")
    data = json.loads(files["centrifugo.json"])
    assert yaml.safe_load(files["centrifugo.yaml"]) == data
    assert data["websocket"] == {"compression": True, "compression_level": 6,
                                 "compression_min_size": 200,
                                 "message_size_limit": 1048576,
                                 "decompressed_message_size_limit": 1048576}
    assert data["client"] == {"ping_interval": "20s", "pong_timeout": "19s",
                              "connection_limit": 10000, "queue_max_size": 32768}
    assert centrifugo_config(cfg(**{"scaling.heartbeat_timeout_s": 5}))["client"][
        "pong_timeout"] == "5s"
    off = centrifugo_config(NO_COMPRESSION)["websocket"]
    assert off == {"compression": False, "message_size_limit": 1048576}
    odd = centrifugo_config(ODD)
    assert odd["client"]["ping_interval"] == "-1s"
    assert odd["websocket"]["compression_level"] == 6
    assert "context takeover" in files["centrifugo.yaml"]


# --- every file: limits stated, no secrets, wslab round trip ------------------------------------


def test_every_file_states_what_it_cannot_express() -> None:
    files = render(ODD, "all")
    assert {name.split("/")[0] for name in files} == set(SINGLE_TARGETS)
    for name, text in files.items():
        if name.endswith(".json") or name.startswith("wslab/"):
            continue  # JSON has no comments (its .yaml twin has); wslab loses nothing
        if name in ("ws/server.js", "socketio/server.js"):
            options = name.replace("server.js", "ws-options.js" if name.startswith("ws/")
                                   else "socketio-options.js").split("/")[1]
            assert options in text  # it points at the options file's notes
            continue
        if name == "websockets/zstd_extension.py":
            continue  # the shipped extension module; websockets/server.py carries the notes
        assert "cannot express" in text, name
        assert "zstd-dict" in text and "adaptive" in text and "batching" in text, name
    for text in files.values():
        lowered = text.lower()
        for word in ("hmac_secret", "api_key", "password", "token_secret"):
            assert word not in lowered


def test_wslab_target_reloads(tmp_path: Path) -> None:
    path = write(ODD, "wslab", tmp_path)["wslab.yaml"]
    assert TuningConfig.load(path) == ODD


# --- export(): all or nothing, targets, CLI --------------------------------------------------


def test_export_all_writes_every_target(tmp_path: Path) -> None:
    paths = export(cfg(), "all", tmp_path / "out")
    rel = sorted(str(p.relative_to(tmp_path / "out")) for p in paths)
    assert rel == sorted(render(cfg(), "all"))
    assert (tmp_path / "out" / "websockets" / "server.py").stat().st_mode & 0o111
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".wslab-export")]


def test_unknown_target_lists_targets_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(WslabError) as info:
        export(cfg(), "haproxy", out)
    message = str(info.value)
    assert "\n" not in message
    assert all(t in message for t in TARGETS)
    assert not out.exists()
    with pytest.raises(WslabError, match="listen_port"):
        export(cfg(), "nginx", out, listen_port=70000)
    with pytest.raises(WslabError, match="unknown export option"):
        export(cfg(), "nginx", out, colour=1)
    assert not out.exists()


def test_failed_write_leaves_nothing_behind(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    real = Path.write_text
    calls = {"n": 0}

    def flaky(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(28, "No space left on device")
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", flaky)
    with pytest.raises(WslabError, match="No space left"):
        export(cfg(), "all", out)
    assert out.exists() and list(out.iterdir()) == []


def test_cli_command(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(export_command)
    config_path = tmp_path / "c.yaml"
    DEFLATE_CASES["small-windows-no-takeover"].save(config_path)
    runner = CliRunner()
    result = runner.invoke(app, [str(config_path), "--target", "nginx", "-o",
                                 str(tmp_path / "n"), "--upstream-port", "9300",
                                 "--listen-port", "9400"])
    assert result.exit_code == 0, result.output
    assert "nginx.conf" in result.output
    assert "server 127.0.0.1:9300;" in (tmp_path / "n" / "nginx.conf").read_text()
    bad = runner.invoke(app, [str(config_path), "--target", "nope", "-o", str(tmp_path / "x")])
    assert isinstance(bad.exception, WslabError)
    assert "known targets: " + ", ".join(TARGETS) in str(bad.exception)
    assert not (tmp_path / "x").exists()


def test_websockets_module_notes_the_gc_pause_only_for_large_caps() -> None:
    from wslab.config import TuningConfig

    small = render(TuningConfig().updated({"scaling.max_connections": 1000}),
                   "websockets")["server.py"]
    large = render(TuningConfig().updated({"scaling.max_connections": 20000}),
                   "websockets")["server.py"]
    assert "gc.freeze()" not in small
    assert "at 20000 connections" in large and "gc.freeze()" in large
    compile(large, "server.py", "exec")
