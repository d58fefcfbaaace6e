"""The Laravel behaviours Cometly's API shows: validation errors, boolean flags and cursors.

Cometly is a Laravel application, so its 422 bodies, its `boolean` rule and its cursor pagination
follow the framework's defaults; reproducing those here keeps clients honest about the real shapes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import cast

from starlette.responses import JSONResponse

_NUMERIC = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")
_INTEGER = re.compile(r"([+-]?)(\d+)")


def attribute(key: str) -> str:
    """How Laravel names a field in a message: underscores become spaces (`start_date` -> `start date`)."""
    return key.replace("_", " ")


class ValidationErrors:
    """Collects field errors the way Laravel's validator does, then renders its 422 body."""

    def __init__(self) -> None:
        self._errors: dict[str, list[str]] = {}

    def __bool__(self) -> bool:
        return bool(self._errors)

    def add(self, key: str, message: str) -> None:
        """Record one message for a field key such as `emails.0` or `custom_field_filters.2.value`."""
        self._errors.setdefault(key, []).append(message)

    def required(self, key: str) -> None:
        """Record Laravel's `required` message."""
        self.add(key, f"The {attribute(key)} field is required.")

    def response(self) -> JSONResponse:
        """The 422 body: the first message plus `(and N more errors)`, and every message by field."""
        messages = [message for field in self._errors.values() for message in field]
        summary = messages[0]
        if len(messages) > 1:
            more = len(messages) - 1
            summary += f" (and {more} more error{'s' if more > 1 else ''})"
        return JSONResponse({"message": summary, "errors": self._errors}, status_code=422)


def parse_boolean(raw: str) -> bool | None:
    """A query flag under the `boolean` rule: 1/0/true/false; None when the value is none of those."""
    return {"1": True, "0": False, "true": True, "false": False}.get(raw)


def is_numeric(raw: str) -> bool:
    """PHP's `is_numeric`, which Laravel's `numeric` rule applies to strings."""
    return _NUMERIC.fullmatch(raw) is not None


def parse_integer(raw: str) -> int | None:
    """A string under Laravel's `integer` rule, or None when it is not one.

    Magnitudes beyond 10^18 come back as ±10^18: no limit here is near it, and Python refuses
    to convert integer strings of thousands of digits.
    """
    match = _INTEGER.fullmatch(raw)
    if match is None:
        return None
    digits = match.group(2).lstrip("0") or "0"
    magnitude = int(digits) if len(digits) <= 18 else 10**18
    return -magnitude if match.group(1) == "-" else magnitude


@dataclass(frozen=True)
class Cursor:
    """A Laravel cursor over `ORDER BY id DESC`: the id at the page edge and the direction from it."""

    id: int
    points_to_next_items: bool

    def encode(self) -> str:
        """Laravel's encoding: URL-safe base64 of compact JSON, padding removed."""
        payload = json.dumps({"id": self.id, "_pointsToNextItems": self.points_to_next_items}, separators=(",", ":"))
        return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, encoded: str) -> Cursor | None:
        """Read a cursor from `encode`, or from plain base64; None when it is not one."""
        text = encoded.replace("-", "+").replace("_", "/")
        try:
            payload = json.loads(base64.b64decode(text + "=" * (-len(text) % 4), validate=True))
        except (binascii.Error, ValueError, RecursionError):  # PHP's json_decode gives up past 512 levels too
            return None
        if not isinstance(payload, dict):
            return None
        fields = cast("dict[str, object]", payload)
        row_id = fields.get("id")
        direction = fields.get("_pointsToNextItems")
        if isinstance(row_id, str) and row_id.isascii() and row_id.isdigit():  # not "²", which int() refuses
            row_id = int(row_id)
        if isinstance(row_id, bool) or not isinstance(row_id, int) or not isinstance(direction, bool):
            return None
        if not 0 <= row_id < 2**63:
            return None
        return cls(id=row_id, points_to_next_items=direction)
