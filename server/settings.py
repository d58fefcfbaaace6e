"""Settings from the environment and an optional `.env` file, one model per provider.

Nothing here runs at import: `load_settings()` is called from `main()`, and tests build the models
directly, so a developer's `.env` never leaks into a test run.

An empty value means "not set", in the environment and in `.env` alike (`env_ignore_empty`): an MCP
client bundle passes a setting its user left blank as `NAME=""`, which must neither be refused nor
hide the `.env` file's value.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict, get_args
from urllib.parse import SplitResult, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import AfterValidator, Field, PrivateAttr, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .errors import ConfigurationError

MIN_TOKEN_CHARS = 16
"""The shortest `CONTACTS_MCP_HTTP_TOKEN` accepted: a guessable token is no protection."""


@dataclass(frozen=True)
class Rate:
    """At most `count` requests in any window of `seconds` seconds."""

    count: int
    seconds: float


_HOST_NAME = re.compile(r"[A-Za-z0-9._-]+")
_DIGITS = re.compile(r"[0-9]+")
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_IPV6_FORM = "an IPv6 address goes in brackets, e.g. [::1] or [::1]:6379"
_ENCODE_SPECIALS = "percent-encode special characters of the user and password (/ as %2F, @ as %40, # as %23)"


def _split_url(value: str, example: str) -> SplitResult:
    """`value` split into its parts. Messages here never quote the URL: it may hold a password.

    Raises:
        ValueError: If the URL has spaces or control characters, or unbalanced brackets.
    """
    if _SPACE_OR_CONTROL.search(value):
        raise ValueError(f"must not contain spaces or control characters (percent-encode them; e.g. {example})")
    try:
        return urlsplit(value)
    except ValueError:  # urllib's message may quote the host
        raise ValueError(f"has an unbalanced '[' or ']', or no IPv6 address inside them ({_IPV6_FORM})") from None


def _authority_problem(url: SplitResult, example: str) -> str | None:
    """What is wrong with the URL's `[user[:password]@]host[:port]`, or None."""
    hostport = url.netloc.rpartition("@")[2]
    if "@" in url.path + url.query + url.fragment:
        return f"has an '@' after the host: {_ENCODE_SPECIALS}"
    port: str | None = None
    if hostport.startswith("["):
        address, bracket, rest = hostport[1:].partition("]")
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return f"has something in brackets that is not an IPv6 address ({_IPV6_FORM})"
        if not bracket or (rest and not rest.startswith(":")):
            return f"has text after an IPv6 address's ']' that is not :port ({_IPV6_FORM})"
        port = rest[1:] if rest else None
    elif hostport.count(":") > 1:
        return f"has an IPv6 address without brackets ({_IPV6_FORM})"
    else:
        host, colon, rest = hostport.partition(":")
        if not host:
            return f"has no host (e.g. {example})"
        if not _HOST_NAME.fullmatch(host):
            return f"has a host that is not a name or an address (letters, digits, '.', '-', '_'; e.g. {example})"
        port = rest if colon else None
    if port is not None and not (_DIGITS.fullmatch(port) and len(port) <= 5 and 1 <= int(port) <= 65535):
        return f"has a port that is not a whole number from 1 to 65535 (e.g. {example})"
    return None


def _redis_url_problem(value: str) -> str | None:
    """What keeps `value` from being a Redis URL the server can connect with, or None."""
    if not value.startswith(("redis://", "rediss://", "unix://")):
        return "must start with redis://, rediss:// or unix:// (e.g. redis://127.0.0.1:6379/0)"
    if value.startswith("unix://"):
        example = "unix:///run/redis/redis.sock?db=0"
        url = _split_url(value, example)
        if url.netloc.rpartition("@")[2] or url.path in ("", "/") or "@" in url.path:
            return f"must name the socket's path after three slashes (e.g. {example}); {_ENCODE_SPECIALS}"
    else:
        example = "redis://127.0.0.1:6379/0"
        url = _split_url(value, example)
        problem = _authority_problem(url, example)
        if problem:
            return problem
        if url.path not in ("", "/") and not _DIGITS.fullmatch(url.path[1:]):
            return f"has a path that is not /<database number> (e.g. {example})"
    if url.fragment or "#" in value:
        return f"must not have a #fragment; {_ENCODE_SPECIALS}"
    for name, _, number in (part.partition("=") for part in url.query.split("&")):
        if name == "db" and not _DIGITS.fullmatch(number):
            return "has a db= that is not a database number (e.g. ?db=0)"
    return None


