"""What a tool result looks like on the wire: data kept apart from instructions, sized for a model, no secrets.

Contact fields come from the public (web forms, ad clicks), so a field can hold text written to be
read as an instruction. Every result is therefore data only:

- the text content is the structured content as compact JSON (lists of records as tables, see
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
from dataclasses import dataclass, field
from types import UnionType
from typing import Annotated, Any, Literal, Union, cast, get_args, get_origin
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, JsonValue

from ..tools.models import Contact
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


def fit(
    structured: dict[str, Any], max_chars: int, *, extra_chars: int = 0, model: type[BaseModel] | None = None
) -> dict[str, Any]:
    """`structured` (already shaped) made to render within `max_chars`, shortening its longest lists.

    The page walker already fits pages item by item with a cursor to resume; this is the ceiling for
    everything else (one contact with a long journey, say), and a last resort for pages. Halving the
    longest list each time keeps the newest items and takes few renders.

    Args:
        structured: The shaped result.
        max_chars: The ceiling for its text.
        extra_chars: Text the caller adds to the rendering (the sandbox's note).
        model: The result's model, which `as_text` writes it by.
    """
    if len(as_text(structured, model)) + extra_chars <= max_chars:
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
        if len(as_text(fitted(), model)) + extra_chars <= max_chars:
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

Kind = Literal["record", "mapping", "list", "scalar", "open"]


@dataclass(frozen=True, eq=False)
class Layout:
    """How the text writes one place of a result, as the result's model types it.

    `record`: a model, its known keys in the model's order; `mapping`: `dict[str, T]`, keys unknown;
    `list`: `list[T]`; `scalar`: text, numbers, booleans; `open`: `JsonValue` or anything untyped,
    written as plain JSON whatever it holds (a table there could not be told from data shaped like one).
    """

    kind: Kind
    fields: dict[str, Layout] = field(default_factory=dict[str, "Layout"])
    """A record's known keys, in its model's order."""
    item: Layout | None = None
    """A list's items, a mapping's values."""
    tables: bool = False
    """Whether a table is written here or anywhere under here (else the whole value is one `json.dumps`)."""

    def child(self, key: str) -> Layout:
        """The layout of `key`'s value: a known field's, a mapping's values', else open."""
        if self.kind == "mapping" and self.item is not None:
            return self.item
        return self.fields.get(key, OPEN)

    @property
    def is_row(self) -> bool:
        """Whether a list of these is a list of records, so a table."""
        return self.kind in ("record", "mapping")

    @property
    def of_scalars(self) -> bool:
        """A list of plain values (`list[str]`): a one-item one is written as its item in a table's cell."""
        return self.kind == "list" and self.item is not None and self.item.kind == "scalar"


OPEN = Layout("open")
SCALAR = Layout("scalar")
_SCALARS = (str, int, float, bool)
_RECORDS: dict[type[BaseModel], Layout] = {}


def layout_of(annotation: Any) -> Layout:
    """The layout of a value typed `annotation` (a model class, or a field's annotation)."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if annotation is JsonValue or annotation is Any:
        return OPEN
    if origin is Annotated:
        return layout_of(args[0])
    if origin is Literal or annotation in _SCALARS:
        return SCALAR
    if origin is Union or origin is UnionType:
        members = [layout_of(member) for member in args if member is not type(None)]
        if len(members) == 1:
            return members[0]
        return SCALAR if all(member is SCALAR for member in members) else OPEN
    if origin is list and args:
        item = layout_of(args[0])
        return Layout("list", item=item, tables=item.is_row or item.tables)
    if origin is dict and len(args) == 2:
        value = layout_of(args[1])
        return Layout("mapping", item=value, tables=value.tables)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _record(annotation)
    return OPEN


def _record(model: type[BaseModel]) -> Layout:
    if model not in _RECORDS:
        _RECORDS[model] = OPEN  # a model that holds itself is written as plain JSON below its first level
        fields = {name: layout_of(info.annotation) for name, info in model.model_fields.items()}
        _RECORDS[model] = Layout("record", fields=fields, tables=any(child.tables for child in fields.values()))
    return _RECORDS[model]


def as_text(structured: dict[str, Any], model: type[BaseModel] | None = None) -> str:
    """The text a model reads: compact JSON, lists of records as tables, characters that hide text escaped.

    Where `model` (the tool's result model) types a value as a list of records (`list[SomeModel]`,
    `list[dict[str, ...]]`), a non-empty list is a table, whatever its length:
    `{"columns": [...], "same_in_every_row": {...}, "rows": [[...], ...]}` (see `_table`); an empty
    one is `[]`. Without a model, or where it types a value as `JsonValue`, the value is plain JSON.
    Every string stays a JSON string, so nothing a contact's field holds can read as an instruction.
    """
    return _escaped(_encode(structured, OPEN if model is None else layout_of(model)))


def _escaped(text: str) -> str:
    """`text` with every character that can hide text written as its JSON escape."""
    return _INVISIBLE.sub(lambda found: f"\\u{ord(found[0]):04x}" if ord(found[0]) < 0x10000 else _pair(found[0]), text)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _encode(value: Any, layout: Layout) -> str:
    if not layout.tables:  # one json.dumps for all of it: most results, and most cells
        return _json(value)
    if layout.kind == "list" and layout.item is not None and isinstance(value, list):
        items = cast(list[Any], value)
        if layout.item.is_row and items and all(isinstance(item, dict) for item in items):
            return _table(cast(list[dict[str, Any]], items), layout.item)
        return "[" + ",".join(_encode(item, layout.item) for item in items) + "]"
    if layout.is_row and isinstance(value, dict):
        pairs = cast(dict[str, Any], value).items()
        return "{" + ",".join(f"{_json(key)}:{_encode(item, layout.child(key))}" for key, item in pairs) + "}"
    return _json(value)


@dataclass(frozen=True)
class _Column:
    name: str
    key: str
    inner: str | None
    """The key inside `key`'s object, for an `object.key` column."""
    layout: Layout

    def cell(self, item: dict[str, Any]) -> Any:
        """The cell of `item` in this column: None when it has none."""
        value = item.get(self.key)
        if self.inner is not None:
            value = cast(dict[str, Any], value).get(self.inner) if isinstance(value, dict) else None
        if self.layout.of_scalars and isinstance(value, list):
            items = cast(list[Any], value)
            return items[0] if len(items) == 1 else items
        return value


def _natural(key: str) -> tuple[list[tuple[int, str]], str]:
    """A sort key that puts profile_field_2 before profile_field_10 and ignores case, then the key itself."""
    return [(int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", key.casefold())], key


def _columns(items: list[dict[str, Any]], row: Layout) -> list[_Column]:
    """Every column a table of `items` may have, in a fixed order for records of `row`'s layout.

    The model's keys first, in its order; an object among them (a model or `dict[str, ...]`) as
    `object.key` columns, its model's keys in order and then any other keys sorted; then keys the
    model does not name, sorted. Sorted is by `_natural`, so the order never depends on which
    record came first or had what. An object is kept as one column when some record holds it as
    something else, or when a flattened name would clash with a key of that name.
    """
    present: dict[str, None] = {}
    for item in items:
        present.update(dict.fromkeys(item))
    unknown = sorted((key for key in present if key not in row.fields), key=_natural)
    clashing = set(unknown)
    columns: list[_Column] = []
    for key, layout in row.fields.items():
        if key not in present:
            continue
        values = [item.get(key) for item in items]
        if layout.is_row and all(value is None or isinstance(value, dict) for value in values):
            inner: dict[str, None] = {}
            for value in values:
                inner.update(dict.fromkeys(cast(dict[str, Any], value or {})))
            known = [name for name in layout.fields if name in inner]
            names = known + sorted((name for name in inner if name not in layout.fields), key=_natural)
            if not clashing & {f"{key}.{name}" for name in names}:
                columns += [_Column(f"{key}.{name}", key, name, layout.child(name)) for name in names]
                continue
        columns.append(_Column(key, key, None, layout))
    return columns + [_Column(key, key, None, row.child(key)) for key in unknown]


def _cells(item: dict[str, Any], columns: list[_Column]) -> list[str | None]:
    """`item`'s cells as JSON text, None where it has none."""
    return [None if (cell := column.cell(item)) is None else _encode(cell, column.layout) for column in columns]


def _table(items: list[dict[str, Any]], row: Layout) -> str:
    """Records written once as column names, then one row per record, every row as long as the columns.

    The columns come in `_columns`' fixed order; a column no record has a value for is left out,
    an empty cell is `null`, a one-item list of plain values (an email, a tag) is written as its
    item, and with two rows or more a column with the same value in every row (never `id`) is
    written once in `same_in_every_row`, unless every column is (then the rows would be empty).
    """
    columns = _columns(items, row)
    rows = [_cells(item, columns) for item in items]
    kept = [index for index in range(len(columns)) if any(cells[index] is not None for cells in rows)]
    same: list[int] = []
    if len(rows) > 1:
        same = [
            index
            for index in kept
            if columns[index].name not in KEPT_WHOLE and all(cells[index] == rows[0][index] for cells in rows)
        ]
        if len(same) == len(kept):
            same = []
    shown = [index for index in kept if index not in same]
    parts = ['{"columns":', _json([columns[index].name for index in shown])]
    if same:
        hoisted = ",".join(f"{_json(columns[index].name)}:{rows[0][index]}" for index in same)
        parts += [',"same_in_every_row":{', hoisted, "}"]
    lines = ("[" + ",".join(cells[index] or _NULL for index in shown) + "]" for cells in rows)
    parts += [',"rows":[\n', ",\n".join(lines), "]}"]
    return "".join(parts)


_NULL = "null"


def row_chars(item: dict[str, Any], columns: Iterable[str] = (), model: type[BaseModel] = Contact) -> int:
    """How many characters `item` takes as a row of a table of `model` records, its line break included.

    That is its row exactly as written when no column is in `same_in_every_row` (which only takes
    characters out of rows), with a `null` for each of `columns` it has no cell in.
    """
    own = _own_columns(item, model)
    cells = [cell for cell in _cells(item, own) if cell is not None]
    nulls = len({*columns} - {column.name for column in own if column.cell(item) is not None})
    return len(_escaped("[" + ",".join(cells) + "]")) + (len(_NULL) + 1) * nulls + 2


def _own_columns(item: dict[str, Any], model: type[BaseModel]) -> list[_Column]:
    row = layout_of(model)
    return _columns([item], row)


class TableGrowth:
    """The columns and rows of a table being filled a record at a time, for what each next one adds.

    The page walker adds `row_chars(item)` and `padding(item)` to stay under the result ceiling.
    """

    def __init__(self, model: type[BaseModel] = Contact) -> None:
        self._model = model
        self._columns: dict[str, None] = {}
        self._rows = 0

    def padding(self, item: dict[str, Any]) -> int:
        """What `item` adds beyond `row_chars(item)`: its nulls, and for each column it is the first to fill, the
        column's name and a null in every earlier row."""
        names = self._names(item)
        new = [name for name in names if name not in self._columns]
        nulls = len(self._columns) - (len(names) - len(new))
        return (len(_NULL) + 1) * (nulls + self._rows * len(new)) + sum(len(_escaped(_json(name))) + 1 for name in new)

    def add(self, item: dict[str, Any]) -> None:
        """Count `item` as the table's next row."""
        self._columns.update(dict.fromkeys(self._names(item)))
        self._rows += 1

    def _names(self, item: dict[str, Any]) -> list[str]:
        return [column.name for column in _own_columns(item, self._model) if column.cell(item) is not None]


def _pair(character: str) -> str:
    """A character outside the BMP as the JSON escape of its UTF-16 surrogate pair."""
    code = ord(character) - 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def secrets_of(settings: Settings) -> list[str]:
    """Every secret `settings` hold: provider and account keys, the HTTP token, the OAuth client secret, Redis and
    index passwords.

    The password is given as written in the URL and percent-decoded, as a client library may echo either.
    """
    found = [provider.key() for provider in (settings.cometly, settings.highlevel, settings.clemta)]
    found += [key.get_secret_value() for key in settings.account_keys]
    tokens = (settings.http_token, settings.oauth_client_secret)
    found += [secret.get_secret_value() for secret in tokens if secret is not None]
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
