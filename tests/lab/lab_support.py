"""Helpers the lab tests share: paths, a venv kernelspec, a free loopback port."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "out" / "test-artifacts"


def write_kernelspec(root: Path) -> Path:
    """A ``python3`` kernelspec under ``root/kernels`` that runs this interpreter."""
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (wslab venv)",
        "language": "python",
        "metadata": {"debugger": False},
    }))
    return spec


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
