"""The coordinator's command protocol: one definition, typed, and a clear error per bad line."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from wslab.config import TuningConfig
from wslab.harness import commands as c
from wslab.harness.cluster import python_child

EVERY = [c.Broadcast(count=3, size=64, interval_s=0.1, start_seq=7), c.Direct(count=2),
         c.Stats(), c.Purge(worker="1"), c.Quit(), c.Count(),
         c.Wait(kind="b", per_connection=5, timeout=2.5), c.Report(), c.Close()]


@pytest.mark.parametrize("command", EVERY, ids=lambda x: type(x).__name__)
def test_every_command_survives_encode_and_parse(command: c.Command) -> None:
    line = c.encode(command)
    assert json.loads(line)["cmd"] == command.cmd.value
    assert c.parse_command(line) == command
    assert c.parse_command(line.encode() + b"\n") == command


def test_every_name_has_exactly_one_command_and_one_side() -> None:
    assert set(c.COMMANDS) == set(c.Cmd)
    assert set(c.Cmd) == c.WORKER_COMMANDS | c.HOLDER_COMMANDS
    assert not c.WORKER_COMMANDS & c.HOLDER_COMMANDS


def test_defaults_fill_what_the_line_leaves_out() -> None:
    got = c.parse_command('{"cmd": "broadcast", "count": 2}')
    assert got == c.Broadcast(count=2, size=256, interval_s=0.5, start_seq=0)
    assert c.parse_command('{"cmd": "wait", "kind": "d", "per_connection": 1, "timeout": 3}'
                           ) == c.Wait(kind="d", per_connection=1, timeout=3.0)


@pytest.mark.parametrize(("line", "says"), [
    ("broadcast 5", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"count": 1}', 'no "cmd"'),
    ('{"cmd": "explode"}', "unknown command 'explode'"),
    ('{"cmd": "broadcast"}', "missing field(s) count"),
    ('{"cmd": "purge"}', "missing field(s) worker"),
    ('{"cmd": "stats", "verbose": true}', "unknown field(s) verbose"),
    ('{"cmd": "broadcast", "count": "5"}', "count must be int"),
    ('{"cmd": "broadcast", "count": true}', "count must be int"),
    ('{"cmd": "broadcast", "count": 1, "interval_s": "fast"}', "interval_s must be float"),
    ('{"cmd": "purge", "worker": 1}', "worker must be str"),
])
def test_a_malformed_line_says_what_is_wrong(line: str, says: str) -> None:
    with pytest.raises(c.CommandError) as info:
        c.parse_command(line)
    assert says in str(info.value)


def test_expect_names_who_answered_and_what_is_missing() -> None:
    assert c.expect(c.Sent, {"sent": 3}, "worker 0") == {"sent": 3}
    with pytest.raises(c.CommandError, match=r"holder 2 answered without b, open"):
        c.expect(c.Counted, {"d": 1, "closed_early": 0, "close_codes": {}}, "holder 2")


def test_a_worker_answers_a_malformed_line_with_an_error_and_keeps_serving() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "c.yaml"
        TuningConfig().updated({"compression.algorithm": "none"}).save(cfg)
        worker = python_child(["worker", "--config", str(cfg), "--port", "0"], "worker")
        try:
            assert worker.readline(30).isdigit()
            assert worker.proc.stdin is not None
            worker.proc.stdin.write('{"cmd": "broadcast", "count": "many"}\n')
            worker.proc.stdin.flush()
            answer = json.loads(worker.readline(10))
            assert "count must be int" in answer["error"]
            # a holder's command is refused by name, then a good one is still answered
            worker.proc.stdin.write(c.encode(c.Count()) + "\n")
            worker.proc.stdin.flush()
            assert "does not take 'count'" in json.loads(worker.readline(10))["error"]
            stats = c.expect(c.WorkerStats, worker.ask(c.Stats()), "worker")
            assert stats["held"] == 0 and stats["fanout_ms"] == []
            worker.ask(c.Quit())
        finally:
            worker.stop(5)
