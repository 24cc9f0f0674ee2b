"""``wslab config``: the JSON Schema and a documented default file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from wslab.atomic import atomic_write_text
from wslab.cli.common import out
from wslab.config import TuningConfig, default_yaml

app = typer.Typer(help="Inspect and write TuningConfig files.", no_args_is_help=True)


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of the config file."""
    print(json.dumps(TuningConfig.json_schema(), indent=2))


@app.command("default")
def default(
    output: Annotated[Path | None, typer.Option("-o", "--output", help="write here")] = None,
) -> None:
    """Print (or write) the default config, every field commented."""
    text = default_yaml()
    if output is None:
        print(text, end="")
        return
    atomic_write_text(output, text)
    out.print(f"wrote {output}")


@app.command("check")
def check(path: Path) -> None:
    """Validate a config file; print it back with every default filled in."""
    print(TuningConfig.load(path).to_yaml(), end="")
