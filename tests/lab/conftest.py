"""Shared set-up for the lab tests: a kernel from this venv, isolated Jupyter dirs.

The notebook and browser tests start kernels. On a fresh CI machine the kernel named
``python3`` might be a system one (another Python, no wslab), so the fixture writes a
private kernelspec that runs *this* interpreter and puts it first on ``JUPYTER_PATH``;
Jupyter's config, data and runtime dirs go to a temporary folder too, so nothing a user
has installed changes what the tests see, and the tests write nothing outside it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from lab.lab_support import jupyter_dirs


@pytest.fixture(scope="session")
def jupyter_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment variables for kernels and servers started by the lab tests.

    Also applied to this process for the session (nbclient reads them here).
    """
    env = jupyter_dirs(tmp_path_factory.mktemp("jupyter"))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
