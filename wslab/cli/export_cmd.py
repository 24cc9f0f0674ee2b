"""``wslab export``: write a config as files real servers accept.

What lives here: the typer command function :func:`export` (argument parsing, the
printed list of files, and for each target written whether wslab's tests prove it by
running it). What must not live here: rendering or writing logic, which is in
:mod:`wslab.tune.export`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wslab.cli.common import out


def export(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG",
                                                help="TuningConfig YAML/JSON to export")],
    target: Annotated[str, typer.Option(
        "--target", "-t",
        help="wslab | websockets | uvicorn | aiohttp | ws | socketio | python-socketio | "
        "nginx | uwebsockets | centrifugo | all")] = "all",
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o",
                                             help="directory to write into")] = Path("out/export"),
    upstream_port: Annotated[int, typer.Option(
        "--upstream-port", help="nginx: port of the first backend (backends on consecutive "
        "ports, one per scaling.workers)")] = 8765,
    listen_port: Annotated[int, typer.Option(
        "--listen-port", help="nginx: port nginx listens on (127.0.0.1)")] = 8080,
    dictionaries_path: Annotated[Path | None, typer.Option(
        "--dictionaries", help="zstd-dict: a dictionary set file to ship")] = None,
    trace: Annotated[Path | None, typer.Option(
        "--trace", help="zstd-dict: train the dictionary set on this trace, as the "
        "simulator does (a prefix of each message type), and ship it")] = None,
) -> None:
    """Export CONFIG for a server target; every file says what the target cannot express."""
    from wslab.config import TuningConfig
    from wslab.errors import WslabError
    from wslab.tune.export import export as run_export
    from wslab.tune.export import target_rows

    config = TuningConfig.load(config_path)
    if dictionaries_path is not None and trace is not None:
        raise WslabError("give --dictionaries or --trace, not both")
    dictionaries = None
    if dictionaries_path is not None:
        from wslab.codecs.zstd_dict import DictionarySet

        dictionaries = DictionarySet.load(dictionaries_path)
    elif trace is not None and config.compression.algorithm == "zstd-dict":
        from wslab.sim.dictionaries import dictionary_plan
        from wslab.traces.io import read_trace

        plan = dictionary_plan(read_trace(trace), config.compression)
        dictionaries = plan.dictionaries
        out.print(plan.note)
    paths = run_export(config, target, output_dir, dictionaries=dictionaries,
                       upstream_port=upstream_port, listen_port=listen_port)
    for path in paths:
        out.print(f"wrote {path}")
    for row in target_rows(target):
        proven = "yes" if row["proven_by_running"] else "no"
        out.print(f"{row['target']}: proven by running: {proven} ({row['how']})")
