"""Named accounts: several keys per provider, configured in one TOML file, checked at start.

```toml
[accounts.acme-hl]
provider = "highlevel"
description = "Acme Dental's HighLevel location"
api_key_env = "ACME_HL_KEY"            # the NAME of the environment variable holding the key
location_id = "ve9EPM428h8vShlRW1KT"

[accounts.brand-eu]
provider = "cometly"
description = "the EU brand's Cometly Space"
api_key_file = "secrets/brand_eu_key"  # or a file holding only the key (a Docker or Kubernetes secret)
timezone = "Europe/Berlin"
rate_limits = { list_contacts = "10/60" }
```

A key is never written in the file itself: each account names the environment variable holding it
(`api_key_env`) or a secrets file (`api_key_file`). Every mistake is refused in one line naming the
file and the line, and never quoting a key. Today's environment-variable configuration is the account
named `default` of each configured provider (`default_account`), so the name is reserved here.

An account's budgets are keyed, like the single account's, on the fingerprint of what its provider
counts limits against (`Account.fingerprint`): two accounts on one key and scope share one budget,
and two keys never do.
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import difflib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from pydantic import SecretStr, ValidationError

from .budgets import fingerprint as fingerprint_of
from .errors import ConfigurationError
from .providers import PROVIDERS
from .settings import (
    ClemtaSettings,
    CometlySettings,
    HighLevelSettings,
    ProviderSettings,
    Rate,
    Settings,
    parse_rate_limits,
)

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
"""An account's name: what the tools' `account` argument takes."""
DEFAULT_NAME = "default"
"""The name of the account configured by today's environment variables; reserved in the file."""
MAX_DESCRIPTION_CHARS = 200
"""A description is shown to the model beside the name: a short line, not a document."""

_MODELS: dict[str, type[ProviderSettings]] = {
    "cometly": CometlySettings,
    "highlevel": HighLevelSettings,
    "clemta": ClemtaSettings,
}
_REQUIRED: dict[str, frozenset[str]] = {"highlevel": frozenset({"location_id"})}
"""Scope keys a provider cannot run without (HighLevel's creates, lookups and limits are per location)."""
_PROVIDER_KEYS = ("location_id", "company_id", "timezone")
_COMMON_KEYS = ("provider", "description", "api_key_env", "api_key_file", "base_url", "rate_limits")
_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "credential", "bearer")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONVENTIONAL_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]*")
"""Only a name like this is quoted back: a mixed-case string in `api_key_env` may be a pasted key."""
_WHERE = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)$")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _accepted_keys(provider: str) -> tuple[str, ...]:
    """The keys an account of `provider` takes: the common ones and its settings model's scope fields."""
    fields = _MODELS[provider].model_fields
    return (*_COMMON_KEYS, *(key for key in _PROVIDER_KEYS if key in fields))


@dataclass(frozen=True, repr=False, kw_only=True)
class Account:
    """One named account of one provider: its key, its scope and its own limits."""

    name: str
    """What the tools' `account` argument takes; `default` for the environment's account."""
    provider: str
    """The provider's name (`cometly`, `highlevel`, `clemta`)."""
    description: str
    """Shown to the model beside the name, so it can pick (e.g. "Acme Dental's HighLevel location")."""
    key: SecretStr
    """The API key, stripped; never logged, never in a repr or an error."""
    base_url: str
    """The upstream's base URL: the file's, or the provider's default."""
    location_id: str | None = None
    """HighLevel's sub-account (location); limits are counted per location."""
    company_id: str | None = None
    """Clemta's company whose contacts are listed and created."""
    timezone: str | None = None
    """The IANA timezone date ranges and date words are read in; None for a provider without one (HighLevel)."""
    rate_limits: Mapping[str, tuple[Rate, ...]] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    """Budget overrides by budget name (`cometly.list_contacts`), as `Settings.rate_limits` holds them."""

    def __repr__(self) -> str:
        scope = "".join(
            f", {name}={value!r}"
            for name, value in (
                ("location_id", self.location_id),
                ("company_id", self.company_id),
                ("timezone", self.timezone),
            )
            if value is not None
        )
        limits = f", rate_limits={sorted(self.rate_limits)!r}" if self.rate_limits else ""
        return (
            f"Account(name={self.name!r}, provider={self.provider!r}, description={self.description!r}, "
            f"base_url={self.base_url!r}{scope}{limits})"
        )

    def provider_settings(self) -> ProviderSettings:
        """This account as its provider's settings model (`CometlySettings`, ...), for the provider to run on."""
        model = _MODELS[self.provider]
        values: dict[str, Any] = {"api_key": self.key, "base_url": self.base_url} | {
            name: getattr(self, name) for name in _PROVIDER_KEYS if name in model.model_fields
        }
        return model.model_construct(**values)  # checked when the account was read; reads no environment

    def apply(self, settings: Settings) -> Settings:
        """`settings` as if this were the one account of its provider: what `Provider.from_settings`,
        `Provider.account` and the budgets take.

        Its provider's model is this account's, and its provider's rate-limit overrides are this account's
        own (other providers' overrides are kept).
        """
        prefix = f"{self.provider}."
        limits = {name: rates for name, rates in settings.rate_limits.items() if not name.startswith(prefix)}
        return settings.model_copy(
            update={self.provider: self.provider_settings(), "rate_limits": limits | dict(self.rate_limits)}
        )

    @property
    def fingerprint(self) -> str:
        """The budgets' name for whom the upstream counts this account's limits against (key and scope).

        The same function over the same text as the single account's budgets (`server.app.budget_specs`), so
        accounts sharing a key (and, for HighLevel, a location) share their budgets, and two keys never do.
        """
        return fingerprint_of(PROVIDERS[self.provider].account(self.apply(_unread_settings())))


