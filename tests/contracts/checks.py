"""The vendors' contracts, loaded once, and the judgement of one request or one answer against them.

Sources (never edited; every change below is made to a copy as it loads):
- HighLevel: `highlevel-contacts.openapi.json`, whose refs into `../common/common-schemas.json` are
  rewritten to copies of those schemas under its own components, and
  `highlevel-locations-customfields.openapi.json`.
  Its property-less search body (`SearchBodyV2DTO`) is replaced by the JSON Schema in
  `tests/contracts/highlevel/search-contacts.json`, written from the documented fields (the file
  says where from), which also holds the answer shape the sandbox chose (a Silence names it).
- Clemta: `clemta.openapi.json`.
- Cometly, which publishes no machine-readable contract: the JSON Schema (draft 2020-12) in
  `tests/contracts/cometly/`, written from UPSTREAMS.md and routed by its `endpoints.json`. A
  request is checked as one normalized object `{method, path, path_params, query, headers, body}`
  (query in PHP's bracket form parsed, so `custom_field_filters[0][field]` is an array of objects).

Stricter than plain OpenAPI, by transforming the schemas as they load, never field by field:
every object schema with `properties` that does not say otherwise gets `additionalProperties:
false` (except where `allOf` composes objects, which it would break), so an undeclared body key
the product sends or the sandbox answers is a violation; so is a query parameter the operation
does not declare. Required header parameters (HighLevel's `Version`) and security come from the
files through openapi-core.

An answer is judged by its status: the schema the operation documents for it, or, where
`server.undocumented.SILENCES` has a matching Silence, the component schema the Silence names
(none: not checked), with the Silence's extra top-level keys allowed. A status the operation does
not document, or documents without a schema, with no Silence, is a violation. An answer on a path
the contract does not have is not judged: that is the stand-in's own 404/405.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import unquote

import jsonschema.exceptions
import jsonschema.validators
import openapi_schema_validator
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request.exceptions import (
    InvalidParameter,
    InvalidRequestBody,
    MissingParameterError,
    MissingRequiredRequestBody,
    SecurityValidationError,
)
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue
from openapi_schema_validator import oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from werkzeug.datastructures import Headers, ImmutableMultiDict

from contacts_mcp.server.undocumented import SILENCES, Silence, Vendor

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
"""The vendors' own files (`../shared/reference` beside the repository)."""
COMETLY_DIR = Path(__file__).resolve().parent / "cometly"
HIGHLEVEL_DIR = Path(__file__).resolve().parent / "highlevel"
"""What HighLevel's own file leaves open and we wrote from its documented fields (`search-contacts.json`)."""
COMETLY_BASE_URI = "https://contracts.contacts-mcp.invalid/cometly/"
"""Where the Cometly files live for `$ref` resolution: a name, never fetched."""
SAMPLE_ABOVE = 100
"""Arrays longer than this are checked on a sample of their items (see `sample`)."""
MESSAGE_CHARS = 300
_NOT_NULLABLE = "None for not nullable"
"""What openapi-schema-validator says of a null, beside its own "None is not of type ..."."""

LABELS: Mapping[str, Vendor] = {"Cometly": "cometly", "HighLevel": "highlevel", "Clemta": "clemta"}
"""`Upstream.label` to vendor."""
VENDOR_LABELS: Mapping[Vendor, str] = {vendor: label for label, vendor in LABELS.items()}

Who = Literal["product", "sandbox"]
JSON = Any
"""A parsed JSON value."""
_Problem = tuple[str, str, str]
"""Where (a JSON path or a request part), what is wrong, and the kind of check (a schema keyword or ours)."""
_Judge = Callable[[JSON, "Sent", "Operation"], Iterator[_Problem]]


@dataclass(frozen=True)
class Sent:
    """One request as its vendor receives it, the path relative to the vendor's base URL."""

    vendor: Vendor
    method: str
    path: str
    """Percent-encoded, as on the wire, e.g. `/contacts/abc`."""
    query: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict[str, str])
    """Names in lower case."""
    body: bytes = b""


@dataclass(frozen=True)
class Received:
    """One answer: its status and its whole body."""

    status: int
    body: bytes


