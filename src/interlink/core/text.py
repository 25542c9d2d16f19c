"""Control characters in text a user supplies (names, header values, reasons, templates)."""

from __future__ import annotations

import re
from typing import Final

CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x1f\x7f]")
"""The C0 control characters and DEL (CR, LF, NUL, tab, ...)."""

_CONTROL_EXCEPT_TAB: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def has_control_characters(text: str, *, allow_tab: bool = False) -> bool:
    """True when ``text`` holds a C0 control character or DEL (a tab passes with ``allow_tab``,
    as HTTP header values allow it)."""
    return (_CONTROL_EXCEPT_TAB if allow_tab else CONTROL_CHARACTERS).search(text) is not None
