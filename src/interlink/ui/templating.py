"""Jinja2 environment and static assets of the dashboard (all shipped inside the package)."""

from __future__ import annotations

import json
from datetime import datetime
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from interlink import __version__

STATIC_TYPES = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}


def format_time(value: datetime | None) -> str:
    """``2024-05-01 12:34:56 UTC``, or an em dash for no value."""
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def risk_level(score: int) -> str:
    """The band of a risk score as documented in :mod:`interlink.keys.security`."""
    if score >= 70:
        return "high"
    if score >= 40:
        return "medium"
    return "low"


def compact_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def pretty_json(value: Any) -> str:
    """Indented JSON in its own key order, for payloads, filters and schemas."""
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("interlink.ui", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = format_time
    env.filters["risk_level"] = risk_level
    env.filters["json"] = compact_json
    env.filters["pretty_json"] = pretty_json
    env.globals["version"] = __version__
    return env


TEMPLATES = _environment()


def render(template: str, **context: Any) -> str:
    return TEMPLATES.get_template(template).render(**context)


def load_static() -> dict[str, bytes]:
    """The static files by name, read once from the package."""
    folder = resources.files("interlink.ui") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_TYPES}
