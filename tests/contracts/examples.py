"""`full_example`: a vendor's documented answer with every property present.

For "nothing the vendor returns is dropped" tests: feed it to the product through respx and look
for every value in what the tool returns.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from contacts_mcp.server.undocumented import Vendor
from tests.contracts.checks import JSON, Received, Resolver, contracts

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
"""Date-time strings count seconds up from here, dates days."""
_STRUCTURAL = frozenset({"properties", "items", "allOf", "oneOf", "anyOf", "type", "enum", "const", "format"})
"""Keywords beside a `$ref` that change what a value must be (others, e.g. `description`, do not)."""


def full_example(vendor: Vendor, method: str, path: str, status: int = 200) -> Any:
    """A body of the documented answer to `method path` with `status`, every property present.

    Guarantees:
    - Every property an object schema declares is present, recursively, with refs resolved and
      `allOf` members merged; `additionalProperties` adds no key.
    - An array holds one item; one whose items are `oneOf`/`anyOf` alternatives holds one item per
      alternative, so every alternative's properties show (Cometly's conversions and touchpoints).
      Elsewhere `oneOf`/`anyOf` takes the first alternative that is not only null.
    - Strings are unique and say where they are: the key and a counter (`firstName-3`), honouring
      `format`: `email` gives `firstname-3@example.com`, `date-time` `YYYY-MM-DDTHH:MM:SSZ` (UTC,
      whole seconds, so it survives normalisation to ISO 8601 unchanged), `date` `YYYY-MM-DD`,
      `uri` `https://example.com/firstname-3`, `uuid` a UUID. A string without `format` whose own
      `example` is a date-time, date, email or http(s) URL gets that format (HighLevel leaves
      `format` off and shows it in examples: `dateAdded` is `2021-07-02T05:18:26.704Z`).
    - `const` and `enum` give their value (the first non-null one); integers are the counter, other
      numbers the counter plus a half, so every number differs; booleans are true; a union or
      nullable type takes its first non-null type; a property without a type is a string.
    - The body validates against the contract, checked here with the request that asks for
      everything (for Cometly the endpoint's `full_request` in `endpoints.json`, e.g. every
      `include_*` flag on); if it cannot (a `pattern` this builder does not satisfy), this raises
      rather than return an example the contract refuses.

    Args:
        vendor: Whose contract.
        method: The method, e.g. `GET`.
        path: The contract's path template (`/contacts/{contactId}`), or a path it matches.
        status: A status the operation documents with a schema.

    Returns:
        The parsed-JSON body (dicts, lists, strings, numbers, booleans).

    Raises:
        LookupError: The contract has no such operation, or no schema for `status`.
        AssertionError: The example does not validate against the contract.
    """
    contract = contracts()[vendor]
    found = contract.route(method.upper(), path)
    if isinstance(found, str):
        raise LookupError(found)
    schema, resolver = contract.response_schema(found, status)
    body = _Builder().value(schema, resolver, _key(found.template))
    problems = contract.check_response(
        contract.full_request(found), Received(status, json.dumps(body).encode()), silences=()
    )
    if problems:
        raise AssertionError("full_example does not validate:\n" + "\n".join(f"  {problem}" for problem in problems))
    return body


def documented_answers(vendor: Vendor) -> Iterator[tuple[str, str, int]]:
    """Each (method, path template, status) of `vendor` documented with a response schema."""
    yield from contracts()[vendor].answers()


def _key(template: str) -> str:
    segments = [segment for segment in template.split("/") if segment and not segment.startswith("{")]
    return segments[-1] if segments else "body"


def _slug(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "value"


class _Builder:
    def __init__(self) -> None:
        self._count = itertools.count(1)

    def value(self, schema: JSON, resolver: Resolver, key: str) -> JSON:
        if not isinstance(schema, dict):
            return self._string(key, {})  # `true`: anything goes
        node = cast(dict[str, JSON], schema)
        ref = node.get("$ref")
        if isinstance(ref, str):
            target, inner = resolver.lookup(ref)
            rest = {name: value for name, value in node.items() if name != "$ref"}
            if not _STRUCTURAL & rest.keys():
                return self.value(target, inner, key)
            return self._merged([self.value(target, inner, key), self.value(rest, resolver, key)])
        if "const" in node:
            return node["const"]
        if "enum" in node:
            values = cast(list[JSON], node["enum"])
            return next((value for value in values if value is not None), values[0])
        if "allOf" in node:
            own = {name: value for name, value in node.items() if name != "allOf"}
            members = [self.value(member, resolver, key) for member in cast(list[JSON], node["allOf"])]
            return self._merged([*members, self.value(own, resolver, key)] if _STRUCTURAL & own.keys() else members)
        alternatives = node.get("oneOf", node.get("anyOf"))
        if isinstance(alternatives, list):
            options = cast(list[JSON], alternatives)
            chosen = next((option for option in options if _type_of(option) != "null"), options[0])
            return self.value(chosen, resolver, key)
        kind = _type_of(node)
        if kind == "object":
            properties = cast(dict[str, JSON], node.get("properties", {}))
            return {name: self.value(sub, resolver, name) for name, sub in properties.items()}
        if kind == "array":
            items = node.get("items", True)
            split = _alternatives(items, resolver)
            if split is None:
                return [self.value(items, resolver, key)]
            return [self.value(option, inner, key) for option, inner in split]
        if kind == "integer":
            return self._number(node, float(next(self._count)), integer=True)
        if kind == "number":
            return self._number(node, next(self._count) + 0.5, integer=False)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(key, node)

    def _string(self, key: str, node: Mapping[str, JSON]) -> str:
        count = next(self._count)
        match node.get("format") or _format_of_example(node):
            case "email":
                return f"{_slug(key)}-{count}@example.com"
            case "date-time":
                return (EPOCH + timedelta(seconds=count)).strftime("%Y-%m-%dT%H:%M:%SZ")
            case "date":
                return (EPOCH + timedelta(days=count)).strftime("%Y-%m-%d")
            case "uri" | "url":
                return f"https://example.com/{_slug(key)}-{count}"
            case "uuid":
                return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{key}-{count}"))
            case _:
                text = f"{key}-{count}"
        longest = node.get("maxLength")
        return text[-int(longest) :] if isinstance(longest, int) and len(text) > longest else text

    def _number(self, node: Mapping[str, JSON], value: float, *, integer: bool) -> int | float:
        low, high = node.get("minimum"), node.get("maximum")
        if isinstance(low, int | float):
            value += float(low)
        if isinstance(high, int | float) and value > high:
            span = float(high) - float(low if isinstance(low, int | float) else 0) + 1
            value = float(low if isinstance(low, int | float) else 0) + value % span
        return int(value) if integer else value

    @staticmethod
    def _merged(parts: list[JSON]) -> JSON:
        objects = [cast(dict[str, JSON], part) for part in parts if isinstance(part, dict)]
        if not objects:
            return parts[0]
        merged: dict[str, JSON] = {}
        for part in objects:
            merged.update(part)
        return merged


_EXAMPLE_FORMATS = (
    ("date-time", re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})")),
    ("date", re.compile(r"\d{4}-\d{2}-\d{2}")),
    ("email", re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")),
    ("uri", re.compile(r"https?://\S+")),
)


def _format_of_example(node: Mapping[str, JSON]) -> str | None:
    """The format a string's own example shows (the vendors leave `format` off, e.g. HighLevel's `dateAdded`)."""
    examples = node.get("examples")
    example = node.get("example", cast(list[JSON], examples)[0] if isinstance(examples, list) and examples else None)
    if not isinstance(example, str):
        return None
    return next((name for name, shape in _EXAMPLE_FORMATS if shape.fullmatch(example)), None)


def _type_of(schema: JSON) -> str:
    """The first non-null type a schema allows; inferred from `properties`/`items` when untyped; else string."""
    if not isinstance(schema, dict):
        return "string"
    node = cast(dict[str, JSON], schema)
    declared = node.get("type")
    if isinstance(declared, list):
        kinds = [str(kind) for kind in cast(list[JSON], declared)]
        return next((kind for kind in kinds if kind != "null"), "null")
    if isinstance(declared, str):
        return declared
    if "properties" in node:
        return "object"
    if "items" in node:
        return "array"
    return "string"


def _alternatives(schema: JSON, resolver: Resolver) -> list[tuple[JSON, Resolver]] | None:
    """The `oneOf`/`anyOf` alternatives an array's items are, following plain refs; None when they are not."""
    while isinstance(schema, dict):
        node = cast(dict[str, JSON], schema)
        ref = node.get("$ref")
        if isinstance(ref, str) and not _STRUCTURAL & node.keys():
            schema, resolver = resolver.lookup(ref)
            continue
        options = node.get("oneOf", node.get("anyOf"))
        if isinstance(options, list):
            return [(option, resolver) for option in cast(list[JSON], options)]
        return None
    return None
