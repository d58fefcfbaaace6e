"""What a tool result looks like on the wire: data kept apart from instructions, sized for a model, no secrets.

Contact fields come from the public (web forms, ad clicks), so a field can hold text written to be
read as an instruction. Every result is therefore data only:

- the text content is the structured content as compact JSON (lists of objects as tables, see
  `as_text`), so every value is a quoted string and never free prose; invisible characters (bidi
  overrides, zero-width and Unicode tag characters, which can hide text from the person reading
  along) are written as `\\uXXXX` escapes;
- empty fields are left out, strings and lists are capped, no result passes the ceiling (`fit`),
  and a `truncated` object says what was cut and how to get more;
- the secrets the server holds (API keys, the HTTP token, the Redis password) are replaced by
  `[redacted]` wherever they appear, in results, errors and log lines alike, and so is any run of
  text covered by 8-character pieces of one (`Redactor`): a key cut short, split or echoed in part.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from .settings import Settings

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
"""Each contact of a page; the page's own length is bounded by the result ceiling and the cursor."""
CHARS_PER_TOKEN = 4
"""How the result ceiling (in tokens) is turned into characters: a common rough estimate for JSON and prose."""

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
CEILING_NOTE = (
    "The result was longer than the server's ceiling of about {tokens:,} tokens, so the longest lists were "
    "shortened (newest items kept)."
)

KEPT_WHOLE = frozenset({"id", "next_cursor"})
"""Keys whose values are handles for the next call: cutting them would make them useless."""
KEPT_EMPTY = frozenset({"contacts", "fields"})
"""Top-level lists the output schemas require, kept even when empty."""
SERVER_MADE = frozenset({"truncated", "range", "filters"})
"""Top-level values the server writes itself: already short, and never cut."""

Cuts = list[dict[str, Any]]


def prune(value: Any) -> Any:
    """`value` without None, empty strings, empty lists and empty objects, at any depth."""
    if isinstance(value, dict):
        pruned = {key: prune(item) for key, item in cast(dict[str, Any], value).items()}
        return {key: item for key, item in pruned.items() if not _empty(item)}
    if isinstance(value, list):
        return [item for item in (prune(item) for item in cast(list[Any], value)) if not _empty(item)]
    return value


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)


def shape_contact(contact: dict[str, Any], caps: Caps, path: str = "") -> tuple[dict[str, Any], Cuts]:
    """One contact with empty fields left out and long values cut; the cuts, with paths under `path`."""
    cuts: Cuts = []
    shaped = _cut(prune(contact), caps, path, cuts)
    return shaped, cuts


def shape(structured: dict[str, Any]) -> dict[str, Any]:
    """`structured` with empty fields left out and long strings and lists cut, plus `truncated` when any was.

    Shaping twice changes nothing: what was cut is within the caps, and a `truncated` already there
    (the page walker's) is kept, with any new cuts added to it.
    """
    cuts: Cuts = []
    caps = PAGE_CAPS if isinstance(structured.get("contacts"), list) else CONTACT_CAPS
    shaped: dict[str, Any] = {}
    for key, value in structured.items():
        if key == "truncated":
            continue
        if key in SERVER_MADE:
            value = prune(value)
        elif key == "contacts" and caps is PAGE_CAPS:
            value = [_cut(prune(contact), caps, f"contacts[{n}]", cuts) for n, contact in enumerate(value)]
        else:
            value = _cut(prune(value), caps, key, cuts)
        if not _empty(value) or key in KEPT_EMPTY or isinstance(value, bool):
            shaped[key] = value
    earlier = structured.get("truncated")
    if cuts:
        earlier = _merge(earlier, PAGE_NOTE if caps is PAGE_CAPS else CONTACT_NOTE, cuts)
    if earlier:
        shaped["truncated"] = earlier
    return shaped


