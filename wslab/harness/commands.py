"""The JSON-lines protocol between ``wslab scale`` and the workers and holders it drives.

What lives here, once for both ends: :class:`Cmd` (every command's name), one frozen
dataclass per command with its fields and defaults, :func:`encode` (a command as the one
line the coordinator writes), :func:`parse_command` (a line back into a command, or a
:class:`CommandError` saying what is wrong with it), one ``TypedDict`` per answer and
:func:`expect`, which checks an answer has the keys its type promises. What must not live
here: what a command does (the worker's and holder's handlers in ``procs.py``), the pipes
(``cluster.py``: :class:`~wslab.harness.cluster.Child`).

A command is one JSON object per line, ``{"cmd": NAME, FIELD: VALUE, ...}``; each gets
exactly one JSON line back, or ``{"error": "..."}``. Workers answer ``broadcast``,
``direct``, ``stats``, ``purge`` and ``quit``; holders print a :class:`Ready` line after
their ramp and then answer ``count``, ``wait``, ``report``, ``clock`` and ``close``
(``quit`` and ``close`` answer ``{"ok": true}`` and end the process's command loop). A
holder on a Dask worker is first its task (``holder_relay.py``), which answers ``clock``
on the same host's clock until ``start`` starts the holder process.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Literal, TypedDict, TypeVar

from wslab.errors import WslabError


class CommandError(WslabError):
    """A command line that is not one this protocol knows, or an answer missing keys."""


class Cmd(StrEnum):
    """Every command's name, as it appears under ``"cmd"``."""

    BROADCAST = "broadcast"
    DIRECT = "direct"
    STATS = "stats"
    PURGE = "purge"
    QUIT = "quit"
    COUNT = "count"
    WAIT = "wait"
    REPORT = "report"
    CLOSE = "close"
    CLOCK = "clock"
    START = "start"


@dataclass(frozen=True)
class Broadcast:
    """Worker: publish ``count`` broadcasts of ``size`` bytes, ``interval_s`` apart,
    numbered from ``start_seq``."""

    cmd: ClassVar[Cmd] = Cmd.BROADCAST
    count: int
    size: int = 256
    interval_s: float = 0.5
    start_seq: int = 0


@dataclass(frozen=True)
class Direct:
    """Worker: send ``count`` direct messages to connections the registry names (held by
    other workers when there are several)."""

    cmd: ClassVar[Cmd] = Cmd.DIRECT
    count: int
    size: int = 128
    interval_s: float = 0.005


@dataclass(frozen=True)
class Stats:
    """Worker: its counters (:class:`WorkerStats`)."""

    cmd: ClassVar[Cmd] = Cmd.STATS


@dataclass(frozen=True)
class Purge:
    """Worker: remove a dead worker's entries from the registry."""

    cmd: ClassVar[Cmd] = Cmd.PURGE
    worker: str


@dataclass(frozen=True)
class Quit:
    """Worker: stop."""

    cmd: ClassVar[Cmd] = Cmd.QUIT


@dataclass(frozen=True)
class Count:
    """Holder: messages received so far and connections open."""

    cmd: ClassVar[Cmd] = Cmd.COUNT


@dataclass(frozen=True)
class Wait:
    """Holder: wait until every open connection has ``per_connection`` messages of
    ``kind`` (``b`` broadcast, ``d`` direct) or ``timeout`` seconds passed."""

    cmd: ClassVar[Cmd] = Cmd.WAIT
    kind: str
    per_connection: int
    timeout: float = 30.0


@dataclass(frozen=True)
class Report:
    """Holder: every receipt and which connections are still open."""

    cmd: ClassVar[Cmd] = Cmd.REPORT


@dataclass(frozen=True)
class Close:
    """Holder: close every connection and stop."""

    cmd: ClassVar[Cmd] = Cmd.CLOSE


@dataclass(frozen=True)
class Clock:
    """Holder: its clock's reading now (:class:`Clocked`), for the coordinator's offset
    estimate (``clock.py``)."""

    cmd: ClassVar[Cmd] = Cmd.CLOCK


@dataclass(frozen=True)
class Start:
    """Holder on Dask: its task, which answered ``clock`` until now, starts the holder
    process (:class:`Started`); the holder's ``ready`` line follows after its ramp."""

    cmd: ClassVar[Cmd] = Cmd.START


Command = (Broadcast | Direct | Stats | Purge | Quit | Count | Wait | Report | Close | Clock
           | Start)
COMMANDS: dict[Cmd, type[Command]] = {c.cmd: c for c in (
    Broadcast, Direct, Stats, Purge, Quit, Count, Wait, Report, Close, Clock, Start)}
