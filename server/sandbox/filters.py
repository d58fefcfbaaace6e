"""Cometly's custom-field filters: the query syntax, its validation, and its meaning in SQL.

A condition arrives as bracketed query keys (`custom_field_filters[0][field]=profile_field_5`, with
`[operator]`, `[value]`, `[start]`, `[end]`); up to ten of them AND together. The semantics follow
Cometly's documentation, with MySQL's defaults where it is silent:

- text compares case- and accent-insensitively, as MySQL's default collation does; `_` and `\\` in a
  value are literals (the documentation names only those two, so `%` stays a LIKE wildcard);
- `any` means "has a value" (numbers: > 0); `unknown` means empty or unset (numbers: 0 or unset);
  `not_equal_to` and `not_contains` never match an unset field;
- dates compare by calendar day in the Space's timezone (UTC here), as `whereDate` does, so
  `equal_to` covers the whole day; an age is the whole days from the date to today, as MySQL's
  DATEDIFF counts them.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from .laravel import ValidationErrors, attribute, is_numeric, parse_integer
from .model import SlotType, parse_day, parse_slot_key, slot_key, slot_type

MAX_CONDITIONS = 10

OPERATORS: Mapping[SlotType, tuple[str, ...]] = {
    SlotType.TEXT: (
        "equal_to",
        "not_equal_to",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
        "contains_word",
        "any",
        "unknown",
    ),
    SlotType.NUMBER: (
        "equal_to",
        "not_equal_to",
        "greater_than",
        "greater_than_or_equal_to",
        "less_than",
        "less_than_or_equal_to",
        "any",
        "unknown",
    ),
    SlotType.DATE: (
        "equal_to",
        "between",
        "greater_than",
        "less_than",
        "age_greater_than",
        "age_equal_to",
        "age_less_than",
        "any",
        "unknown",
    ),
}

_VALUELESS = frozenset({"any", "unknown"})
_AGE = frozenset({"age_greater_than", "age_equal_to", "age_less_than"})
_KEY = re.compile(r"custom_field_filters\[([^\]]*)\]\[([^\]]*)\]")
_PARTS = ("field", "operator", "value", "start", "end")

FOLD_FUNCTION = "sandbox_fold"
WORD_FUNCTION = "sandbox_has_word"


@dataclass(frozen=True)
class Condition:
    """One validated filter condition.

    `value` is a str for text, a float for numbers, a date for date comparisons and an int (days)
    for ages; `start` and `end` are set only for `between`.
    """

    slot: int
    operator: str
    value: str | float | date | None = None
    start: date | None = None
    end: date | None = None


def parse_conditions(
    params: Iterable[tuple[str, str]], labels: Mapping[int, str], errors: ValidationErrors
) -> list[Condition]:
    """Read and validate the filter conditions of a query string.

    Args:
        params: The query's key/value pairs in order; a repeated key keeps its last value, as PHP does.
        labels: The Space's configured labels by slot; only labelled slots may be filtered.
        errors: Where problems are recorded, keyed like Laravel (`custom_field_filters.0.operator`).

    Returns:
        The valid conditions (an invalid one is left out and reported in `errors`).
    """
    raw: dict[str, dict[str, str]] = {}
    malformed = False
    for key, value in params:
        if not key.startswith("custom_field_filters"):
            continue
        match = _KEY.fullmatch(key)
        if match is None:
            malformed = True
            continue
        raw.setdefault(match.group(1), {})[match.group(2)] = value
    if malformed:
        errors.add("custom_field_filters", "The custom field filters field must be an array.")
        return []
    if len(raw) > MAX_CONDITIONS:
        errors.add(
            "custom_field_filters", f"The custom field filters field must not have more than {MAX_CONDITIONS} items."
        )
        return []
    conditions: list[Condition] = []
    for index, parts in raw.items():
        condition = _parse_one(f"custom_field_filters.{index}", parts, labels, errors)
        if condition is not None:
            conditions.append(condition)
    return conditions


def _parse_one(
    prefix: str, parts: Mapping[str, str], labels: Mapping[int, str], errors: ValidationErrors
) -> Condition | None:
    # Laravel's ConvertEmptyStringsToNull makes `value=` count as missing.
    given = {part: parts[part] for part in _PARTS if parts.get(part, "") != ""}
    slot = _parse_field(f"{prefix}.field", given.get("field"), labels, errors)
    operator = given.get("operator")
    if operator is None:
        errors.required(f"{prefix}.operator")
        return None
    if slot is None:
        return None
    kind = slot_type(slot)
    if operator not in OPERATORS[kind]:
        allowed = ", ".join(OPERATORS[kind])
        errors.add(
            f"{prefix}.operator",
            f"The {attribute(prefix)}.operator must be one of {allowed} for the {kind} field {slot_key(slot)}.",
        )
        return None
    if operator in _VALUELESS:
        return Condition(slot=slot, operator=operator)
    if operator == "between":
        start = _parse_date(f"{prefix}.start", given.get("start"), errors)
        end = _parse_date(f"{prefix}.end", given.get("end"), errors)
        if start is None or end is None:
            return None
        return Condition(slot=slot, operator=operator, start=start, end=end)
    key = f"{prefix}.value"
    raw = given.get("value")
    if raw is None:
        errors.required(key)
        return None
    if operator in _AGE:
        days = parse_integer(raw)
        if days is None or days < 0:
            errors.add(key, f"The {attribute(key)} field must be a whole number of days (0 or more).")
            return None
        return Condition(slot=slot, operator=operator, value=days)
    if kind is SlotType.NUMBER:
        if not is_numeric(raw):
            errors.add(key, f"The {attribute(key)} field must be a number.")
            return None
        return Condition(slot=slot, operator=operator, value=float(raw))
    if kind is SlotType.DATE:
        day = _parse_date(key, raw, errors)
        return None if day is None else Condition(slot=slot, operator=operator, value=day)
    return Condition(slot=slot, operator=operator, value=raw)


def _parse_field(key: str, raw: str | None, labels: Mapping[int, str], errors: ValidationErrors) -> int | None:
    if raw is None:
        errors.required(key)
        return None
    slot = parse_slot_key(raw)
    if slot is None:
        errors.add(key, f"The {attribute(key)} field must be one of profile_field_1 to profile_field_30.")
        return None
    if slot not in labels:
        errors.add(
            key,
            f"The {attribute(key)} field refers to {raw}, which has no label in this space; "
            "only custom fields configured with a label can be filtered.",
        )
        return None
    return slot


def _parse_date(key: str, raw: str | None, errors: ValidationErrors) -> date | None:
    if raw is None:
        errors.required(key)
        return None
    day = parse_day(raw)
    if day is None:
        errors.add(key, f"The {attribute(key)} field must match the format Y-m-d or Y-m-d H:i:s.")
    return day


def fold(text: str | None) -> str | None:
    """Case- and accent-insensitive form of a text, standing in for MySQL's `utf8mb4_0900_ai_ci`."""
    if text is None:
        return None
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