def _merge(truncated: Any, note: str, cuts: Cuts) -> dict[str, Any]:
    """`truncated` with `note` (unless already said) and `cuts` added."""
    earlier = cast(dict[str, Any], truncated) if isinstance(truncated, dict) else {}
    notes = str(earlier.get("note") or "")
    by_path: dict[str, dict[str, Any]] = {}
    for cut in [*cast(Cuts, earlier.get("cuts") or []), *cuts]:
        if cut["path"] in by_path:  # cut again: fewer shown, of the same original total
            by_path[cut["path"]] = {**by_path[cut["path"]], "shown": cut["shown"]}
        else:
            by_path[cut["path"]] = cut
    return {"note": f"{notes} {note}".strip() if note not in notes else notes, "cuts": list(by_path.values())}


def _cut(value: Any, caps: Caps, path: str, cuts: Cuts) -> Any:
    if isinstance(value, str):
        if len(value) <= caps.string_chars or path.rpartition(".")[2] in KEPT_WHOLE:
            return value
        cuts.append({"path": path, "shown": caps.string_chars, "total": len(value), "unit": "characters"})
        return value[: caps.string_chars - 1] + "…"
    if isinstance(value, dict):
        return {
            key: _cut(item, caps, f"{path}.{key}" if path else key, cuts)
            for key, item in cast(dict[str, Any], value).items()
        }
    if isinstance(value, list):
        items = cast(list[Any], value)
        if len(items) > caps.list_items:
            cuts.append({"path": path, "shown": caps.list_items, "total": len(items), "unit": "items"})
            items = items[: caps.list_items]
        return [_cut(item, caps, f"{path}[{number}]", cuts) for number, item in enumerate(items)]
    return value


