"""The API key format: ``il_<env>_<32 random base62><6 base62 CRC32 checksum>``.

32 base62 characters carry 190 bits of entropy. The checksum lets anyone (a secret scanner, a log
filter, the verifier before any lookup) recognise a real-looking key offline. The display prefix
(``il_live_Ab12Cd``) reveals 6 random characters and is safe to show and store.
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass

from interlink.core.enums import IntegrationEnvironment

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6
PREFIX_RANDOM_CHARS = 6
_TAGS = {env.key_tag: env for env in IntegrationEnvironment}
KEY_RE = re.compile(
    "^il_(live|stage|test|dev)_([0-9A-Za-z]{"
    + str(RANDOM_LENGTH)
    + "})([0-9A-Za-z]{"
    + str(CHECKSUM_LENGTH)
    + r"})\Z"
)
"""The whole key, nothing around it (``\\Z``: unlike ``$``, no trailing newline is accepted)."""


_PAIRS = [first + second for first in BASE62 for second in BASE62]
"""Every two-digit base62 string, by value (0 to 62² - 1): three lookups encode a checksum."""
_PAIR_BASE = len(_PAIRS)


def checksum(head: str) -> str:
    """CRC32 of ``il_<env>_<random>`` as six base62 digits, most significant first, zero-padded."""
    high, low = divmod(zlib.crc32(head.encode()), _PAIR_BASE)
    top, middle = divmod(high, _PAIR_BASE)  # CRC32 < 2**32 < 62**6, so ``top`` < 62**2
    return _PAIRS[top] + _PAIRS[middle] + _PAIRS[low]


def is_well_formed(key: str) -> bool:
    """True when ``key`` has the Interlink format and a correct checksum (``parse_key`` minus the result)."""
    return KEY_RE.match(key) is not None and checksum(key[:-CHECKSUM_LENGTH]) == key[-CHECKSUM_LENGTH:]


def generate_key(environment: IntegrationEnvironment) -> str:
    """A new random key for ``environment``."""
    body = "".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH))
    head = f"il_{environment.key_tag}_{body}"
    return head + checksum(head)


@dataclass(frozen=True, slots=True)
class ParsedKey:
    environment: IntegrationEnvironment
    prefix: str


def parse_key(key: str) -> ParsedKey | None:
    """The key's environment and display prefix, or None when the format or checksum is wrong."""
    match = KEY_RE.match(key)
    if match is None:
        return None
    if checksum(key[:-CHECKSUM_LENGTH]) != match.group(3):
        return None
    tag = match.group(1)
    return ParsedKey(environment=_TAGS[tag], prefix=f"il_{tag}_{match.group(2)[:PREFIX_RANDOM_CHARS]}")


def display_prefix(key: str) -> str:
    """The non-secret start of a key, as stored and shown."""
    tag, _, rest = key[3:].partition("_")
    return f"il_{tag}_{rest[:PREFIX_RANDOM_CHARS]}"
