"""``wslab scale --url``: connection load against a fleet wslab did not start.

The fleet is a plain python-websockets server started here (no wslab code), which closes
every ``CLOSE_EVERY``-th connection after a short while with code 4001 and counts the
connections it accepted; the run must find exactly that out, with its holders here or on
two Dask workers. Bad URLs and remote hosts without ``--allow-remote`` fail in one line.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from dask_support import dask_cluster

from wslab.cli import run as cli_run
from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness.scale import ScaleOptions, run_scale
from wslab.harness.scale_fleet import parse_fleet_url

CLOSE_EVERY = 5
FLEET = textwrap.dedent("""
    import asyncio, itertools, sys
    from websockets.asyncio.server import serve
    counter = itertools.count(1)
    accepted = 0
    async def handler(ws):
        global accepted
        accepted += 1
        if next(counter) % {every} == 0:
            await asyncio.sleep(0.3)
            await ws.close(4001, "fleet says bye")
            return
        await ws.wait_closed()
    async def main():
        async with serve(handler, "127.0.0.1", 0, ping_interval=None) as s:
            print(s.sockets[0].getsockname()[1], flush=True)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sys.stdin.readline)  # until the test asks
            print(accepted, flush=True)
    asyncio.run(main())
""").format(every=CLOSE_EVERY)


class Fleet:
    def __init__(self, folder: Path) -> None:
        script = folder / "fleet.py"
        script.write_text(FLEET)
        self.proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = f"ws://127.0.0.1:{int(self.proc.stdout.readline())}/"

    def accepted(self) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path)
    try:
        yield f
    finally:
        f.stop()


def _check(summary: dict[str, object], n: int, accepted: int) -> None:
    closed = n // CLOSE_EVERY
    assert summary["fleet_url"] is not None
    assert summary["opened"] == n == accepted
    assert summary["failed"] == 0
    assert summary["closed_early"] == closed
    assert summary["close_codes"] == {"4001": closed}
    assert summary["held_at_end"] == n - closed
    assert summary["not_measured"]  # says what a fleet run cannot give
    assert "broadcast_latency_ms" not in summary


def test_a_fleet_is_loaded_and_what_it_did_is_reported(fleet: Fleet) -> None:
    n = 300
    summary = run_scale(TuningConfig(), ScaleOptions(
        connections=n, holders=2, idle_s=1.0, fleet_url=fleet.url)).summary
    _check(summary, n, fleet.accepted())
    assert summary["connections_per_s"] is not None and summary["connections_per_s"] > 0


def test_a_fleet_loaded_from_dask_workers(fleet: Fleet, tmp_path: Path) -> None:
    n = 400
    (tmp_path / "dask").mkdir()
    with dask_cluster(tmp_path / "dask") as address:
        summary = run_scale(TuningConfig(), ScaleOptions(
            connections=n, holders=2, idle_s=1.0, fleet_url=fleet.url,
            cluster=address)).summary
    _check(summary, n, fleet.accepted())
    clocks = summary["clock_offsets"]
    assert isinstance(clocks, list) and len(clocks) == 2
    assert len({row["worker"] for row in clocks}) == 2  # one holder on each Dask worker
    assert all(row["uncertainty_ms"] is not None for row in clocks)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/", "wss://127.0.0.1:8000/",
                                 "ws://127.0.0.1:port/", "ws:///nohost"])
def test_malformed_fleet_urls_fail_in_one_line(url: str) -> None:
    with pytest.raises(WslabError, match="--url"):
        parse_fleet_url(url)


def test_a_remote_fleet_needs_allow_remote() -> None:
    with pytest.raises(WslabError, match="--allow-remote"):
        parse_fleet_url("ws://10.1.2.3:8080/")
    target = parse_fleet_url("ws://10.1.2.3:8080/x", allow_remote=True)
    assert target.remote and target.url == "ws://10.1.2.3:8080/x"
    assert not parse_fleet_url("ws://localhost:9/").remote
    assert not parse_fleet_url("ws://127.0.0.9:9/").remote


def test_the_cli_refuses_a_remote_fleet_without_allow_remote(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_run(["scale", "--url", "ws://10.1.2.3:8080/", "-n", "5"]) == 2
    err = capsys.readouterr().err
    assert "--allow-remote" in err and "Traceback" not in err
    assert cli_run(["scale", "--url", "ws://127.0.0.1:9/", "--storm"]) == 2
    assert "--storm" in capsys.readouterr().err