def _unread_settings() -> Settings:
    """Settings with every default and nothing read from the environment or a file."""
    models: dict[str, Any] = {name: model.model_construct() for name, model in _MODELS.items()}
    return Settings.model_construct(**models)


def default_account(settings: Settings, provider: str) -> Account | None:
    """The environment's account of `provider` (`COMETLY_API_KEY`, ...) as the account named `default`.

    None when `settings` do not configure `provider`. Its rate limits are the `CONTACTS_MCP_RATE_LIMITS`
    overrides of the provider's budgets, so a server with one account per provider behaves as it always has.
    """
    cls = PROVIDERS[provider]
    if not cls.configured(settings):
        return None
    model: ProviderSettings = getattr(settings, provider)
    return Account(
        name=DEFAULT_NAME,
        provider=provider,
        description=f"the {cls.label} account configured in the server's environment",
        key=SecretStr(model.key()),
        base_url=model.base_url,
        location_id=getattr(model, "location_id", None),
        company_id=getattr(model, "company_id", None),
        timezone=getattr(model, "timezone", None),
        rate_limits=MappingProxyType(
            {name: rates for name, rates in settings.rate_limits.items() if name in cls.default_budgets}
        ),
    )


def default_accounts(settings: Settings) -> list[Account]:
    """The `default` account of each provider `settings` configure, in the order of `PROVIDERS`."""
    return [account for name in PROVIDERS if (account := default_account(settings, name)) is not None]


