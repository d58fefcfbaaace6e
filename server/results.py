"""What a tool result looks like on the wire: data kept apart from instructions, sized for a model, no secrets.

Contact fields come from the public (web forms, ad clicks), so a field can hold text written to be
read as an instruction. Every result is therefore data only:

- the text content is the structured content as compact JSON, so every value is a quoted string
  and never free prose; invisible characters (bidi overrides, zero-width and Unicode tag characters,
  which can hide text from the person reading along) are written as `\\uXXXX` escapes;
- strings and lists are capped, and a `truncated` object says what was cut and how to get more;
- the secrets the server holds (API keys, the HTTP token, the Redis password) are replaced by
  `[redacted]` wherever they appear, in results, errors and log lines alike.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from server.settings import Settings

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 8
"""Shorter values are not treated as secrets: replacing them would mangle ordinary text."""

_INVISIBLE = re.compile(
    "[\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]"
)


@dataclass(frozen=True)
class Caps:
    """How much of a value a result shows."""

    string_chars: int
    list_items: int


CONTACT_CAPS = Caps(string_chars=2_000, list_items=100)
"""One contact (get_contact, find_contact, create_contact)."""
PAGE_CAPS = Caps(string_chars=300, list_items=10)
"""Each contact of a page; the page's own list of contacts is bounded by `per_page` and the cursor."""

PAGE_NOTE = (
    "Long values of this page were cut to fit a model's context (strings end in '…'). "
    f"get_contact returns one contact with up to {CONTACT_CAPS.string_chars:,} characters per value "
    f"and {CONTACT_CAPS.list_items} items per list."
)
CONTACT_NOTE = (
    f"Long values were cut to fit a model's context: strings to {CONTACT_CAPS.string_chars:,} characters "
    f"(ending in '…'), lists to their first {CONTACT_CAPS.list_items} items (the newest). The rest is only "
    "in the provider's own app."
)


def shape(structured: dict[str, Any]) -> dict[str, Any]:
    """`structured` with empty fields left out and long strings and lists cut, plus `truncated` when any was."""
    cuts: list[dict[str, Any]] = []
    caps = PAGE_CAPS if isinstance(structured.get("contacts"), list) else CONTACT_CAPS
    shaped: dict[str, Any] = {}
    for key, value in structured.items():
        if key == "contacts" and caps is PAGE_CAPS:  # bounded by per_page; each contact is capped alone
            shaped[key] = [_cut(contact, caps, f"contacts[{n}]", cuts) for n, contact in enumerate(value)]
        elif value is not None:
            shaped[key] = _cut(value, caps, key, cuts)
    if cuts:
        shaped["truncated"] = {"note": PAGE_NOTE if caps is PAGE_CAPS else CONTACT_NOTE, "cuts": cuts}
    return shaped


KEPT_WHOLE = frozenset({"id", "next_cursor"})
"""Keys whose values are handles for the next call: cutting them would make them useless."""


def _cut(value: Any, caps: Caps, path: str, cuts: list[dict[str, Any]]) -> Any:
    if isinstance(value, str):
        if len(value) <= caps.string_chars or path.rpartition(".")[2] in KEPT_WHOLE:
            return value
        cuts.append({"path": path, "shown": caps.string_chars, "total": len(value), "unit": "characters"})
        return value[: caps.string_chars - 1] + "…"
    if isinstance(value, dict):
        return {
            key: _cut(item, caps, f"{path}.{key}" if path else key, cuts)
            for key, item in cast(dict[str, Any], value).items()
            if item is not None
        }
    if isinstance(value, list):
        items = cast(list[Any], value)
        if len(items) > caps.list_items:
            cuts.append({"path": path, "shown": caps.list_items, "total": len(items), "unit": "items"})
            items = items[: caps.list_items]
        return [_cut(item, caps, f"{path}[{number}]", cuts) for number, item in enumerate(items)]
    return value


def as_text(structured: dict[str, Any]) -> str:
    """Compact JSON of `structured`, readable Unicode except characters that hide text, which are escaped."""
    text = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
    return _INVISIBLE.sub(lambda found: f"\\u{ord(found[0]):04x}" if ord(found[0]) < 0x10000 else _pair(found[0]), text)


def _pair(character: str) -> str:
    """A character outside the BMP as the JSON escape of its UTF-16 surrogate pair."""
    code = ord(character) - 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def secrets_of(settings: Settings) -> list[str]:
    """Every secret `settings` hold: the providers' keys, the HTTP token, the Redis URL's password."""
    found = [provider.key() for provider in (settings.cometly, settings.highlevel, settings.clemta)]
    if settings.http_token is not None:
        found.append(settings.http_token.get_secret_value())
    if settings.redis_url is not None:
        found.append(urlsplit(settings.redis_url.get_secret_value()).password or "")
    return found


class Redactor:
    """Replaces known secrets with `[redacted]` in text and in JSON-like values."""

    def __init__(self, secrets: Iterable[str]) -> None:
        kept = {secret for secret in secrets if len(secret) >= MIN_SECRET_CHARS}
        self._secrets = sorted(kept, key=len, reverse=True)  # a key containing another is replaced whole

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def found_in(self, text: str) -> bool:
        return any(secret in text for secret in self._secrets)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self.value(v) for k, v in cast(dict[str, Any], value).items()}
        if isinstance(value, list):
            return [self.value(item) for item in cast(list[Any], value)]
        return value


class RedactingFilter(logging.Filter):
    """A handler filter that takes every secret out of a record's message, traceback and stack."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._redactor.found_in(message):
            record.msg, record.args = self._redactor.text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redactor.text(record.stack_info)
        return True


def redact_logs(redactor: Redactor) -> None:
    """Filter every handler of the root logger through `redactor` (the SDK's and uvicorn's records included)."""
    if not redactor:
        return
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter(redactor))