_PUBLIC_URL_EXAMPLE = "https://contacts.example.com/mcp"
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def _oauth_url_problem(value: str, example: str) -> str | None:
    """What keeps `value` from being an issuer or resource URL, or None (`OAuthConfig` asks for https)."""
    if not value.startswith(("http://", "https://")):
        return f"must start with https:// (e.g. {example})"
    if "?" in value or "#" in value:
        # RFC 8414 §2: an issuer has no query or fragment; RFC 8707 §2: a resource has no fragment.
        return f"must not have a query or fragment (e.g. {example})"
    url = _split_url(value, example)
    if "@" in url.netloc:
        return f"must not have a user or password (e.g. {example})"
    return _authority_problem(url, example)


class ProviderSettings(BaseSettings):
    """What every provider's settings have: a secret key and an http(s) base URL."""

    api_key: SecretStr | None = None
    base_url: str

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        example = "https://api.example.com/v1"
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if "?" in value or "#" in value:
            # Request paths are appended to the base URL: behind a query they would land inside it.
            raise ValueError(f"must not have a query or fragment (e.g. {example})")
        url = _split_url(value, example)
        problem = _authority_problem(url, example)
        if problem:
            raise ValueError(problem)
        return value.rstrip("/")

    @property
    def configured(self) -> bool:
        """Whether a (non-blank) key is set: the provider is served only then."""
        return self.api_key is not None and bool(self.api_key.get_secret_value().strip())

    def key(self) -> str:
        """The key itself, for the one place that puts it in a header."""
        return self.api_key.get_secret_value().strip() if self.api_key else ""


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA timezone {value!r} (e.g. UTC, Europe/Berlin)") from None
    return value


Timezone = Annotated[str, AfterValidator(_known_zone)]


class CometlySettings(ProviderSettings):
    """Cometly: `COMETLY_API_KEY`, `COMETLY_BASE_URL`, `COMETLY_TIMEZONE`."""

    model_config = SettingsConfigDict(env_prefix="COMETLY_", extra="ignore", env_ignore_empty=True)

    base_url: str = "https://app.cometly.com/public-api/v1"
    timezone: Timezone = "UTC"
    """The Space's timezone: list date ranges and date words ("last week") are interpreted in it."""


class HighLevelSettings(ProviderSettings):
    """HighLevel (LeadConnector): `HIGHLEVEL_API_KEY`, `HIGHLEVEL_BASE_URL`, `HIGHLEVEL_LOCATION_ID`.

    The key is a private integration token or an OAuth access token of a sub-account (location).
    """

    model_config = SettingsConfigDict(env_prefix="HIGHLEVEL_", extra="ignore", env_ignore_empty=True)

    base_url: str = "https://services.leadconnectorhq.com"
    location_id: str | None = None
    """The sub-account the key belongs to: creates and lookups need it, and limits are counted per location."""


class ClemtaSettings(ProviderSettings):
    """Clemta: `CLEMTA_API_KEY`, `CLEMTA_BASE_URL`, `CLEMTA_COMPANY_ID`, `CLEMTA_TIMEZONE`."""

    model_config = SettingsConfigDict(env_prefix="CLEMTA_", extra="ignore", env_ignore_empty=True)

    base_url: str = "https://api.clemta.com"
    company_id: str | None = None
    """The company whose contacts are listed and created (Clemta requires it on both)."""
    timezone: Timezone = "UTC"
    """The timezone list date ranges and date words are read in (Clemta itself counts in Unix time)."""


class ProviderModels(TypedDict):
    """One settings model per provider, as `Settings` holds them."""

    cometly: CometlySettings
    highlevel: HighLevelSettings
    clemta: ClemtaSettings