@functools.lru_cache(maxsize=256)
def _word_pattern(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)")


def has_word(text: str | None, word: str | None) -> int | None:
    """1 when the folded `word` stands in the folded `text` as a whole word, like MySQL's `\\b` REGEXP."""
    folded_text, folded_word = fold(text), fold(word)
    if folded_text is None or folded_word is None:
        return None
    return int(_word_pattern(folded_word).search(folded_text) is not None)


def register_functions(connection: sqlite3.Connection) -> None:
    """Install the SQL functions the conditions use on a connection."""
    connection.create_function(FOLD_FUNCTION, 1, fold, deterministic=True)
    connection.create_function(WORD_FUNCTION, 2, has_word, deterministic=True)


def _like_literal(text: str) -> str:
    # Escape only what the documentation promises is literal; `%` keeps its wildcard meaning.
    return text.replace("\\", "\\\\").replace("_", "\\_")


def condition_sql(condition: Condition, today: date) -> tuple[str, list[object]]:
    """The SQL predicate (over table `contacts`) and parameters of one condition.

    Args:
        condition: A validated condition.
        today: The current day in the Space's timezone, for the age operators.

    Returns:
        A parenthesised predicate and its positional parameters.
    """
    column = slot_key(condition.slot)
    kind = slot_type(condition.slot)
    if kind is SlotType.TEXT:
        return _text_sql(column, condition)
    if kind is SlotType.NUMBER:
        return _number_sql(column, condition)
    return _date_sql(column, condition, today)