WORKER_COMMANDS = frozenset({Cmd.BROADCAST, Cmd.DIRECT, Cmd.STATS, Cmd.PURGE, Cmd.QUIT})
HOLDER_COMMANDS = frozenset({Cmd.COUNT, Cmd.WAIT, Cmd.REPORT, Cmd.CLOSE, Cmd.CLOCK,
                             Cmd.START})
_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,)}


def encode(command: Command) -> str:
    """The line (without its newline) that carries ``command``."""
    return json.dumps({"cmd": command.cmd.value, **dataclasses.asdict(command)})


def parse_command(line: str | bytes) -> Command:
    """The command a line carries.

    Raises:
        CommandError: The line is not a JSON object, names no command or an unknown one,
            lacks a field, has one the command does not take, or a field of the wrong type;
            the message says which and shows the start of the line.
    """
    text = line.decode(errors="replace") if isinstance(line, bytes) else line
    shown = text.strip()[:120]
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"command line is not JSON ({exc.msg}): {shown!r}") from None
    if not isinstance(obj, dict):
        raise CommandError(f"command line is not a JSON object: {shown!r}")
    name = obj.pop("cmd", None)
    if name is None:
        raise CommandError(f"command line has no \"cmd\": {shown!r}")
    try:
        kind = COMMANDS[Cmd(name)]
    except ValueError:
        known = ", ".join(c.value for c in Cmd)
        raise CommandError(f"unknown command {name!r} (known: {known})") from None
    fields = {f.name: f for f in dataclasses.fields(kind)}
    extra = sorted(set(obj) - set(fields))
    if extra:
        raise CommandError(f"{name}: unknown field(s) {', '.join(extra)}")
    missing = [n for n, f in fields.items() if n not in obj
               and f.default is dataclasses.MISSING]
    if missing:
        raise CommandError(f"{name}: missing field(s) {', '.join(missing)}")
    for key, value in obj.items():
        wanted = _TYPES[str(fields[key].type)]
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise CommandError(f"{name}: {key} must be {fields[key].type}, "
                               f"not {json.dumps(value)[:40]}")
    return kind(**obj)


# Answers. Each names the keys its reader relies on.

class Ready(TypedDict):
    """A holder's first line, once its ramp is over."""

    event: Literal["ready"]
    opened: int
    failed: int
    first_error: str | None
    started: float
    done: list[float]


class Sent(TypedDict):
    """``broadcast``'s answer."""

    sent: int


class DirectSent(TypedDict):
    """``direct``'s answer: how many, and by which route (local, remote, unknown, failed)."""

    sent: int
    routes: dict[str, int]


class Purged(TypedDict):
    """``purge``'s answer."""

    purged: int


class WorkerStats(TypedDict):
    """``stats``'s answer (a dead worker is ``{"worker": ID, "dead": True}`` instead)."""

    worker: str
    held: int
    registered: int
    counts: dict[str, int]
    fanout_ms: list[float]
    fanout_cpu_ms: list[float]
    fanout_prepared: int
    fanout_pushed: int
    gc: dict[str, int] | None
    gc_pauses: dict[str, Any] | None
    admission: dict[str, Any]
    metrics: dict[str, int]
    compress_ns: int
    compressed_frames: int
    shared_frames: int
    shared_compressions: int
    shared_encode_ns: int


class Counted(TypedDict):
    """``count``'s answer."""

    b: int
    d: int
    open: int
    closed_early: int
    close_codes: dict[str, int]


class Waited(TypedDict):
    """``wait``'s answer."""

    received: int
    open: int


class Receipts(TypedDict):
    """``report``'s answer: receipts are (connection, kind, seq, t sent, t received)."""

    receipts: list[list[Any]]
    alive: list[int]
    closed_early: int
    close_codes: dict[str, int]
    other_messages: int


class Clocked(TypedDict):
    """``clock``'s answer: the holder's ``time.monotonic()`` when it read the command (the
    clock its receipts are stamped on)."""

    t: float


class Started(TypedDict):
    """``start``'s answer (from a Dask holder's task): the holder process it started."""

    ok: bool
    pid: int


A = TypeVar("A")


def expect(kind: type[A], answer: dict[str, Any], who: str) -> A:
    """``answer`` as the answer type ``kind``, once every key that type needs is there.

    Raises:
        CommandError: Naming ``who`` answered and the keys it left out.
    """
    needed: frozenset[str] = getattr(kind, "__required_keys__", frozenset())
    missing = sorted(needed - set(answer))
    if missing:
        raise CommandError(f"{who} answered without {', '.join(missing)}: "
                           f"{json.dumps(answer)[:160]}")
    return answer  # type: ignore[return-value]