@dataclass(frozen=True)
class Violation:
    """One departure from a vendor's contract."""

    who: Who
    """`product`: a request it sent; `sandbox`: an answer it gave."""
    vendor: Vendor
    method: str
    path: str
    """The contract's path template, or the path itself when the contract has none for it."""
    status: int | None
    """The answer's status; None for a request."""
    at: str
    """A JSON path into the answer (`$.contact.firstName`) or the request part (`query.limit`, `body.email`)."""
    problem: str
    kind: str
    """The schema keyword that failed (`additionalProperties`, `type`, ...) or our own check (`status`, `path`, ...)."""

    def __str__(self) -> str:
        status = "" if self.status is None else f" {self.status}"
        return f"{self.who} {VENDOR_LABELS[self.vendor]} {self.method} {self.path}{status}: {self.at}: {self.problem}"


@dataclass(frozen=True)
class Operation:
    """Where a request landed in a contract: the path template and the path parameters' values."""

    method: str
    template: str
    path_params: Mapping[str, str]


def sample(start: int, stop: int) -> list[int]:
    """The indices of a long array that get checked: the first and last 25, and 50 spread evenly between.

    Why: validating every item of a 5,000-contact Cometly page takes about 3 s, and some tests walk
    20,000 contacts; drift shows on any item, so a fixed spread sample finds it at a fraction of the cost.
    """
    indices = set(range(start, min(stop, start + 25))) | set(range(max(start, stop - 25), stop))
    indices.update(range(start, stop, max(1, (stop - start) // 50)))
    return sorted(indices)


_Keyword = Callable[[Any, Any, Any, Any], Iterator[ValidationError]]


def _sampled_items(original: _Keyword) -> _Keyword:
    """The `items` keyword, checking only `sample` of an array longer than `SAMPLE_ABOVE`."""

    def items(validator: Any, items: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        if (
            not isinstance(instance, list)
            or len(cast(list[Any], instance)) <= SAMPLE_ABOVE
            or not isinstance(items, dict)
        ):
            yield from original(validator, items, instance, schema)
            return
        array = cast(list[Any], instance)
        prefix = len(cast(Mapping[str, Any], schema).get("prefixItems", ()))
        for index in sample(prefix, len(array)):
            yield from cast(Iterator[ValidationError], validator.descend(array[index], items, path=index))

    return items


_best_match = cast(
    Callable[[Iterable[ValidationError]], ValidationError],
    jsonschema.exceptions.best_match,  # pyright: ignore[reportUnknownMemberType]
)
_extend = cast(Callable[..., type[Validator]], jsonschema.validators.extend)  # pyright: ignore[reportUnknownMemberType]


def _with_sampling(cls: Any) -> type[Validator]:
    """The validator class `cls` with `_sampled_items` as its `items` keyword."""
    keywords = cast(Mapping[str, _Keyword], cls.VALIDATORS)
    return _extend(cls, {"items": _sampled_items(keywords["items"])})


_OAS30 = _with_sampling(openapi_schema_validator.OAS30ReadValidator)  # pyright: ignore[reportUnknownMemberType]
_DRAFT2020 = _with_sampling(Draft202012Validator)


def json_path(root: str, parts: Iterable[str | int]) -> str:
    """`root` followed by `.key` / `[index]` for each part (`["key"]` where a key is not a plain name)."""
    text = root
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def _short(message: str) -> str:
    return message if len(message) <= MESSAGE_CHARS else message[: MESSAGE_CHARS - 1] + "\u2026"


def _explained(errors: Iterable[ValidationError], root: str, *, skip: int = 0) -> Iterator[_Problem]:
    """Each schema error as a problem at its JSON path under `root` (after dropping `skip` leading parts).

    One problem per path lists every missing required property, and one every key not allowed by
    `propertyNames`; OpenAPI's "None for not nullable" is dropped where the value's type error says as much.
    """
    problems: list[_Problem] = []
    names: dict[tuple[str, str], list[str]] = {}
    for error in errors:
        parts = list(cast(Iterable[str | int], error.absolute_path))[skip:]
        at = json_path(root, parts) or "request"
        keyword = str(error.validator)
        message = str(error.message)
        listed: list[str] = []
        wanted = cast(object, error.validator_value)
        if keyword == "required" and isinstance(wanted, list):
            instance = cast(Any, error.instance)
            wanted = cast(list[Any], wanted)
            listed = [str(name) for name in wanted if isinstance(instance, dict) and name not in instance]
        elif "propertyNames" in list(cast(Iterable[Any], error.relative_schema_path)):
            keyword, listed = "propertyNames", [str(error.instance)]
        elif keyword == "not" and error.validator_value in ({}, True):
            # How the Cometly files say "absent here": a `false` schema would lose the key from the path.
            why = cast(Mapping[str, Any], error.schema).get("description") if isinstance(error.schema, dict) else None
            message = f"must be absent{f': {why}' if why else ''}"
            keyword = "absent"
        elif keyword in ("oneOf", "anyOf") and error.context:
            closest = _best_match(error.context)
            closer = list(cast(Iterable[str | int], closest.absolute_path))[skip:]
            message = (
                f"fits none of the {keyword} alternatives; the closest fails at "
                f"{json_path(root, closer) or 'request'}: {closest.message}"
            )
        if keyword in ("required", "propertyNames"):
            if (at, keyword) not in names:
                names[(at, keyword)] = []
                problems.append((at, "", keyword))
            names[(at, keyword)].extend(name for name in listed if name not in names[(at, keyword)])
            continue
        problems.append((at, _short(message), keyword))
    typed = {at for at, message, keyword in problems if keyword == "type" and message != _NOT_NULLABLE}
    for at, message, keyword in problems:
        if keyword == "required":
            missing = names[(at, keyword)]
            yield (
                at,
                _short(f"missing required propert{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}"),
                keyword,
            )
        elif keyword == "propertyNames":
            keys = names[(at, keyword)]
            yield at, _short(f"key{'' if len(keys) == 1 else 's'} not allowed here: {', '.join(keys)}"), keyword
        elif not (message == _NOT_NULLABLE and at in typed):
            yield at, message, keyword


def silence_for(silences: Iterable[Silence], vendor: Vendor, method: str, template: str, status: int) -> Silence | None:
    """The most specific Silence for this answer (exact method and path before `*`), if any."""
    matching = [
        silence
        for silence in silences
        if silence.vendor == vendor
        and silence.status == status
        and silence.method in ("*", method)
        and silence.path in ("*", template)
    ]
    matching.sort(key=lambda silence: (silence.method == "*", silence.path == "*"))
    return matching[0] if matching else None


@dataclass(frozen=True)
class _Template:
    text: str
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    literal: int
    """How many characters are not parameters: the more, the more specific."""

    @classmethod
    def of(cls, text: str) -> _Template:
        pieces = re.split(r"(\{[^{}/]+\})", text)
        names = tuple(piece[1:-1] for piece in pieces[1::2])
        regex = "".join(re.escape(piece) if index % 2 == 0 else "([^/]+)" for index, piece in enumerate(pieces))
        literal = sum(len(piece) for piece in pieces[::2])
        return cls(text, re.compile(regex), names, literal)

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in zip(self.names, found.groups(), strict=True)}


class Contract(ABC):
    """One vendor's contract: its operations, and the judgement of a request or an answer."""

    def __init__(self, vendor: Vendor, operations: Iterable[tuple[str, str]]) -> None:
        self.vendor: Vendor = vendor
        methods: dict[str, set[str]] = {}
        for method, template in operations:
            methods.setdefault(template, set()).add(method.upper())
        self._methods = methods
        self._templates = sorted((_Template.of(text) for text in methods), key=lambda t: -t.literal)

    def route(self, method: str, path: str) -> Operation | str:
        """The operation `method path` lands on, or why it lands on none."""
        matched = [(template, params) for template in self._templates if (params := template.match(path)) is not None]
        if not matched:
            return f"the path {path} is not in {VENDOR_LABELS[self.vendor]}'s contract"
        for template, params in matched:
            if method in self._methods[template.text]:
                return Operation(method=method, template=template.text, path_params=params)
        return f"{method} is not an operation of {matched[0][0].text} in the contract"

    def check_request(self, sent: Sent) -> list[Violation]:
        """What is wrong with a request the product sent: path, method, query, required headers, body."""
        found = self.route(sent.method, sent.path)
        if isinstance(found, str):
            return [self._violation("product", sent, sent.path, None, ("path", found, "path"))]
        return [
            self._violation("product", sent, found.template, None, problem) for problem in self._request(sent, found)
        ]

    def check_response(self, sent: Sent, received: Received, silences: Iterable[Silence] = SILENCES) -> list[Violation]:
        """What is wrong with an answer to `sent`; nothing for a path or method the contract does not have."""
        found = self.route(sent.method, sent.path)
        if isinstance(found, str):
            return []
        status = received.status

        def violations(problems: Iterable[_Problem]) -> list[Violation]:
            return [self._violation("sandbox", sent, found.template, status, problem) for problem in problems]

        silence = silence_for(silences, self.vendor, sent.method, found.template, status)
        extra: tuple[str, ...] = ()
        judge: _Judge
        if silence is not None:
            if silence.schema is None:
                return []
            component = self._component(silence.schema)
            if component is None:
                why = f"the Silence for it names the schema {silence.schema!r}, which the contract does not have"
                return violations([("status", why, "silence")])
            judge, extra = component, silence.extra_keys
        else:
            documented = self._documented(found, status)
            if isinstance(documented, str):
                why = f"{documented}, and no Silence in server/undocumented.py allows it"
                return violations([("status", why, "status")])
            judge = documented
        try:
            body: JSON = json.loads(received.body)
        except ValueError:
            return violations([("$", "the body is not JSON", "json")])
        if extra and isinstance(body, dict):
            body = {key: value for key, value in cast(dict[str, JSON], body).items() if key not in extra}
        return violations(judge(body, sent, found))

    def _violation(self, who: Who, sent: Sent, path: str, status: int | None, problem: _Problem) -> Violation:
        at, what, kind = problem
        return Violation(who, self.vendor, sent.method, path, status, at, what, kind)

    @abstractmethod
    def _request(self, sent: Sent, found: Operation) -> Iterator[_Problem]:
        """The problems of a request on a known operation."""

    @abstractmethod
    def _documented(self, found: Operation, status: int) -> _Judge | str:
        """The judge of the documented answer with this status, or why there is none."""

    def has_component(self, name: str) -> bool:
        """Whether a Silence may name `name` as its schema."""
        return self._component(name) is not None

    @abstractmethod
    def _component(self, name: str) -> _Judge | None:
        """The judge of a named component schema (a Silence's), or None when the contract has no such schema."""

    @abstractmethod
    def response_schema(self, found: Operation, status: int) -> tuple[JSON, Resolver]:
        """The documented response schema for `status`, and how its refs resolve (for `full_example`).

        Raises:
            LookupError: The operation documents no schema for `status`.
        """

    @abstractmethod
    def full_request(self, found: Operation) -> Sent:
        """A request on the operation that asks for everything the answer can hold (for `full_example`)."""

    @abstractmethod
    def answers(self) -> list[tuple[str, str, int]]:
        """Every (method, path template, status) the contract documents with a schema."""


@dataclass(frozen=True)
class Resolver:
    """Resolves the `$ref`s of a schema, relative to where the schema sits."""

    resolver: Any
    """A `referencing` resolver."""

    def lookup(self, ref: str) -> tuple[JSON, Resolver]:
        """The schema `ref` points at, and the resolver for the refs inside it."""
        resolved = self.resolver.lookup(ref)
        return resolved.contents, Resolver(resolved.resolver)


# OpenAPI vendors


def _pointer(document: JSON, ref: str) -> JSON:
    """The node a local ref (`#/components/...`) or a JSON pointer (`/components/...`) points at."""
    node = document
    for raw in ref.removeprefix("#").removeprefix("/").split("/"):
        node = node[unquote(raw).replace("~1", "/").replace("~0", "~")]
    return node


def _inlined_externals(spec: dict[str, JSON], externals: Mapping[str, JSON]) -> dict[str, JSON]:
    """`spec` with every ref into an external file (`file#/pointer`) rewritten to `#/pointer`, and the
    node it pointed at copied to the same place in `spec` (a different node already there is an error).

    Raises:
        ValueError: A copy would replace a different node of `spec`.
    """
    copies: dict[str, JSON] = {}

    def rewrite(node: JSON) -> JSON:
        if isinstance(node, dict):
            mapping = {key: rewrite(value) for key, value in cast(dict[str, JSON], node).items()}
            ref = mapping.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                file, _, pointer = ref.partition("#")
                copies[pointer] = copy.deepcopy(_pointer(externals[file], pointer))
                mapping["$ref"] = "#" + pointer
            return mapping
        if isinstance(node, list):
            return [rewrite(item) for item in cast(list[JSON], node)]
        return node

    result = cast(dict[str, JSON], rewrite(spec))
    for pointer, target in copies.items():
        *parents, name = pointer.removeprefix("/").split("/")
        place: dict[str, JSON] = result
        for part in parents:
            place = place.setdefault(part, {})
        if name in place and place[name] != target:
            raise ValueError(f"#{pointer} is in the spec already, and differs from the external schema it would copy")
        place[name] = target
    return result


def _composed(spec: JSON) -> set[str]:
    """The local refs used as `allOf` members anywhere: objects that must stay open to compose."""
    found: set[str] = set()

    def walk(node: JSON) -> None:
        if isinstance(node, dict):
            mapping = cast(dict[str, JSON], node)
            for member in cast(list[JSON], mapping.get("allOf", [])):
                if isinstance(member, dict) and isinstance(ref := cast(dict[str, JSON], member).get("$ref"), str):
                    found.add(ref)
            for value in mapping.values():
                walk(value)
        elif isinstance(node, list):
            for item in cast(list[JSON], node):
                walk(item)

    walk(spec)
    return found


def _close(schema: JSON, *, open_here: bool = False) -> None:
    """Give each object schema with `properties` in `schema` `additionalProperties: false`, unless it says otherwise."""
    if not isinstance(schema, dict):
        return
    node = cast(dict[str, JSON], schema)
    if "properties" in node and "additionalProperties" not in node and not open_here:
        node["additionalProperties"] = False
    for key in ("items", "not", "additionalProperties"):
        _close(node.get(key))
    for value in cast(dict[str, JSON], node.get("properties", {})).values():
        _close(value)
    for key in ("anyOf", "oneOf"):
        for member in cast(list[JSON], node.get(key, [])):
            _close(member)
    for member in cast(list[JSON], node.get("allOf", [])):
        _close(member, open_here=True)


def _closed(spec: dict[str, JSON]) -> dict[str, JSON]:
    """`spec` with its schemas closed (`_close`): components, and every `schema` under paths."""
    spec = copy.deepcopy(spec)
    composed = _composed(spec)
    for name, schema in cast(dict[str, JSON], spec.get("components", {}).get("schemas", {})).items():
        _close(schema, open_here=f"#/components/schemas/{name}" in composed)

    def walk(node: JSON) -> None:
        if isinstance(node, dict):
            for key, value in cast(dict[str, JSON], node).items():
                if key == "schema":
                    _close(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in cast(list[JSON], node):
                walk(item)

    walk(spec.get("paths", {}))
    return spec


@dataclass
class _CoreRequest:
    """A request in the shape openapi-core reads (`openapi_core.protocols.Request` with a path pattern)."""

    host_url: str
    path: str
    path_pattern: str
    method: str
    parameters: RequestParameters
    body: bytes | None
    content_type: str


class _Document:
    """One OpenAPI file, closed, with its openapi-core app and a schema validator rooted at it."""

    def __init__(self, spec: dict[str, JSON]) -> None:
        self.spec = spec
        self.server = str(spec["servers"][0]["url"])
        # HighLevel's own file fails OpenAPI validation (an http security scheme with `name`/`in`, an
        # undeclared path parameter on a bulk route); the contract is the vendor's as published.
        self.app = OpenAPI.from_dict(spec, config=Config(spec_validator_cls=cast(Any, None)))
        self.root = _OAS30(spec, format_checker=oas30_format_checker)
        self.registry = Registry[JSON]().with_resource("urn:contract", Resource.opaque(spec))

    def judge(self, schema: JSON) -> _Judge:
        validator = self.root.evolve(schema=schema)  # pyright: ignore[reportUnknownMemberType]

        def judged(body: JSON, sent: Sent, found: Operation) -> Iterator[_Problem]:
            yield from _explained(cast(Iterable[ValidationError], validator.iter_errors(body)), "$")

        return judged


class OpenApiContract(Contract):
    """A vendor described by OpenAPI 3.0 files; requests go through openapi-core."""

    def __init__(self, vendor: Vendor, specs: Sequence[dict[str, JSON]]) -> None:
        self._documents = [_Document(_closed(spec)) for spec in specs]
        self._operations: dict[tuple[str, str], tuple[_Document, dict[str, JSON], list[JSON]]] = {}
        for document in self._documents:
            for template, item in cast(dict[str, dict[str, JSON]], document.spec["paths"]).items():
                shared = cast(list[JSON], item.get("parameters", []))
                for method, operation in item.items():
                    if method in ("parameters", "summary", "description", "servers") or not isinstance(operation, dict):
                        continue
                    op = cast(dict[str, JSON], operation)
                    parameters = [
                        _deref(document.spec, p) for p in [*shared, *cast(list[JSON], op.get("parameters", []))]
                    ]
                    self._operations[(method.upper(), template)] = (document, op, parameters)
        super().__init__(vendor, self._operations)

    def _request(self, sent: Sent, found: Operation) -> Iterator[_Problem]:
        document, operation, parameters = self._operations[(found.method, found.template)]
        declared = {str(p["name"]) for p in parameters if p.get("in") == "query"}
        for name in dict.fromkeys(name for name, _ in sent.query):
            if name not in declared:
                yield f"query.{name}", f"the query parameter {name!r} is not declared by the operation", "query"
        if sent.body and "requestBody" not in operation:
            yield "body", "the operation takes no body", "body"
        request = _CoreRequest(
            host_url=document.server,
            path=sent.path,
            path_pattern=found.template,
            method=sent.method.lower(),
            parameters=RequestParameters(
                query=ImmutableMultiDict(list(sent.query)),
                header=Headers(list(sent.headers.items())),
                path=dict(found.path_params),
            ),
            body=sent.body or None,
            content_type=sent.headers.get("content-type", "application/json"),
        )
        for error in document.app.iter_request_errors(request):
            yield from _core_problems(error)

    def _documented(self, found: Operation, status: int) -> _Judge | str:
        document, operation, _ = self._operations[(found.method, found.template)]
        schema = _response_schema(document.spec, operation, status)
        if isinstance(schema, str):
            return schema
        return document.judge(schema)

    def _component(self, name: str) -> _Judge | None:
        for document in self._documents:
            if name in document.spec.get("components", {}).get("schemas", {}):
                return document.judge({"$ref": f"#/components/schemas/{name}"})
        return None

    def response_schema(self, found: Operation, status: int) -> tuple[JSON, Resolver]:
        document, operation, _ = self._operations[(found.method, found.template)]
        schema = _response_schema(document.spec, operation, status)
        if isinstance(schema, str):
            raise LookupError(schema)
        return schema, Resolver(document.registry.resolver(base_uri="urn:contract"))

    def full_request(self, found: Operation) -> Sent:
        return Sent(self.vendor, found.method, found.template)

    def answers(self) -> list[tuple[str, str, int]]:
        return [
            (method, template, int(status))
            for (method, template), (document, operation, _) in self._operations.items()
            for status in cast(dict[str, JSON], operation.get("responses", {}))
            if status.isdigit() and not isinstance(_response_schema(document.spec, operation, int(status)), str)
        ]


def _deref(spec: JSON, node: JSON) -> dict[str, JSON]:
    """`node`, or what its local `$ref` points at."""
    mapping = cast(dict[str, JSON], node)
    ref = mapping.get("$ref")
    return cast(dict[str, JSON], _pointer(spec, ref)) if isinstance(ref, str) else mapping


def _response_schema(spec: JSON, operation: dict[str, JSON], status: int) -> JSON | str:
    responses = cast(dict[str, JSON], operation.get("responses", {}))
    response = next(
        (
            responses[key]
            for key in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default")
            if key in responses
        ),
        None,
    )
    if response is None:
        return f"status {status} is not documented for this operation"
    content = cast(dict[str, JSON], _deref(spec, response).get("content", {}))
    media = next((value for key, value in content.items() if key.split(";")[0].strip().endswith("json")), None)
    if not isinstance(media, dict) or "schema" not in media:
        return f"status {status} is documented without a schema"
    return cast(dict[str, JSON], media)["schema"]


def _core_problems(error: Exception) -> Iterator[_Problem]:
    """openapi-core's request errors as problems, with the schema errors behind them."""
    if isinstance(error, MissingParameterError):
        yield f"{error.location}.{error.name}", f"the required {error.location} parameter is missing", "required"
    elif isinstance(error, InvalidParameter):
        cause = error.__cause__
        if isinstance(cause, InvalidSchemaValue):
            yield from _explained(
                cast(Iterable[ValidationError], cause.schema_errors), f"{error.location}.{error.name}"
            )
        else:
            yield f"{error.location}.{error.name}", _short(f"{error}: {cause}"), "parameter"
    elif isinstance(error, InvalidRequestBody) and isinstance(error.__cause__, InvalidSchemaValue):
        yield from _explained(cast(Iterable[ValidationError], error.__cause__.schema_errors), "body")
    elif isinstance(error, MissingRequiredRequestBody):
        yield "body", "the required body is missing", "required"
    elif isinstance(error, SecurityValidationError):
        yield "headers", "no credentials the operation's security accepts", "security"
    else:
        cause = f": {error.__cause__}" if error.__cause__ else ""
        yield "request", _short(f"{type(error).__name__}: {error}{cause}"), "request"


# Cometly


def php_query(pairs: Iterable[tuple[str, str]]) -> dict[str, JSON]:
    """A query as PHP (Laravel) reads it: `a[0][b]=x` becomes `{"a": [{"b": "x"}]}`.

    A repeated plain key becomes a list of its values, so a schema that wants one string says so;
    objects whose keys are exactly 0..n-1 become arrays; a key PHP would not parse stays as it is.
    """
    result: dict[str, JSON] = {}
    for key, value in pairs:
        head, bracket, _ = key.partition("[")
        parts = [head, *re.findall(r"\[([^\[\]]*)\]", key[len(head) :])] if bracket else [key]
        if not head or (bracket and head + "".join(f"[{part}]" for part in parts[1:]) != key):
            parts = [key]
        node: dict[str, JSON] = result
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = cast(dict[str, JSON], child)
        last = parts[-1] or str(len(node))
        if len(parts) == 1 and last in node:
            before = node[last]
            node[last] = [*cast(list[JSON], before), value] if isinstance(before, list) else [before, value]
        else:
            node[last] = value
    return cast(dict[str, JSON], _arrays(result))


def _arrays(node: JSON) -> JSON:
    if not isinstance(node, dict):
        return node
    mapping = {key: _arrays(value) for key, value in cast(dict[str, JSON], node).items()}
    if mapping and sorted(mapping) == sorted(str(index) for index in range(len(mapping))):
        return [mapping[str(index)] for index in range(len(mapping))]
    return mapping


@dataclass(frozen=True)
class _Endpoint:
    request: Validator
    responses: Mapping[int, tuple[str | None, str | None]]
    """Status to (body schema ref, `given` schema ref)."""
    full: Mapping[str, JSON]


class CometlyContract(Contract):
    """Cometly as the JSON Schema in `tests/contracts/cometly/` describes it."""

    def __init__(self, directory: Path = COMETLY_DIR) -> None:
        routing = json.loads((directory / "endpoints.json").read_text(encoding="utf-8"))
        resources: list[tuple[str, Resource[JSON]]] = []
        for file in sorted(directory.glob("*.json")):
            if file.name == "endpoints.json":
                continue
            contents = json.loads(file.read_text(encoding="utf-8"))
            Draft202012Validator.check_schema(contents)
            resources.append((COMETLY_BASE_URI + file.name, DRAFT202012.create_resource(contents)))
        self._registry = Registry[JSON]().with_resources(resources)
        self._validators: dict[str, Validator] = {}
        endpoints: dict[tuple[str, str], _Endpoint] = {}
        for route, entry in cast(dict[str, dict[str, JSON]], routing["endpoints"]).items():
            method, _, template = route.partition(" ")
            responses = {
                int(status): (cast(str | None, spec.get("body")), cast(str | None, spec.get("given")))
                for status, spec in cast(dict[str, dict[str, JSON]], entry["responses"]).items()
            }
            endpoints[(method, template)] = _Endpoint(
                request=self._validator(str(entry["request"])),
                responses=responses,
                full=cast(dict[str, JSON], entry.get("full_request", {})),
            )
        self._endpoints = endpoints
        super().__init__("cometly", endpoints)

    def _validator(self, ref: str) -> Validator:
        validator = self._validators.get(ref)
        if validator is None:
            validator = _DRAFT2020(
                {"$ref": COMETLY_BASE_URI + ref},
                registry=self._registry,
                format_checker=Draft202012Validator.FORMAT_CHECKER,
            )
            self._validators[ref] = validator
        return validator

    def normalized(self, sent: Sent, found: Operation) -> dict[str, JSON]:
        """The request as one JSON object, as the request schemas read it; a body that is not JSON is kept as text."""
        request: dict[str, JSON] = {
            "method": sent.method,
            "path": sent.path,
            "path_params": dict(found.path_params),
            "query": php_query(sent.query),
            "headers": dict(sent.headers),
        }
        if sent.body:
            try:
                request["body"] = json.loads(sent.body)
            except ValueError:
                request["body"] = sent.body.decode("utf-8", "replace")
        return request

    def _request(self, sent: Sent, found: Operation) -> Iterator[_Problem]:
        endpoint = self._endpoints[(found.method, found.template)]
        request = self.normalized(sent, found)
        yield from _explained(cast(Iterable[ValidationError], endpoint.request.iter_errors(request)), "")

    def _documented(self, found: Operation, status: int) -> _Judge | str:
        endpoint = self._endpoints[(found.method, found.template)]
        if status not in endpoint.responses:
            return f"status {status} is not documented for this operation"
        body, given = endpoint.responses[status]
        if body is None:
            return f"status {status} is documented without a schema"
        return self._judge(body, given)

    def _component(self, name: str) -> _Judge | None:
        # A Cometly Silence's schema names a `$defs` entry of common.json (e.g. `error`).
        common = cast(dict[str, JSON], self._registry.contents(COMETLY_BASE_URI + "common.json"))
        return self._judge(f"common.json#/$defs/{name}", None) if name in common.get("$defs", {}) else None

    def _judge(self, body_ref: str, given_ref: str | None) -> _Judge:
        body_validator = self._validator(body_ref)
        given_validator = self._validator(given_ref) if given_ref is not None else None

        def judged(body: JSON, sent: Sent, found: Operation) -> Iterator[_Problem]:
            yield from _explained(cast(Iterable[ValidationError], body_validator.iter_errors(body)), "$")
            if given_validator is not None:
                exchange = {"request": self.normalized(sent, found), "body": body}
                errors = cast(Iterable[ValidationError], given_validator.iter_errors(exchange))
                yield from _explained(errors, "$", skip=1)

        return judged

    def response_schema(self, found: Operation, status: int) -> tuple[JSON, Resolver]:
        judge = self._documented(found, status)
        if isinstance(judge, str):
            raise LookupError(judge)
        body_ref, _ = self._endpoints[(found.method, found.template)].responses[status]
        resolver = self._registry.resolver(base_uri=COMETLY_BASE_URI)
        return {"$ref": body_ref}, Resolver(resolver)

    def full_request(self, found: Operation) -> Sent:
        full = self._endpoints[(found.method, found.template)].full
        query = tuple((str(key), str(value)) for key, value in cast(dict[str, JSON], full.get("query", {})).items())
        body = json.dumps(full["body"]).encode() if "body" in full else b""
        return Sent("cometly", found.method, found.template, query=query, body=body)

    def answers(self) -> list[tuple[str, str, int]]:
        return [
            (method, template, status)
            for (method, template), endpoint in self._endpoints.items()
            for status, (body, _) in endpoint.responses.items()
            if body is not None
        ]


# Loading


def _load(name: str) -> dict[str, JSON]:
    file = REFERENCE / name
    if not file.is_file():
        raise FileNotFoundError(f"{file}: the contract checks read the vendors' files from {REFERENCE}")
    return cast(dict[str, JSON], json.loads(file.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Contracts:
    """All three vendors' contracts."""

    by_vendor: Mapping[Vendor, Contract]

    def __getitem__(self, vendor: Vendor) -> Contract:
        return self.by_vendor[vendor]

    def check_request(self, sent: Sent) -> list[Violation]:
        """What is wrong with a request the product sent to `sent.vendor`."""
        return self.by_vendor[sent.vendor].check_request(sent)

    def check_response(self, sent: Sent, received: Received, silences: Iterable[Silence] = SILENCES) -> list[Violation]:
        """What is wrong with the sandbox's answer to `sent`."""
        return self.by_vendor[sent.vendor].check_response(sent, received, silences)


def _with_search(spec: dict[str, JSON], directory: Path = HIGHLEVEL_DIR) -> dict[str, JSON]:
    """HighLevel's file with `search-contacts.json` put where the file leaves POST /contacts/search open.

    Its `request` replaces the property-less `SearchBodyV2DTO`, its `filter` becomes
    `SearchContactsFilter`, and its `answer` the component `SearchContactsAnswer` that a Silence
    names for the undocumented 200. A `SearchBodyV2DTO` that ever gains properties is not replaced:
    then the vendor's own word applies, and this file should go.

    Raises:
        ValueError: The file already has a component of one of those names, other than an empty body.
    """
    search = json.loads((directory / "search-contacts.json").read_text(encoding="utf-8"))
    spec = copy.deepcopy(spec)
    schemas = cast(dict[str, JSON], spec["components"]["schemas"])
    for name in ("SearchContactsFilter", "SearchContactsAnswer"):
        if name in schemas:
            raise ValueError(f"HighLevel's file has a {name} of its own now; check it against search-contacts.json")
    if cast(dict[str, JSON], schemas.get("SearchBodyV2DTO", {})).get("properties", {}) == {}:
        schemas["SearchBodyV2DTO"] = search["request"]
    schemas["SearchContactsFilter"] = search["filter"]
    schemas["SearchContactsAnswer"] = search["answer"]
    return spec


@functools.cache
def contracts() -> Contracts:
    """The three contracts, loaded and compiled once per process."""
    highlevel = _with_search(
        _inlined_externals(
            _load("highlevel-contacts.openapi.json"),
            {"../common/common-schemas.json": _load("highlevel-common-schemas.json")},
        )
    )
    return Contracts(
        {
            "cometly": CometlyContract(),
            "highlevel": OpenApiContract(
                "highlevel", [highlevel, _load("highlevel-locations-customfields.openapi.json")]
            ),
            "clemta": OpenApiContract("clemta", [_load("clemta.openapi.json")]),
        }
    )
