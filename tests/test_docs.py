"""The configuration reference names every setting the service reads."""

from __future__ import annotations

import re
from pathlib import Path

from interlink.core.settings import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"`INTERLINK_{name.upper()}`" not in text]
    assert missing == [], f"docs/configuration.md lacks: {missing}"


def test_documented_settings_exist() -> None:
    text = (DOCS / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `INTERLINK_([A-Z_]+)`", text, flags=re.MULTILINE))
    test_only = {"REQUIRE_SERVICES", "TEST_POSTGRES_URL", "TEST_REDIS_URL"}
    unknown = sorted(documented - {n.upper() for n in Settings.model_fields} - test_only)
    assert unknown == [], f"docs/configuration.md documents settings that do not exist: {unknown}"