def fit(structured: dict[str, Any], max_chars: int, *, extra_chars: int = 0) -> dict[str, Any]:
    """`structured` (already shaped) made to render within `max_chars`, shortening its longest lists.

    The page walker already fits pages item by item with a cursor to resume; this is the ceiling for
    everything else (one contact with a long journey, say), and a last resort for pages. Halving the
    longest list each time keeps the newest items and takes few renders.

    Args:
        structured: The shaped result.
        max_chars: The ceiling for its text.
        extra_chars: Text the caller adds to the rendering (the sandbox's note).
    """
    if len(as_text(structured)) + extra_chars <= max_chars:
        return structured
    result = cast(dict[str, Any], json.loads(json.dumps(structured)))  # a private copy to cut in place
    note = CEILING_NOTE.format(tokens=max_chars // CHARS_PER_TOKEN)
    if "contacts" in result:
        note += " Call again with a smaller per_page or max_results to see every contact of the range."
    cuts: dict[str, dict[str, Any]] = {}

    def fitted() -> dict[str, Any]:
        listed = list(cuts.values())
        said = note if len(listed) <= MAX_CUTS_LISTED else f"{note} ({len(listed) - MAX_CUTS_LISTED} more cuts.)"
        if not listed:
            return result
        return {**result, "truncated": _merge(result.get("truncated"), said, listed[:MAX_CUTS_LISTED])}

    for _ in range(500):  # each round halves one list or string; a few hundred rounds end any realistic result
        if len(as_text(fitted())) + extra_chars <= max_chars:
            break
        longest = _longest(result)
        if longest is None:
            break
        holder, key, path = longest
        value: list[Any] | str = holder[key]
        cut = cuts.setdefault(path, {"path": path, "shown": 0, "total": len(value), "unit": "characters"})
        if isinstance(value, list):
            cut["unit"], cut["shown"] = "items", len(value) // 2
            holder[key] = value[: len(value) // 2]
        else:
            cut["shown"] = len(value) // 2
            holder[key] = value[: len(value) // 2] + "…"
    return fitted()


MAX_CUTS_LISTED = 20
"""A result cut in many places lists the first cuts and counts the rest, so the list cannot flood it."""


def _longest(value: Any, path: str = "") -> tuple[Any, Any, str] | None:
    """The container, key and path of the longest cuttable list (or, failing that, string) in `value`."""
    best: tuple[int, Any, Any, str] | None = None
    best_string: tuple[int, Any, Any, str] | None = None

    def visit(holder: Any, key: Any, item: Any, where: str) -> None:
        nonlocal best, best_string
        if isinstance(item, list) and len(cast(list[Any], item)) > 1:
            size = len(json.dumps(item))
            if best is None or size > best[0]:
                best = (size, holder, key, where)
        elif (
            isinstance(item, str)
            and len(item) > 40
            and str(key) not in KEPT_WHOLE
            and (best_string is None or len(item) > best_string[0])
        ):
            best_string = (len(item), holder, key, where)
        if isinstance(item, dict):
            for child, inner in cast(dict[str, Any], item).items():
                if not (holder is None and child in SERVER_MADE):
                    visit(item, child, inner, f"{where}.{child}" if where else child)
        elif isinstance(item, list):
            for index, inner in enumerate(cast(list[Any], item)):
                visit(item, index, inner, f"{where}[{index}]")

    visit(None, None, value, path)
    chosen = best or best_string
    return None if chosen is None else chosen[1:]


# --- Text ----------------------------------------------------------------------------------------------------------

TABLE_MIN_ROWS = 2
"""Lists of objects this long or longer are written as a table: column names once, then one row per item."""


def as_text(structured: dict[str, Any]) -> str:
    """The text a model reads: compact JSON, lists of objects as tables, characters that hide text escaped.

    A table is `{"columns": [...], "same_in_every_row": {...}, "rows": [[...], ...]}`: names are
    written once instead of once per item, a nested object's keys become `object.key` columns, a
    column with one value on every row is written once, a one-item list in a cell is its item, and
    a row shorter than the columns ends in nulls (the fullest columns come first, so it often does).
    Every string stays a JSON string, so nothing a contact's field holds can read as an instruction.
    """
    text = _encode({key: value for key, value in structured.items() if value != []})  # count_only's contacts
    return _INVISIBLE.sub(lambda found: f"\\u{ord(found[0]):04x}" if ord(found[0]) < 0x10000 else _pair(found[0]), text)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _tabular(value: Any) -> bool:
    """Whether `value` holds a list that `_encode` writes as a table."""
    if isinstance(value, dict):
        return any(_tabular(item) for item in cast(dict[str, Any], value).values())
    if isinstance(value, list):
        items = cast(list[Any], value)
        if len(items) >= TABLE_MIN_ROWS and all(isinstance(item, dict) for item in items):
            return True
        return any(_tabular(item) for item in items)
    return False


def _encode(value: Any) -> str:
    if not _tabular(value):  # one json.dumps for all of it: most results, and every cell
        return _json(value)
    if isinstance(value, dict):
        items = cast(dict[str, Any], value).items()
        return "{" + ",".join(f"{_json(key)}:{_encode(item)}" for key, item in items) + "}"
    if isinstance(value, list):
        items = cast(list[Any], value)
        if len(items) >= TABLE_MIN_ROWS and all(isinstance(item, dict) for item in items):
            return _table(cast(list[dict[str, Any]], items))
        return "[" + ",".join(_encode(item) for item in items) + "]"
    return _json(value)


def _flat(item: dict[str, Any]) -> dict[str, Any]:
    """A row's cells: nested objects' keys become `object.key`; a one-item list becomes its item."""
    cells: dict[str, Any] = {}
    for key, value in item.items():
        inner = cast(dict[str, Any], value) if isinstance(value, dict) else {}
        dotted = {f"{key}.{name}": _cell(cell) for name, cell in inner.items()}
        if dotted and not set(dotted) & set(item):  # an upstream key with a dot must not be overwritten
            cells.update(dotted)
        else:
            cells[key] = _cell(value)
    return cells


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        items = cast(list[Any], value)
        return items[0] if len(items) == 1 else items
    return value


def _table(items: list[dict[str, Any]]) -> str:
    rows = [_flat(item) for item in items]
    columns = _columns(rows)
    missing = object()
    same = {
        column: rows[0][column]
        for column in columns
        if all(row.get(column, missing) == rows[0].get(column, missing) for row in rows) and column not in KEPT_WHOLE
    }
    shown = [column for column in columns if column not in same]
    if not shown:  # identical rows: hoisting every column would leave rows of nothing
        same, shown = {}, columns
    # The fullest columns first (ids always first), so a row's empty cells gather at its end and are left out.
    filled = {column: sum(row.get(column) is not None for row in rows) for column in shown}
    shown.sort(key=lambda column: (column not in KEPT_WHOLE, -filled[column]))
    parts = ['{"columns":', _json(shown)]
    if same:
        parts += [',"same_in_every_row":', _encode(same)]
    lines = ("[" + ",".join(_encode(cell) for cell in _trimmed([row.get(c) for c in shown])) + "]" for row in rows)
    parts += [',"rows":[\n', ",\n".join(lines), "]}"]
    return "".join(parts)


def _trimmed(cells: list[Any]) -> list[Any]:
    """A row without its trailing empty cells: a row shorter than the columns ends in nulls."""
    end = len(cells)
    while end and cells[end - 1] is None:
        end -= 1
    return cells[:end]


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every key of `rows`: a new key goes just before the next key of its row already placed, else last.

    Rows leave out empty fields, so a plain union in order of appearance would put `phones` after
    the custom fields when the first contact has no phone; this keeps the model's field order.
    """
    columns: list[str] = []
    for row in rows:
        keys = list(row)
        for index, key in enumerate(keys):
            if key in columns:
                continue
            following = next((later for later in keys[index + 1 :] if later in columns), None)
            columns.insert(columns.index(following) if following is not None else len(columns), key)
    return columns


def row_chars(item: dict[str, Any]) -> int:
    """At most how many characters `item` adds as one row of a table (its columns are written once)."""
    return len(_json(list(_flat(item).values()))) + 2


def _pair(character: str) -> str:
    """A character outside the BMP as the JSON escape of its UTF-16 surrogate pair."""
    code = ord(character) - 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def secrets_of(settings: Settings) -> list[str]:
    """Every secret `settings` hold: the providers' keys, the HTTP token, the Redis and index URLs' passwords.

    The password is given as written in the URL and percent-decoded, as a client library may echo either.
    """
    found = [provider.key() for provider in (settings.cometly, settings.highlevel, settings.clemta)]
    if settings.http_token is not None:
        found.append(settings.http_token.get_secret_value())
    for url in (settings.redis_url, settings.index_url):
        if url is not None:
            password = urlsplit(url.get_secret_value()).password or ""
            found += [password, unquote(password)]
    return found


PIECE_CHARS = MIN_SECRET_CHARS
"""Any run of this many characters of a secret counts as the secret, so a cut, split or partial echo leaves none."""
_ANCHOR_CHARS = 4
_ANCHOR_STEP = PIECE_CHARS - _ANCHOR_CHARS + 1
"""Anchors are taken every 5 characters of a secret, so each of its 8-character pieces holds a whole one."""


def _as_json(secret: str) -> str:
    """`secret` as it appears inside a JSON string (quotes, backslashes and control characters escaped)."""
    return json.dumps(secret, ensure_ascii=False)[1:-1]


class Redactor:
    """Replaces every run of text covered by 8-character pieces of a known secret with `[redacted]`.

    A piece is any 8 consecutive characters of a secret, so a key cut short by a cap, split across
    two fields, interleaved with other text or echoed only in part is caught as well as a whole one;
    a run of overlapping or touching pieces becomes one `[redacted]`. Secrets shorter than
    `MIN_SECRET_CHARS` are not secrets here.

    Text with no piece costs one `str.find` per anchor (4 characters taken every 5 of each secret,
    so that every piece holds one whole): a few milliseconds per megabyte, and nothing is copied.
    Only where an anchor occurs are the 5 pieces around it looked up.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        kept = {secret for secret in secrets if len(secret) >= MIN_SECRET_CHARS}
        forms = kept | {_as_json(secret) for secret in kept}  # a value is probed as JSON text
        self._pieces = frozenset(
            form[at : at + PIECE_CHARS] for form in forms for at in range(len(form) - PIECE_CHARS + 1)
        )
        self._anchors = tuple(
            sorted(
                {
                    form[at : at + _ANCHOR_CHARS]
                    for form in forms
                    for at in range(0, len(form) - _ANCHOR_CHARS + 1, _ANCHOR_STEP)
                }
            )
        )
        self._plain = all(_as_json(secret) == secret for secret in kept)
        """No secret holds a character JSON escapes: a run found in a value's JSON text lies inside one string."""

    def __bool__(self) -> bool:
        return bool(self._pieces)

    def _runs(self, text: str) -> list[tuple[int, int]]:
        """The maximal runs of `text` covered by pieces of a secret, as (start, end), in order."""
        starts: set[int] = set()
        for anchor in self._anchors:
            at = text.find(anchor)
            while at != -1:
                starts.update(
                    start
                    for start in range(max(0, at - PIECE_CHARS + _ANCHOR_CHARS), at + 1)
                    if text[start : start + PIECE_CHARS] in self._pieces
                )
                at = text.find(anchor, at + 1)
        runs: list[tuple[int, int]] = []
        for start in sorted(starts):
            if runs and start <= runs[-1][1]:
                runs[-1] = (runs[-1][0], start + PIECE_CHARS)
            else:
                runs.append((start, start + PIECE_CHARS))
        return runs

    @staticmethod
    def _replaced(text: str, runs: list[tuple[int, int]]) -> str:
        parts: list[str] = []
        end = 0
        for start, stop in runs:
            parts += [text[end:start], REDACTED]
            end = stop
        parts.append(text[end:])
        return "".join(parts)

    def text(self, text: str) -> str:
        """`text` with every run covered by pieces of a secret replaced by `[redacted]`."""
        runs = self._runs(text)
        return self._replaced(text, runs) if runs else text

    def found_in(self, value: Any) -> bool:
        """Whether a piece of a secret is in `value`: a string, or a JSON value (keys included)."""
        if isinstance(value, str):
            return bool(self._runs(value))
        redacted = self.value(value)  # the JSON text may show a piece no string holds (`\\n` + `abc...`)
        return redacted is not value and redacted != value

    def value(self, value: Any) -> Any:
        """A JSON value with every string (keys included) redacted as `text` does; `value` itself when it holds none.

        The check is one pass over the value's JSON text. Only when it finds a piece is a copy made,
        from that text with the runs replaced when every secret is plain, else string by string.
        """
        if isinstance(value, str):
            return self.text(value)
        if not self:
            return value
        probe = self._probe(value)
        if probe is None:
            return self._each(value)
        runs = self._runs(probe)
        if not runs:
            return value
        if self._plain:
            try:  # a run that is not inside a string (a number, say) breaks the JSON: then string by string
                return json.loads(self._replaced(probe, runs))
            except ValueError:
                pass
        return self._each(value)

    @staticmethod
    def _probe(value: Any) -> str | None:
        try:
            return json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):  # not a JSON value after all
            return None

    def _each(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            items = cast(dict[Any, Any], value).items()
            return {self.text(k) if isinstance(k, str) else k: self._each(v) for k, v in items}
        if isinstance(value, list | tuple):
            return [self._each(item) for item in cast(list[Any], value)]
        return value


class RedactingFilter(logging.Filter):
    """A handler filter that takes every piece of a secret out of a record's message, traceback and stack."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._redactor.text(message)
        if redacted is not message:
            record.msg, record.args = redacted, None
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
