"""Reading back the opaque cursors this server gives out: URL-safe base64 of one small, flat JSON object.

A cursor comes back from a model, which may pass anything: text that is not base64, bytes that are
not UTF-8, JSON nested thousands deep, `NaN`, numbers of a thousand digits, a key given twice, a
string holding a lone surrogate. `decode_fields` reads only the form the server writes, one JSON
object with exactly the expected keys and string, integer or null values, and answers None for
anything else, so each caller refuses it in its own words (`[validation_error]`), never by crashing.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Set
from typing import Any

MAX_CURSOR_CHARS = 4_096
"""Longer text is refused before it is decoded (the tools take cursors of at most 2,000 characters)."""

Field = str | int | None
"""The values a cursor's fields may have."""

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def decode_fields(encoded: str, keys: Set[str]) -> dict[str, Field] | None:
    """The fields of a cursor, when it is base64url of a JSON object with exactly `keys`; else None.

    Values are strings (encodable as UTF-8), integers (not booleans) or null; floats, `NaN`,
    `Infinity`, booleans, arrays, nested objects and duplicate keys make the cursor unreadable.
    """
    if len(encoded) > MAX_CURSOR_CHARS or not _BASE64URL.fullmatch(encoded):
        return None
    body = encoded.rstrip("=")
    try:
        text = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
        fields: Any = json.loads(text, object_pairs_hook=_unique, parse_float=_refuse, parse_constant=_refuse)
    except (ValueError, RecursionError):  # binascii and Unicode errors are ValueErrors; deep nesting recurses
        return None
    if not isinstance(fields, dict) or fields.keys() != keys:
        return None
    checked: dict[str, Field] = {}
    for key, value in fields.items():  # pyright: ignore[reportUnknownVariableType]
        if not (value is None or (isinstance(value, int) and not isinstance(value, bool)) or _encodable(value)):
            return None
        checked[str(key)] = value  # pyright: ignore[reportUnknownArgumentType]
    return checked


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise ValueError("a key is given twice")
    return fields


def _refuse(text: str) -> Any:
    raise ValueError(f"{text[:20]} is not a value a cursor holds")


def _encodable(value: Any) -> bool:
    """A string that can be sent on (a JSON `\\ud800` escape decodes to a lone surrogate, which cannot)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
