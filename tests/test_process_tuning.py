"""Serving processes tune the garbage collector once started (``runtime.tune_garbage_collector``).

Each check runs in a fresh interpreter: the collector's settings are process-wide and frozen
objects are never collected, so the test process itself must stay untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from interlink.core.migrate import upgrade
from interlink.runtime import YOUNG_GENERATION_THRESHOLD

ROOT = Path(__file__).resolve().parents[1]

TUNE = """
import gc, json
from interlink.runtime import tune_garbage_collector
before = gc.get_threshold()
tune_garbage_collector()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""

SERVE = """
import gc, json, sys
from pathlib import Path
from starlette.testclient import TestClient
from interlink.http.app import create_app
from tests.conftest import make_settings
settings = make_settings(sys.argv[1], Path(sys.argv[2]), run_worker=False)
seen = {}
for tune in (False, True):
    app = create_app(settings, access_log=False, tune_gc_after_start=tune)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        seen[str(tune)] = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
print(json.dumps(seen))
"""


def run_python(code: str, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_tuning_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    seen = run_python(TUNE)
    before, after = seen["before"], seen["after"]
    assert isinstance(before, list) and isinstance(after, list)
    assert before[0] < YOUNG_GENERATION_THRESHOLD == after[0] == 10_000
    assert after[1:] == before[1:]  # the older generations keep Python's settings
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 10_000


def test_the_server_app_tunes_only_when_asked(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{(tmp_path / 'tune.db').as_posix()}"
    upgrade(url)
    seen = run_python(SERVE, url, str(tmp_path / "data"))
    untuned, tuned = seen["False"], seen["True"]
    assert isinstance(untuned, dict) and isinstance(tuned, dict)
    assert untuned["threshold"][0] < YOUNG_GENERATION_THRESHOLD and untuned["frozen"] == 0
    assert tuned["threshold"][0] == YOUNG_GENERATION_THRESHOLD and tuned["frozen"] > 10_000
