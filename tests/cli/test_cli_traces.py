"""The trace and analysis commands: results, one-line errors with exit code 2, no leftovers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from wslab.cli import run
from wslab.traces.io import read_trace

GOOD = '{"t": 0.0, "dir": "s2c", "type": "a", "text": "{\\"x\\": 1}"}'


def one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    return err


def test_generate_info_and_analyse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "chat.jsonl.zst"
    assert run(["trace", "generate", "chat", "-n", "600", "--seed", "3", "-o", str(path)]) == 0
    assert len(read_trace(path)) == 600
    capsys.readouterr()
    assert run(["trace", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["messages"] == 600
    assert run(["analyse", str(path), "--json", "--window-bits", "10"]) == 0
    doc = json.loads(capsys.readouterr().out)
    keys = {"type", "dir", "messages", "bytes", "entropy_bits_per_byte", "repetition",
            "json_fraction", "deflate_ratio", "deflate_ratio_no_context", "zstd_ratio",
            "zstd_dict_ratio", "recommendation"}
    assert doc["types"] and all(keys <= set(t) for t in doc["types"])
    assert sum(t["messages"] for t in doc["types"]) == 600
    assert doc["settings"]["window_bits"] == 10


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"t": 0.0, "dir": "s2c", "type": "a"}', ["bad.jsonl:2", "text"]),
        ('{"t": 0.0, "dir": "up", "type": "a", "text": "x"}', ["bad.jsonl:2", "dir"]),
        ('{"t": 0.0, "dir": "s2c", "type": "a", "priority": "urgent", "text": "x"}',
         ["bad.jsonl:2", "priority"]),
        ('{"t": 0.0, "dir": "s2c", "type": "a", "text": "x", "b64": "eA=="}',
         ["bad.jsonl:2", "b64"]),
        ('{"t": 0.0, "dir": "s2c", "type": "a", "b64": "not base64!"}', ["bad.jsonl:2", "b64"]),
        ('{"t": -1.0, "dir": "s2c", "type": "a", "text": "x"}', ["bad.jsonl:2", "'t'"]),
        ("this is not json", ["bad.jsonl:2", "JSON"]),
    ],
)
def test_malformed_trace_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str,
                               words: list[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(GOOD + "\n" + line + "\n")
    out = tmp_path / "out.jsonl"
    for argv in (["trace", "info", str(bad)], ["analyse", str(bad)],
                 ["simulate", str(bad)]):
        assert run(argv) == 2
        one_line_error(capsys, *words)
    assert not out.exists()


def test_decreasing_time_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 1.0, "dir": "s2c", "type": "a", "text": "x"}\n'
                   '{"t": 0.5, "dir": "s2c", "type": "a", "text": "x"}\n')
    assert run(["trace", "info", str(bad)]) == 2
    one_line_error(capsys, "bad.jsonl:2", "'t'")


def _har(entries: list[dict[str, object]]) -> dict[str, object]:
    return {"log": {"version": "1.2", "entries": entries}}


def test_har_import_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "SECRET-TOKEN-123"
    entry = {
        "request": {"url": f"wss://example.test/live?token={secret}",
                    "headers": [{"name": "Cookie", "value": f"sid={secret}"}]},
        "_webSocketMessages": [
            {"type": "send", "time": 1700000000.5, "opcode": 1, "data": '{"type":"hi"}'},
            {"type": "receive", "time": 1700000000.75, "opcode": 2,
             "data": base64.b64encode(b"\x00\x01").decode()},
        ],
    }
    har = tmp_path / "cap.har"
    har.write_text(json.dumps(_har([entry])))
    out = tmp_path / "cap.jsonl"
    assert run(["trace", "import", str(har), "-o", str(out)]) == 0
    trace = read_trace(out)
    assert [(m.dir, m.t) for m in trace] == [("c2s", 0.0), ("s2c", 0.25)]
    assert secret not in out.read_text()
    empty = tmp_path / "empty.har"
    empty.write_text(json.dumps(_har([{"request": {"url": "https://example.test/"}}])))
    none_out = tmp_path / "none.jsonl"
    capsys.readouterr()
    assert run(["trace", "import", str(empty), "-o", str(none_out)]) == 2
    one_line_error(capsys, "no WebSocket")
    assert not none_out.exists() and not list(tmp_path.glob("*.part"))
    junk = tmp_path / "junk.har"
    junk.write_text("{not json")
    assert run(["trace", "import", str(junk), "-o", str(none_out)]) == 2
    one_line_error(capsys, "junk.har")


def test_unknown_generator_and_missing_file(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["trace", "generate", "poetry", "-o", str(tmp_path / "x.jsonl")]) == 2
    one_line_error(capsys, "chat")
    assert run(["trace", "info", str(tmp_path / "missing.jsonl")]) == 2
    one_line_error(capsys, "missing.jsonl")
