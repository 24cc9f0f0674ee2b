"""The ``wslab`` command line (typer).

What lives here: the top-level app, the error boundary, and the registration of the
sub-command modules beside this file. Commands parse arguments and call into the package;
they hold no logic of their own beyond formatting. A :class:`wslab.errors.WslabError` from
anywhere below becomes one line on stderr and exit code 2, never a traceback. Ctrl-C
(SIGINT, even if inherited as ignored), SIGTERM and SIGHUP unwind the command so that
whatever it started is stopped (``wslab.harness.lifeline``): exit code 130, or 128 + the
signal.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

import typer
from typer import Abort

try:  # typer >= 0.20 carries its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore[no-redef,attr-defined,import-not-found,assignment,unused-ignore]
from rich.console import Console

from wslab.cli import (
    analyse_cmd,
    config_cmd,
    demo_cmd,
    export_cmd,
    lab_cmd,
    live_cmd,
    plan_cmd,
    probe_cmd,
    recommend_cmd,
    report_cmd,
    scale_cmd,
    simulate_cmd,
    sweep_cmd,
    trace_cmd,
)
from wslab.errors import WslabError
from wslab.harness.lifeline import StopRequest, stop_signals

app = typer.Typer(
    name="wslab",
    help="A lab for tuning WebSocket performance: batching, compression, connections.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(trace_cmd.app, name="trace")
app.add_typer(config_cmd.app, name="config")
app.command("analyse")(analyse_cmd.analyse)
app.command("simulate")(simulate_cmd.simulate)
app.command("sweep")(sweep_cmd.sweep)
app.command("bench")(live_cmd.bench)
app.command("serve")(live_cmd.serve)
app.command("load")(live_cmd.load)
app.command("probe")(probe_cmd.probe)
app.command("scale")(scale_cmd.scale)
app.command("plan")(plan_cmd.plan)
app.command("recommend")(recommend_cmd.recommend)
app.command("export")(export_cmd.export)
app.command("report")(report_cmd.report)
app.command("demo")(demo_cmd.demo)
app.command("lab")(lab_cmd.lab)

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    stop = StopRequest()
    try:
        with stop_signals() as stop:  # Ctrl-C and SIGTERM unwind: every child is stopped
            result = app(args=list(argv) if argv is not None else None, prog_name="wslab",
                         standalone_mode=False)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except NoArgsIsHelpError:
        return 0  # typer has printed the help
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "wslab"
        _stderr.print(f"{where}: error: {exc.format_message()} (see {where} --help)",
                      markup=False)
        return 2
    except ClickException as exc:
        _stderr.print(f"wslab: error: {exc.format_message()}", markup=False)
        return exc.exit_code
    except WslabError as exc:
        _stderr.print(f"wslab: error: {exc}", markup=False)
        return 2
    except (KeyboardInterrupt, Abort):
        result = 130  # typer turns KeyboardInterrupt into exit code 130 itself
    if result == 130 or stop.signum is not None:
        what = "interrupted" if stop.signum in (None, signal.SIGINT) else (
            f"stopped by {signal.Signals(stop.signum).name}")
        _stderr.print(f"wslab: {what}", markup=False)
        return stop.exit_code
    return result if isinstance(result, int) else 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