def parse_rate_limits(text: str) -> dict[str, tuple[Rate, ...]]:
    """Parse `name=count/seconds,...`; a name given twice gets both rules.

    Raises:
        ValueError: If an entry is not `provider.tool=count/seconds` with positive numbers.
    """
    rules: dict[str, list[Rate]] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, rate = entry.partition("=")
        count, slash, seconds = rate.partition("/")
        try:
            parsed = Rate(int(count), float(seconds))
        except ValueError:
            parsed = None
        if not sep or not slash or "." not in name or parsed is None or parsed.count < 1 or parsed.seconds <= 0:
            raise ValueError(f"{entry!r} is not provider.tool=count/seconds (e.g. cometly.list_contacts=15/60)")
        rules.setdefault(name.strip(), []).append(parsed)
    return {name: tuple(rates) for name, rates in rules.items()}


class Settings(BaseSettings):
    """The server's own settings (`CONTACTS_MCP_*`) and one nested model per provider."""

    model_config = SettingsConfigDict(env_prefix="CONTACTS_MCP_", extra="ignore", env_ignore_empty=True)

    cometly: CometlySettings = Field(default_factory=CometlySettings)
    highlevel: HighLevelSettings = Field(default_factory=HighLevelSettings)
    clemta: ClemtaSettings = Field(default_factory=ClemtaSettings)
    default_provider: str | None = None
    """The `provider` tools use when none is given; default: the first configured of cometly, highlevel, clemta."""
    read_only: bool = False
    """When true, tools that change upstream data are not listed at all."""
    max_wait_seconds: float = Field(default=30.0, ge=0)
    """The longest a call waits for its rate budget before it returns `[rate_limited]`."""
    timeout_seconds: float = Field(default=20.0, gt=0)
    """Timeout of one upstream request."""
    rate_limits: Annotated[dict[str, tuple[Rate, ...]], NoDecode] = Field(default_factory=dict[str, tuple[Rate, ...]])
    """Budget overrides by name, e.g. `cometly.list_contacts=15/60`; they replace that budget's defaults."""
    redis_url: SecretStr | None = None
    """Share every budget through this Redis (`redis://host:6379/0`), so processes on one key never add up."""
    tools: Annotated[list[str] | None, NoDecode] = None
    """Serve only these tools (comma-separated names); default: every tool the configured providers offer."""
    max_response_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """The largest upstream answer read; a bigger one is refused as `[upstream_unavailable]`."""
    http_token: SecretStr | None = None
    """The bearer token HTTP clients must send (`Authorization: Bearer ...`); required off loopback."""
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list[str])
    """Host header values the HTTP transport accepts besides loopback ones, e.g. `contacts.example.com`."""
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list[str])
    """Origin header values (browser clients) the HTTP transport accepts besides loopback ones."""
    max_result_tokens: int = Field(default=20_000, ge=1_000, le=1_000_000)
    """The largest tool result, in tokens estimated as characters / 4; a longer one is cut with a cursor or a hint."""
    custom_fields_ttl_seconds: float = Field(default=3_600.0, ge=0)
    """How long the custom-field labels read from an upstream are reused before they are read again."""
    index: str | None = None
    """Cometly's contact index: `off`, or the SQLite file's path; default: the user data directory's `index.sqlite3`."""
    index_url: SecretStr | None = None
    """Keep the contact index in this PostgreSQL database (`postgresql://user:pass@host/db`), shared by replicas."""
    index_share: float = Field(default=1 / 3, gt=0, le=1)
    """The largest share of each rate budget the index's background sync may use (0-1]; the rest stays for tools."""
    oauth_issuer: str | None = None
    """The OAuth authorization server whose access tokens HTTP clients may send, exactly as its metadata's `issuer`."""
    public_url: str | None = None
    """The server's public resource URL (e.g. `https://contacts.example.com/mcp`); required with an issuer."""
    oauth_audience: str | None = None
    """The `aud` the issuer puts in access tokens for this server; default: `public_url`."""
    oauth_read_scope: str = "contacts:read"
    """The scope a token needs for the read tools."""
    oauth_write_scope: str = "contacts:write"
    """The scope a token needs for create_contact and update_contact."""
    oauth_account_scope_prefix: str = "contacts:account:"
    """With an accounts file, a token may use the account NAME when it holds the scope PREFIX+NAME (PREFIX+`*`: all)."""
    http_token_accounts: Annotated[list[str] | None, NoDecode] = None
    """The accounts (comma-separated names) the static token may use; default: every account."""
    oauth_client_id: str | None = None
    """This server's client id at the issuer's introspection endpoint (RFC 7662), for opaque tokens."""
    oauth_client_secret: SecretStr | None = None
    """This server's client secret at the issuer's introspection endpoint."""
    accounts_file: Path | None = None
    """The TOML file of named accounts (`server.accounts`), served beside the environment's account `default`."""
    _account_keys: tuple[SecretStr, ...] = PrivateAttr(default=())

    @property
    def account_keys(self) -> tuple[SecretStr, ...]:
        """The keys of the accounts file's accounts: secrets to redact besides those of the fields."""
        return self._account_keys

    def with_account_keys(self, keys: Collection[SecretStr]) -> Settings:
        """These settings also holding `keys` as secrets; a `model_copy` of them (`Account.apply`) keeps them."""
        copy = self.model_copy()
        copy._account_keys = tuple(keys)
        return copy

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value().strip() if value is not None else ""
        if not url:
            return None
        problem = _redis_url_problem(url)
        if problem:
            raise ValueError(problem)
        return SecretStr(url)

    @field_validator("index")
    @classmethod
    def _index(cls, value: str | None) -> str | None:
        text = (value or "").strip()
        if not text:
            return None
        if text.lower() in {"off", "false", "0", "no", "none", "disabled"}:
            return "off"
        if "://" in text:
            raise ValueError("is the SQLite file's path or off; put a database URL in CONTACTS_MCP_INDEX_URL instead")
        return text

    @field_validator("index_url")
    @classmethod
    def _index_url(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value().strip() if value is not None else ""
        if not url:
            return None
        scheme = url.partition("://")[0].lower()
        if scheme not in {"postgresql", "postgres"} or "://" not in url:
            raise ValueError("must be a PostgreSQL URL, e.g. postgresql://contacts:secret@db.internal:5432/contacts")
        return SecretStr(url)

    @property
    def index_off(self) -> bool:
        """Whether the contact index is turned off (`CONTACTS_MCP_INDEX=off`)."""
        return self.index == "off"

    @field_validator("http_token")
    @classmethod
    def _http_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        token = value.get_secret_value().strip()
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"must be at least {MIN_TOKEN_CHARS} characters; make one with "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return SecretStr(token)

    @field_validator("oauth_issuer", "public_url")
    @classmethod
    def _oauth_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        url = (value or "").strip()
        if not url:
            return None
        example = "https://login.example.com/realms/team" if info.field_name == "oauth_issuer" else _PUBLIC_URL_EXAMPLE
        problem = _oauth_url_problem(url, example)
        if problem:
            raise ValueError(problem)
        return url  # kept exactly: the issuer is compared with the metadata's, the resource with `aud`

    @field_validator("oauth_audience")
    @classmethod
    def _oauth_audience(cls, value: str | None) -> str | None:
        # A blank audience stays "" (not None), so `OAuthConfig` refuses it instead of silently
        # falling back to the public URL.
        return value.strip() if value is not None else None

    @field_validator("oauth_read_scope", "oauth_write_scope", "oauth_account_scope_prefix")
    @classmethod
    def _oauth_scope(cls, value: str) -> str:
        scope = value.strip()
        if not _SCOPE_TOKEN.fullmatch(scope):
            # RFC 6749 §3.3's scope-token; it is also quoted in WWW-Authenticate, where '"' or '\\' would break out.
            raise ValueError(
                "must be one scope name: printable ASCII without spaces, '\"' or '\\' (e.g. contacts:read)"
            )
        return scope

    @field_validator("oauth_client_id")
    @classmethod
    def _oauth_client_id(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("oauth_client_secret")
    @classmethod
    def _oauth_client_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(value.get_secret_value().strip())

    @field_validator("tools", "http_token_accounts", mode="before")
    @classmethod
    def _tools(cls, value: Any) -> Any:
        if isinstance(value, str):
            names = [name.strip() for name in value.split(",") if name.strip()]
            return names or None
        return value

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _rate_limits(cls, value: Any) -> Any:
        return parse_rate_limits(value) if isinstance(value, str) else value


_ENV_PREFIXES: dict[type[BaseSettings], str] = {
    CometlySettings: "COMETLY_",
    HighLevelSettings: "HIGHLEVEL_",
    ClemtaSettings: "CLEMTA_",
    Settings: "CONTACTS_MCP_",
}


def _origin(variable: str, env_file: Path | None, in_file: Mapping[str, str | None]) -> str | None:
    """Where the value of `variable` came from, as pydantic-settings chose it: the environment wins over the file.

    Names match case-insensitively and an empty value counts as not set, as they do for pydantic-settings.
    """
    if any(name.upper() == variable and value != "" for name, value in os.environ.items()):
        return "the environment"
    if env_file is not None and any(name.upper() == variable and value for name, value in in_file.items()):
        return str(env_file.absolute())
    return None


def _is_secret(model: type[BaseSettings], field: str) -> bool:
    info = model.model_fields.get(field)
    annotation = info.annotation if info is not None else None
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _configuration_error(model: type[BaseSettings], exc: ValidationError, env_file: Path | None) -> ConfigurationError:
    """One line naming each refused variable and where its value came from, never the value of a secret."""
    prefix = _ENV_PREFIXES[model]
    in_file = dotenv_values(env_file, encoding="utf-8") if env_file is not None else {}
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        variable = f"{prefix}{field.upper()}"
        message = error["msg"].removeprefix("Value error, ")
        given = error.get("input")
        if _is_secret(model, field) and isinstance(given, str) and given.strip() and given in message:
            message = message.replace(given, "***")
        origin = _origin(variable, env_file, in_file)
        problems.append(f"{variable}{f' in {origin}' if origin else ''}: {message}")
    return ConfigurationError("invalid configuration: " + "; ".join(dict.fromkeys(problems)))


def load_settings(
    env_file: Path | None = Path(".env"),
    *,
    providers: ProviderModels | None = None,
    unread: Collection[str] = (),
) -> Settings:
    """Read the settings from the environment and, when it exists, `env_file`.

    Args:
        env_file: The `.env` file to read, when it exists; the environment wins over it.
        providers: Use these provider settings and read no `COMETLY_*`, `HIGHLEVEL_*` or `CLEMTA_*`
            variable at all (the sandbox's, which needs no account).
        unread: Fields of `Settings` to leave at their defaults without reading their variables.

    Raises:
        ConfigurationError: If a variable has an invalid value, or `env_file` cannot be read as UTF-8; the
            message names the variable and where its value came from (the environment or the file).
    """
    source = env_file if env_file is not None and env_file.is_file() else None
    if source is not None:
        try:
            source.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # its message would quote bytes of the file, which holds keys
            raise ConfigurationError(f"contacts-mcp: {source} is not UTF-8; save it as UTF-8 or remove it") from None
        except OSError as exc:
            raise ConfigurationError(f"contacts-mcp: cannot read {source} ({exc.strerror or exc})") from None
    given: dict[str, Any] = dict(providers or {})
    models: tuple[tuple[str, type[BaseSettings]], ...] = (
        ("cometly", CometlySettings),
        ("highlevel", HighLevelSettings),
        ("clemta", ClemtaSettings),
    )
    for name, model in models:
        if name in given:
            continue
        try:
            given[name] = model(_env_file=source, _env_file_encoding="utf-8")  # pyright: ignore[reportCallIssue]
        except ValidationError as exc:
            raise _configuration_error(model, exc, source) from None
    # Given values win over every source, so the variables of these are never read, nor refused.
    given |= {name: Settings.model_fields[name].get_default(call_default_factory=True) for name in unread}
    try:
        return Settings(**given, _env_file=source, _env_file_encoding="utf-8")  # pyright: ignore[reportCallIssue]
    except ValidationError as exc:
        raise _configuration_error(Settings, exc, source) from None