def load_accounts(path: Path, environ: Mapping[str, str], *, secrets_dir: Path | None = None) -> list[Account]:
    """Read and check the accounts file, in the file's order.

    Args:
        path: The TOML file (`CONTACTS_MCP_ACCOUNTS_FILE`); error messages name it as given.
        environ: Where the variables named by `api_key_env` are looked up (`os.environ`).
        secrets_dir: Where a relative `api_key_file` is found; default: the accounts file's folder.

    Raises:
        ConfigurationError: One line, `contacts-mcp: <file>:<line>: <what to fix>`, for the first mistake:
            unreadable or invalid TOML, an unknown, missing or mistyped key, an unknown provider, a bad or
            reserved or repeated name, a key written in the file, a variable named but not set, an empty
            key, an unreadable secrets file, a bad base URL, timezone or rate limit. No key is ever quoted.
    """
    text = _read(path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(path, text, exc) from None
    return _Reader(path, _Locator(text), environ, secrets_dir or path.parent).accounts(document)


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"contacts-mcp: cannot read the accounts file {path} ({exc.strerror or exc})"
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:  # its message would quote bytes of the file
        raise ConfigurationError(f"contacts-mcp: {path} is not UTF-8; save it as UTF-8") from None


def _syntax_error(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> ConfigurationError:
    """tomllib's complaint, at its line (it names keys, never values)."""
    message = str(exc)
    where = _WHERE.search(message)
    line = text.rstrip().count("\n") + 1  # "at end of document": the last line with text
    column = ""
    if where is not None:
        message = message[: where.start()]
        if where.group(1):
            line, column = int(where.group(1)), f" (column {where.group(2)})"
    twice = re.fullmatch(r"Cannot declare (\(.*\)) twice", message)
    if twice:
        try:
            declared: object = ast.literal_eval(twice.group(1))
        except (ValueError, SyntaxError):
            declared = None
        parts = cast(tuple[object, ...], declared) if isinstance(declared, tuple) else ()
        if len(parts) == 2 and parts[0] == "accounts":
            return _located(path, line, f"{_header(str(parts[1]))} is declared twice; account names are unique")
    return _located(path, line, f"not valid TOML: {message}{column}")


def _located(path: Path, line: int, message: str) -> ConfigurationError:
    return ConfigurationError(f"contacts-mcp: {path}:{line}: {message}")


def _header(name: str) -> str:
    """The account's table header as it would be written: `[accounts.acme-hl]`."""
    return f"[accounts.{name if _BARE_KEY.fullmatch(name) else json.dumps(name)}]"


def _type_name(value: object) -> str:
    names: dict[type, str] = {
        str: "a string",
        bool: "true or false",
        int: "a number",
        float: "a number",
        dict: "a table",
        list: "a list",
    }
    return names.get(type(value), "a date or time")


def _suggestion(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _looks_secret(key: str) -> bool:
    """Whether a key's name says it holds a credential (`api_key`, `token`, `clientSecret`, ...)."""
    return any(word in key.lower() for word in _SECRET_WORDS)


class _Reader:
    """Checks the parsed document, one account at a time, raising at the first mistake."""

    def __init__(self, path: Path, locator: _Locator, environ: Mapping[str, str], secrets_dir: Path) -> None:
        self._path = path
        self._locator = locator
        self._environ = environ
        self._secrets_dir = secrets_dir

    def _error(self, where: tuple[str, ...], message: str) -> ConfigurationError:
        return _located(self._path, self._locator.line(where), message)

    def accounts(self, document: dict[str, Any]) -> list[Account]:
        for key in document:
            if key == "accounts":
                continue
            if _looks_secret(key):
                raise self._error((key,), self._secret_message("the file", key))
            raise self._error(
                (key,), f"unknown key {key}{_suggestion(key, ['accounts'])}; accounts go in [accounts.<name>] tables"
            )
        tables: object = document.get("accounts")
        if tables is None or tables == {}:
            raise self._error(
                ("accounts",),
                "defines no account; add one as [accounts.<name>] with provider, description, api_key_env",
            )
        if not isinstance(tables, dict):
            raise self._error(
                ("accounts",), f"accounts is {_type_name(tables)}; each account is a table [accounts.<name>]"
            )
        return [self._account(name, value) for name, value in cast(dict[str, object], tables).items()]

    def _secret_message(self, owner: str, key: str) -> str:
        hint = _suggestion(key, ["api_key_env", "api_key_file"])
        return (
            f"{owner} has {key}{hint}: keys are never written in the accounts file; put the key in an environment "
            "variable and its name in api_key_env, or the key alone in a file named by api_key_file"
        )

    def _account(self, name: str, value: object) -> Account:
        where = ("accounts", name)
        header = _header(name)
        if not isinstance(value, dict):
            raise self._error(where, f"accounts.{name} is {_type_name(value)}; an account is a table {header}")
        table = cast(dict[str, object], value)
        if name == DEFAULT_NAME:
            raise self._error(
                where, f"{header}: the name default is the account of the environment variables; pick another name"
            )
        if not NAME.fullmatch(name):
            raise self._error(
                where,
                f"{header}: an account's name is 1 to 40 lowercase letters, digits and '-', starting with a letter "
                "or digit (e.g. acme-hl)",
            )
        every = tuple(dict.fromkeys(key for provider in _MODELS for key in _accepted_keys(provider)))
        for key in table:
            if key not in every and _looks_secret(key):
                raise self._error((*where, key), self._secret_message(header, key))
        provider = self._provider(name, table)
        label = PROVIDERS[provider].label
        accepted = _accepted_keys(provider)
        for key in table:
            if key in accepted:
                continue
            if key in every:
                takers = [PROVIDERS[other].label for other in _MODELS if key in _accepted_keys(other)]
                raise self._error(
                    (*where, key),
                    f"{header} has {key}, which only {' and '.join(takers)} accounts take; "
                    f"a {label} account takes {', '.join(accepted)}",
                )
            raise self._error(
                (*where, key),
                f"{header} has an unknown key {key}{_suggestion(key, list(accepted))}; "
                f"a {label} account takes {', '.join(accepted)}",
            )
        description = self._text(
            name, table, "description", required=f"(a short line telling the model what {name} is)"
        )
        assert description is not None
        if "\n" in description or "\r" in description or len(description) > MAX_DESCRIPTION_CHARS:
            raise self._error(
                (*where, "description"),
                f"{header} description is one line of at most {MAX_DESCRIPTION_CHARS} characters",
            )
        key = self._key(name, table, label)
        scope: dict[str, str | None] = {}
        for field_name in _PROVIDER_KEYS:
            if field_name in accepted:
                required = f"(the {label} {field_name.removesuffix('_id')} this key belongs to)"
                scope[field_name] = self._text(
                    name, table, field_name, required=required if field_name in _REQUIRED.get(provider, ()) else None
                )
        base_url = self._text(name, table, "base_url")
        checked = self._provider_model(name, provider, key, base_url, scope)
        return Account(
            name=name,
            provider=provider,
            description=description,
            key=key,
            base_url=checked.base_url,
            location_id=scope.get("location_id"),
            company_id=scope.get("company_id"),
            timezone=getattr(checked, "timezone", None),
            rate_limits=MappingProxyType(self._rate_limits(name, provider, table)),
        )

    def _provider(self, name: str, table: dict[str, object]) -> str:
        header = _header(name)
        choices = list(PROVIDERS)
        if "provider" not in table:
            raise self._error(("accounts", name), f"{header} has no provider ({', '.join(choices)})")
        value = table["provider"]
        if not isinstance(value, str):
            raise self._error(
                ("accounts", name, "provider"),
                f"{header} provider is {_type_name(value)}; it is one of {', '.join(choices)}",
            )
        if value not in PROVIDERS:
            shown = f" {value!r}" if _BARE_KEY.fullmatch(value) and len(value) <= 20 else ""
            raise self._error(
                ("accounts", name, "provider"),
                f"{header} provider{shown} is not one of {', '.join(choices)}{_suggestion(value, choices)}",
            )
        return value

    def _text(self, name: str, table: dict[str, object], key: str, *, required: str | None = None) -> str | None:
        """A string value, stripped; None when absent and not `required` (said in the missing key's message)."""
        header = _header(name)
        if key not in table:
            if required is None:
                return None
            raise self._error(("accounts", name), f"{header} has no {key} {required}")
        value = table[key]
        if not isinstance(value, str):
            raise self._error(("accounts", name, key), f"{header} {key} is {_type_name(value)}; it must be a string")
        if not value.strip():
            raise self._error(("accounts", name, key), f"{header} {key} is empty")
        return value.strip()

    def _key(self, name: str, table: dict[str, object], label: str) -> SecretStr:
        header = _header(name)
        has_env, has_file = "api_key_env" in table, "api_key_file" in table
        if has_env and has_file:
            raise self._error(
                ("accounts", name, "api_key_file"), f"{header} has api_key_env and api_key_file; keep one"
            )
        if not has_env and not has_file:
            raise self._error(
                ("accounts", name),
                f"{header} has no api_key_env (the name of the environment variable holding its {label} key)",
            )
        if has_env:
            where = ("accounts", name, "api_key_env")
            variable = table["api_key_env"]
            if not isinstance(variable, str):
                raise self._error(
                    where, f"{header} api_key_env is {_type_name(variable)}; it must be a variable's name"
                )
            if not _VARIABLE.fullmatch(variable):
                # Not a name: most likely the key itself, so it is not quoted back.
                raise self._error(
                    where,
                    f"{header} api_key_env is not the name of an environment variable (letters, digits and _, "
                    f"e.g. ACME_HL_KEY); put the {label} key in that variable, never in this file",
                )
            named = variable if _CONVENTIONAL_VARIABLE.fullmatch(variable) else "named in api_key_env"
            if variable not in self._environ:
                raise self._error(where, f"{header}: the environment variable {named} (its {label} key) is not set")
            key = self._environ[variable].strip()
            if not key:
                raise self._error(where, f"{header}: the environment variable {named} (its {label} key) is empty")
            return SecretStr(key)
        where = ("accounts", name, "api_key_file")
        given = table["api_key_file"]
        if not isinstance(given, str) or not given.strip():
            shown = "empty" if isinstance(given, str) else _type_name(given)
            raise self._error(where, f"{header} api_key_file is {shown}; it must be the path of a file holding the key")
        secret_file = self._secrets_dir / Path(given.strip()).expanduser()
        try:
            data = secret_file.read_bytes()
        except OSError as exc:
            raise self._error(
                where, f"{header}: cannot read api_key_file {secret_file} ({exc.strerror or exc})"
            ) from None
        try:
            key = data.decode("utf-8-sig").strip()
        except UnicodeDecodeError:  # its message would quote bytes of the key
            raise self._error(where, f"{header}: api_key_file {secret_file} is not UTF-8 text") from None
        if not key:
            raise self._error(where, f"{header}: api_key_file {secret_file} is empty")
        if any(character.isspace() for character in key):
            raise self._error(
                where,
                f"{header}: api_key_file {secret_file} holds more than one word; it must hold only the {label} key",
            )
        return SecretStr(key)

    def _provider_model(
        self, name: str, provider: str, key: SecretStr, base_url: str | None, scope: Mapping[str, str | None]
    ) -> ProviderSettings:
        """The account checked by its provider's own settings model (base URL, timezone), every field given."""
        model = _MODELS[provider]
        values: dict[str, Any] = {
            field_name: info.get_default(call_default_factory=True) for field_name, info in model.model_fields.items()
        }
        values |= {key_name: value for key_name, value in scope.items() if value is not None}
        values |= {"api_key": key} | ({"base_url": base_url} if base_url is not None else {})
        try:
            return model(**values)  # every field given, so no environment variable is read
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            field_name = str(error["loc"][0]) if error["loc"] else ""
            message = error["msg"].removeprefix("Value error, ")
            raise self._error(("accounts", name, field_name), f"{_header(name)} {field_name}: {message}") from None

    def _rate_limits(self, name: str, provider: str, table: dict[str, object]) -> dict[str, tuple[Rate, ...]]:
        """The account's overrides by budget name: a table of `tool = "count/seconds"` (or a list of such), or
        the string `CONTACTS_MCP_RATE_LIMITS` takes (`cometly.list_contacts=15/60,...`)."""
        header = _header(name)
        where = ("accounts", name, "rate_limits")
        value = table.get("rate_limits")
        budgets = PROVIDERS[provider].default_budgets
        prefix = f"{provider}."
        short_names = [budget.removeprefix(prefix) for budget in budgets]
        example = f'rate_limits = {{ {short_names[0]} = "15/60" }}'
        found: list[tuple[str, tuple[Rate, ...], tuple[str, ...]]] = []
        if value is None:
            return {}
        if isinstance(value, str):
            try:
                parsed = parse_rate_limits(value)
            except ValueError as exc:
                raise self._error(where, f"{header} rate_limits: {exc}") from None
            found = [(budget, rates, where) for budget, rates in parsed.items()]
        elif isinstance(value, dict):
            for short, given in cast(dict[str, object], value).items():
                at = (*where, short)
                kind = _type_name(given)
                texts: list[object] = cast(list[object], given) if isinstance(given, list) else [given]
                if not texts or not all(isinstance(text, str) for text in texts):
                    raise self._error(
                        at,
                        f'{header} rate_limits.{short} is {kind}; it must be "count/seconds" or a list '
                        f"of them, with the budget named without its provider ({example})",
                    )
                budget = short if "." in short else f"{prefix}{short}"
                entry: list[Rate] = []
                for text in cast(list[str], texts):
                    try:
                        parsed = {} if "," in text or "=" in text else parse_rate_limits(f"{budget}={text}")
                    except ValueError:
                        parsed = {}
                    if list(parsed) != [budget]:
                        raise self._error(
                            at,
                            f'{header} rate_limits.{short} must be "count/seconds" with a whole count and seconds '
                            f'above zero (e.g. "15/60")',
                        )
                    entry += parsed[budget]
                found.append((budget, tuple(entry), at))
        else:
            raise self._error(where, f"{header} rate_limits is {_type_name(value)}; it must be a table ({example})")
        limits: dict[str, tuple[Rate, ...]] = {}
        for budget, rates, at in found:
            if budget not in budgets:
                short = budget.removeprefix(prefix)
                raise self._error(
                    at,
                    f"{header} rate_limits names {budget}, not a budget of {PROVIDERS[provider].label}"
                    f"{_suggestion(short, short_names)}; its budgets are {', '.join(short_names)}",
                )
            limits[budget] = limits.get(budget, ()) + rates
        return limits


class _Locator:
    """The line of each table and key of a TOML text that tomllib accepted (tomllib keeps no positions).

    A small scanner of TOML's syntax: it follows strings (all four kinds, so a line inside a multi-line
    string is never taken for a key), comments, table headers, dotted and quoted keys, inline tables and
    arrays, and records for every key path the first line it appears on; a table header's own line wins.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._at = 0
        self._newlines = [index for index, character in enumerate(text) if character == "\n"]
        self._first: dict[tuple[str, ...], int] = {}
        self._headers: dict[tuple[str, ...], int] = {}
        with contextlib.suppress(IndexError):  # a construct this scanner misreads: the lines found so far stand
            self._scan()

    def line(self, path: tuple[str, ...]) -> int:
        """The line of `path`, or of its longest prefix found; 1 when none is."""
        for end in range(len(path), 0, -1):
            prefix = path[:end]
            found = self._headers.get(prefix) or self._first.get(prefix)
            if found:
                return found
        return 1

    def _line_of(self, position: int) -> int:
        return bisect.bisect_right(self._newlines, position - 1) + 1

    def _record(self, path: tuple[str, ...], position: int) -> None:
        line = self._line_of(position)
        for end in range(1, len(path) + 1):
            self._first.setdefault(path[:end], line)

    def _peek(self, width: int = 1) -> str:
        return self._text[self._at : self._at + width]

    def _skip(self, *, lines: bool) -> None:
        """Past spaces and tabs; with `lines`, past newlines and comments too."""
        text = self._text
        while self._at < len(text):
            character = text[self._at]
            if character in " \t\r" or (lines and character == "\n"):
                self._at += 1
            elif lines and character == "#":
                end = text.find("\n", self._at)
                self._at = len(text) if end < 0 else end
            else:
                return

    def _scan(self) -> None:
        table: tuple[str, ...] = ()
        while True:
            self._skip(lines=True)
            if self._at >= len(self._text):
                return
            start = self._at
            if self._peek() == "[":
                self._at += 2 if self._peek(2) == "[[" else 1
                table = self._key()
                self._skip(lines=False)
                self._at += 2 if self._peek(2) == "]]" else 1
                self._record(table, start)
                self._headers.setdefault(table, self._line_of(start))
            else:
                self._pair(table)

    def _pair(self, table: tuple[str, ...] | None) -> None:
        """A `key = value`; recorded under `table` unless it is None (inside an array)."""
        start = self._at
        path = self._key()
        full = None if table is None else table + path
        if full is not None:
            self._record(full, start)
        self._skip(lines=False)
        self._at += 1  # '='
        self._skip(lines=False)
        self._value(full)

    def _key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self._skip(lines=False)
            parts.append(self._simple_key())
            self._skip(lines=False)
            if self._peek() != ".":
                return tuple(parts)
            self._at += 1

    def _simple_key(self) -> str:
        text = self._text
        start = self._at
        if self._peek() in ('"', "'"):
            self._string()
            raw = text[start : self._at]
            return next(iter(tomllib.loads(f"{raw} = 0")))  # tomllib decodes the escapes
        while self._at < len(text) and (text[self._at].isalnum() or text[self._at] in "_-"):
            self._at += 1
        return text[start : self._at]

    def _string(self) -> None:
        """Past one string of any of TOML's four kinds, starting at its opening quote."""
        text = self._text
        quote = text[self._at]
        if self._peek(3) == quote * 3:
            self._at += 3
            while not text.startswith(quote * 3, self._at):
                self._at += 2 if quote == '"' and text[self._at] == "\\" else 1
            self._at += 3
            extra = 0
            while extra < 2 and self._peek() == quote:  # up to two quotes may close the content
                self._at += 1
                extra += 1
            return
        self._at += 1
        while text[self._at] != quote:
            self._at += 2 if quote == '"' and text[self._at] == "\\" else 1
        self._at += 1

    def _value(self, path: tuple[str, ...] | None) -> None:
        opening = self._peek()
        if opening in ('"', "'"):
            self._string()
        elif opening == "{":
            self._at += 1
            while True:
                self._skip(lines=True)
                if self._peek() == "}":
                    self._at += 1
                    return
                if self._peek() == ",":
                    self._at += 1
                    continue
                self._pair(path)
        elif opening == "[":
            self._at += 1
            while True:
                self._skip(lines=True)
                if self._peek() == "]":
                    self._at += 1
                    return
                if self._peek() == ",":
                    self._at += 1
                    continue
                self._value(None)
        else:  # a number, boolean or date: up to what ends a value
            text = self._text
            while self._at < len(text) and text[self._at] not in ",]}#\n":
                self._at += 1
