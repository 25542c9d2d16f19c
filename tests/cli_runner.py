"""Run the ``interlink`` command inside the test process, with a subprocess's contract.

Starting ``interlink`` as a subprocess costs a Python start-up and the import of the whole package
(about a second) per invocation; most CLI tests make dozens. ``run_interlink`` invokes the same
Typer application in-process and answers a ``subprocess.CompletedProcess`` with the exit code,
stdout and stderr a shell would have seen:

* ``env`` is the command's whole environment, as for ``subprocess.run``: variables missing from it
  are unset for the duration of the call, then everything is put back;
* an exception that escapes the command is reported the way the interpreter would report it
  (exit code 1, ``Traceback`` on stderr), so tests that assert on tracebacks still catch them;
* logging configured by the command (server-side commands call ``configure_logging``) and
  structlog's configuration are restored afterwards, so nothing points at the captured streams;
  the cached ``get_settings()`` is cleared before and after, so the command reads its settings
  from the environment it was given;
* invocations are serialised by a lock (the environment and the standard streams are
  process-wide), so async tests may call it from worker threads (``asyncio.to_thread``).

Unlike a subprocess, the command shares this process's module state: a clock shift made by a test
(``interlink.core.clock``) is seen by the command too.

Each test module that uses it keeps at least one test on the real executable (``INTERLINK``) so the
console-script entry point itself stays covered.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import structlog
import typer
from typer.testing import CliRunner

from interlink.core.settings import get_settings

INTERLINK = str(Path(sys.executable).with_name("interlink"))

_lock = threading.Lock()
# The loggers ``configure_logging`` changes besides the root logger.
_TOUCHED_LOGGERS = (
    "aiosqlite",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "psycopg",
    "alembic.runtime.plugins",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
)


@cache
def _app() -> typer.Typer:
    from interlink.cli.main import app

    return app


@contextmanager
def _logging_restored() -> Iterator[None]:
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    saved = {
        name: (list(lg.handlers), lg.level, lg.propagate)
        for name in _TOUCHED_LOGGERS
        for lg in [logging.getLogger(name)]
    }
    saved_structlog: dict[str, Any] = dict(structlog.get_config())
    try:
        yield
    finally:
        root.handlers[:] = saved_root[0]
        root.setLevel(saved_root[1])
        for name, (handlers, level, propagate) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate
        structlog.configure(**saved_structlog)


def run_interlink(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    real: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``interlink *args`` in-process; ``env`` defaults to this process's environment.
    ``real=True`` runs the installed executable instead (a subprocess, 60 s timeout)."""
    if real:
        return subprocess.run(
            [INTERLINK, *args],
            env=None if env is None else dict(env),
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
    wanted = dict(os.environ if env is None else env)
    with _lock:
        changes: dict[str, str | None] = {k: None for k in os.environ if k not in wanted}
        changes.update({k: v for k, v in wanted.items() if os.environ.get(k) != v})
        runner = CliRunner()
        get_settings.cache_clear()  # a fresh process reads its settings from its environment
        with _logging_restored():
            result = runner.invoke(
                _app(), list(args), input=input, env=changes, prog_name="interlink", catch_exceptions=True
            )
        get_settings.cache_clear()
        stderr = result.stderr
        code = result.exit_code
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            assert result.exc_info is not None
            stderr += "".join(traceback.format_exception(*result.exc_info))
            code = 1
    return subprocess.CompletedProcess(["interlink", *args], code, result.stdout, stderr)