def _text_sql(column: str, condition: Condition) -> tuple[str, list[object]]:
    operator = condition.operator
    if operator == "any":
        return f"({column} IS NOT NULL AND {column} <> '')", []
    if operator == "unknown":
        return f"({column} IS NULL OR {column} = '')", []
    value = fold(str(condition.value)) or ""
    folded = f"{FOLD_FUNCTION}({column})"
    if operator == "equal_to":
        return f"({folded} = ?)", [value]
    if operator == "not_equal_to":
        return f"({column} IS NOT NULL AND {folded} <> ?)", [value]
    if operator == "contains_word":
        return f"({WORD_FUNCTION}({column}, ?) = 1)", [value]
    pattern = {
        "contains": f"%{_like_literal(value)}%",
        "not_contains": f"%{_like_literal(value)}%",
        "starts_with": f"{_like_literal(value)}%",
        "ends_with": f"%{_like_literal(value)}",
    }[operator]
    negate = "NOT " if operator == "not_contains" else ""
    return f"({column} IS NOT NULL AND {folded} {negate}LIKE ? ESCAPE '\\')", [pattern]


_NUMBER_OPS = {
    "equal_to": "=",
    "not_equal_to": "<>",
    "greater_than": ">",
    "greater_than_or_equal_to": ">=",
    "less_than": "<",
    "less_than_or_equal_to": "<=",
}


def _number_sql(column: str, condition: Condition) -> tuple[str, list[object]]:
    if condition.operator == "any":
        return f"({column} > 0)", []
    if condition.operator == "unknown":
        return f"({column} IS NULL OR {column} = 0)", []
    # A NULL column fails every comparison, so not_equal_to leaves unset fields out by itself.
    return f"({column} {_NUMBER_OPS[condition.operator]} ?)", [condition.value]


def _date_sql(column: str, condition: Condition, today: date) -> tuple[str, list[object]]:
    operator = condition.operator
    if operator == "any":
        return f"({column} IS NOT NULL)", []
    if operator == "unknown":
        return f"({column} IS NULL)", []
    # Stored as `YYYY-MM-DD HH:MM:SS`, so the first ten characters are the calendar day and compare as text.
    day = f"substr({column}, 1, 10)"
    if operator == "between":
        assert condition.start is not None
        assert condition.end is not None
        return f"({day} BETWEEN ? AND ?)", [condition.start.isoformat(), condition.end.isoformat()]
    if operator in _AGE:
        assert isinstance(condition.value, int)
        # age > n  <=>  day < today - n, and likewise for = and <.
        try:
            pivot = (today - timedelta(days=condition.value)).isoformat()
        except OverflowError:
            pivot = "0000-00-00"  # before year 1: sorts below every stored day

        comparison = {"age_greater_than": "<", "age_equal_to": "=", "age_less_than": ">"}[operator]
        return f"({day} {comparison} ?)", [pivot]
    assert isinstance(condition.value, date)
    comparison = {"equal_to": "=", "greater_than": ">", "less_than": "<"}[operator]
    return f"({day} {comparison} ?)", [condition.value.isoformat()]
