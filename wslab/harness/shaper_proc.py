"""The link shaper as a process of its own: a command line and a handle to start it.

What lives here: ``python -m wslab.harness.shaper_proc`` (prints the listening port first,
shapes until SIGTERM or SIGINT, then prints its stats as one JSON line) and
:class:`ShaperProcess`, which starts that command (tied to its parent by
``lifeline``, in a session of its own) and stops it. The shaping itself is
:class:`~wslab.harness.shaper.LinkShaper`'s. Running it apart keeps the proxy's timers off
the event loop of whatever it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import select
import signal
import subprocess
import sys
from dataclasses import asdict
from typing import Any

from wslab.errors import ConfigError
from wslab.harness import lifeline
from wslab.harness.shaper import LinkShaper
from wslab.link import LinkProfile, get_profile, profile_from_dict


async def _serve(args: argparse.Namespace) -> int:
    profile = profile_from_dict(json.loads(args.profile_json)) if args.profile_json else (
        get_profile(args.profile)
    )
    host, _, port = args.target.rpartition(":")
    shaper = LinkShaper(
        profile, host, int(port), listen_host=args.listen_host, listen_port=args.port,
        seed=args.seed, allow_remote=args.allow_remote,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(await shaper.start(), flush=True)
    await stop.wait()
    await shaper.stop()
    print(json.dumps(shaper.stats.as_dict()), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: print the listening port, shape until SIGTERM/SIGINT, print stats JSON."""
    ap = argparse.ArgumentParser(prog="python -m wslab.harness.shaper_proc", description=__doc__)
    ap.add_argument("--profile", default="loopback", help="preset name or YAML/JSON file")
    ap.add_argument("--profile-json", default="", help="LinkProfile fields as a JSON object")
    ap.add_argument("--target", required=True, help="HOST:PORT to forward to")
    ap.add_argument("--listen-host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--allow-remote", action="store_true")
    args = ap.parse_args(argv)
    try:
        return asyncio.run(_serve(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


class ShaperProcess:
    """A :class:`LinkShaper` in a child process (``python -m wslab.harness.shaper_proc``).

    Args:
        profile: The link; passed to the child as JSON, so custom profiles work.
        target_host: Target address.
        target_port: Target port.
        seed: Jitter/loss seed.
        listen_port: Port for the child to listen on (0 = free port).
        timeout: Seconds to wait for the child to report its port.
    """

    def __init__(
        self, profile: LinkProfile, target_host: str, target_port: int, *,
        seed: int = 0, listen_port: int = 0, timeout: float = 10.0,
    ) -> None:
        fields = asdict(profile)
        cmd = [
            sys.executable, "-m", "wslab.harness.shaper_proc", "--profile-json", json.dumps(fields),
            "--target", f"{target_host}:{target_port}", "--port", str(listen_port),
            "--seed", str(seed),
        ]
        self.proc: subprocess.Popen[str] = lifeline.popen(  # dies with us, even on SIGKILL
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True, death_signal=signal.SIGKILL)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            self.proc.kill()
            _, err = self.proc.communicate()
            raise RuntimeError(f"shaper process failed to start: {err.strip() or line!r}")
        self.port = int(line)
        self.stats: dict[str, Any] | None = None

    def stop(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """SIGTERM the child, wait (then SIGKILL), and return its final stats (None if it
        printed none)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        lines = [ln for ln in out.splitlines() if ln.strip()]
        self.stats = json.loads(lines[-1]) if lines else None
        return self.stats

    def __enter__(self) -> ShaperProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
