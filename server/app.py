"""Wiring: `build_server(settings)` returns the MCP server; its lifespan opens and closes every client.

`ContactsServer` is the one seam between the SDK and the tools' results: every failure becomes a
tool result `[kind] message` (the SDK's own argument validation included), and every success is
shaped by `server.results`: empty fields left out, long values cut, a compact JSON text copy, and
no secret anywhere.

A secret can reach a result through two doors only, and each is shut before anything cuts text:
the upstream's answers (`server.http.Upstream` redacts them as it reads them) and the model's
arguments (a call whose arguments hold a piece of a secret is refused unsent, so no message can
echo one cut short). What the server sends is scanned once more on the way out: tool results,
errors and resource text (`Redactor`: no 8-character piece of a secret survives).

Over HTTP the caller is known (`server.web`'s gate puts its access token in the SDK's auth context):
tools/list shows only the tools its scopes reach (`ToolScopes`), a call past them is refused before
any tool runs, and every call logs one audit line (`contacts_mcp.audit`): who, which tool and
provider, the outcome, and for a write the contact's id. Never the token.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

import httpx
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, InputRequiredResult, TextContent
from mcp_types import Tool as MCPTool
from pydantic import AnyUrl, BaseModel, ValidationError

from ..tools.contacts import (
    ALL_ACCOUNTS,
    WRITE_TOOLS,
    caller_accounts,
    narrowed_schema,
    register_contact_tools,
    settle_account,
)
from ..tools.server import About, register_server_tools
from .accounts import Account, default_accounts, load_accounts
from .budgets import Budget, Budgets, BudgetSpec, check_overrides, fingerprint, open_budgets, wait_reporter
from .errors import (
    ConfigurationError,
    ContactsError,
    InternalError,
    NotSupported,
    PermissionDenied,
    ValidationFailed,
)
from .index.running import open_index
from .providers import PROVIDERS, Provider
from .providers.cometly import Cometly
from .results import CHARS_PER_TOKEN, Redactor, as_text, fit, secrets_of, shape
from .settings import Settings
from .state import AppState, SharedState

logger = logging.getLogger(__name__)
audit_logger = logging.getLogger("contacts_mcp.audit")

VERSION = "0.1.0"
INSTRUCTIONS = (
    "Tools over the company's contacts. Find a person by email, phone or name with find_contact (one call, "
    "sign-up date included); find contacts with list_contacts (by creation date, which may be "
    "words such as 'last week') or filter_by_custom_field (by custom-field values, naming fields by the labels "
    "describe_custom_fields lists), then read one in full with get_contact. Lists of objects come as tables: "
    "column names once, then one row per item; a row shorter than the columns ends in nulls. Failed calls "
    "start with an error class in brackets, e.g. [rate_limited], followed by what to do next; server_info "
    "shows what each rate budget has left."
)
SANDBOX_NOTE = "SANDBOX DATA: generated contacts from the built-in sandbox, not real customers."

TransportFactory = Callable[[], httpx.AsyncBaseTransport]
_ERROR_CLASS = re.compile(r"\[([a-z_]+)\]")


@dataclass(frozen=True)
class ToolScopes:
    """The OAuth scope each tool needs (`write` for the tools that change contacts, `read` for every other) and,
    with named accounts, the scope each account needs: `account_prefix` + its name (`account_prefix` + `*`: all).

    Account scopes apply only with an accounts file, and then a token without one may use no account.
    """

    read: str = "contacts:read"
    write: str = "contacts:write"
    account_prefix: str = "contacts:account:"
    accounts: tuple[str, ...] = ()
    """The named accounts, in order; empty without an accounts file (no account scopes)."""
    static_accounts: tuple[str, ...] | None = None
    """The accounts the static token may use (`CONTACTS_MCP_HTTP_TOKEN_ACCOUNTS`); None: every one."""

    def needed(self, tool: str) -> str:
        """The scope a token must hold to list or call `tool`."""
        return self.write if tool in WRITE_TOOLS else self.read

    @property
    def all(self) -> list[str]:
        """The tool scopes, read first: a token needs one of them to reach any tool."""
        return [self.read, self.write]

    def account(self, name: str) -> str:
        """The scope that lets a token use the account `name` (`*`: every account)."""
        return self.account_prefix + name

    def usable(self, granted: Iterable[str]) -> frozenset[str] | None:
        """The accounts a token holding `granted` may use; None when it may use every one (or no accounts file)."""
        if not self.accounts:
            return None
        held = set(granted)
        if self.account(ALL_ACCOUNTS) in held:
            return None
        return frozenset(name for name in self.accounts if self.account(name) in held)

    @property
    def static(self) -> list[str]:
        """What the static token holds: both tool scopes and its accounts' scopes."""
        if not self.accounts:
            return self.all
        names = [ALL_ACCOUNTS] if self.static_accounts is None else self.static_accounts
        return [*self.all, *(self.account(name) for name in names)]

    @property
    def advertised(self) -> list[str]:
        """What the resource metadata lists (and so what clients ask for): the tool scopes, then each account's
        and the every-account scope; an issuer grants a user the ones it may have."""
        if not self.accounts:
            return self.all
        return [*self.all, *(self.account(name) for name in self.accounts), self.account(ALL_ACCOUNTS)]


def configured_providers(settings: Settings) -> list[type[Provider]]:
    """The providers whose credentials are set, in the order of `PROVIDERS`."""
    return [provider for provider in PROVIDERS.values() if provider.configured(settings)]


def configured_accounts(settings: Settings, environ: Mapping[str, str] | None = None) -> list[Account] | None:
    """The accounts to serve: None without `CONTACTS_MCP_ACCOUNTS_FILE` (one account per provider, as ever);
    else the environment's `default` account of each configured provider, then the file's, in its order.

    Args:
        settings: The loaded settings.
        environ: Where the file's `api_key_env` variables are looked up; default: `os.environ`.

    Raises:
        ConfigurationError: One line naming the file and line of its first mistake (`load_accounts`).
    """
    if settings.accounts_file is None:
        return None
    loaded = load_accounts(settings.accounts_file, os.environ if environ is None else environ)
    return [*default_accounts(settings), *loaded]


def with_accounts(settings: Settings, accounts: Sequence[Account] | None) -> Settings:
    """`settings` holding every account's key as a secret to redact (each account's own settings carry one)."""
    if not accounts:
        return settings
    return settings.with_account_keys([*settings.account_keys, *(account.key for account in accounts)])


def missing_provider_message() -> str:
    """What to tell a person who started the server with no provider configured."""
    return (
        "contacts-mcp: no contact provider is configured. Set COMETLY_API_KEY (Cometly) or HIGHLEVEL_API_KEY "
        "and HIGHLEVEL_LOCATION_ID (HighLevel), or CLEMTA_API_KEY and CLEMTA_COMPANY_ID (Clemta) in the "
        "environment or in a .env file, or add --sandbox to the command (`contacts-mcp serve --sandbox`, "
        "`contacts-mcp call TOOL ARGUMENTS --sandbox`) to try it with generated data."
    )


def _short(text: str, limit: int = 300) -> str:
    """`text` cut to `limit` characters: an error echoes arguments, and an argument may be huge."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _validation_message(exc: ValidationError) -> str:
    problems: list[str] = []
    for error in exc.errors(include_url=False)[:6]:
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        problems.append(_short(f"{where}: {message}" if where else message))
    more = f" (and {exc.error_count() - 6} more)" if exc.error_count() > 6 else ""
    return f"Invalid arguments: {'; '.join(problems)}{more}. Fix them and call again; nothing was sent."


def _output_model(tool: Tool | None) -> type[BaseModel] | None:
    """The model a tool's result is, which its text is written by (`as_text`); None when it has none."""
    model: Any = tool.fn_metadata.output_model if tool is not None else None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _holding_secrets(redactor: Redactor, arguments: dict[str, Any]) -> ValidationFailed:
    """The refusal of arguments that hold a piece of a secret, naming them without it."""
    named = [
        repr(_short(redactor.text(key), 40))
        for key, value in arguments.items()
        if redactor.found_in(key) or redactor.found_in(value)
    ]
    return ValidationFailed(
        f"Invalid arguments: {', '.join(named)} {'holds' if len(named) == 1 else 'hold'} part of a secret this "
        "server keeps (an API key, token or password), which it never sends or shows. Leave it out and call "
        "again; nothing was sent."
    )


def classify(exc: BaseException) -> ContactsError:
    """The `ContactsError` that a failed tool call stands for."""
    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:  # a cause chain can loop
        visited.add(id(seen))
        if isinstance(seen, ContactsError):
            return seen
        if isinstance(seen, ValidationError):
            unsupported = [error["msg"] for error in seen.errors() if error["type"] == "not_supported"]
            if unsupported:
                return NotSupported(unsupported[0])
            return ValidationFailed(_validation_message(seen))
        seen = seen.__cause__
    return InternalError("The server failed unexpectedly; the details are in its log. Try again later.")


class ContactsServer(MCPServer[AppState]):
    """`MCPServer` whose tool results are `[kind] message` on failure and compact on success."""

    def __init__(
        self,
        *,
        state: SharedState,
        redactor: Redactor,
        sandbox: bool = False,
        max_result_chars: int = 80_000,
        hidden: Mapping[str, str] | None = None,
        scopes: ToolScopes | None = None,
        accounts: Mapping[str, frozenset[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(lifespan=state, **kwargs)
        self.state = state
        self.accounts = dict(accounts or {})
        """The providers each account name is an account of (`default` may be several's); empty without a file."""
        self.scopes = scopes or ToolScopes()
        """The scope each tool needs from a caller whose token is known (HTTP); stdio and in-memory have none."""
        self.serving: dict[str, list[Account]] = {}
        """With an accounts file, the accounts each tool with a `provider` serves, in order (`bind_accounts`)."""
        self.hidden = dict(hidden or {})
        """Tools this server has but does not serve, each with why (read-only mode, the allow-list)."""
        self.redactor = redactor
        self.sandbox = sandbox
        self.max_result_chars = max_result_chars

    def bind_accounts(self, accounts: Sequence[Account]) -> None:
        """Note which of `accounts` serve each registered tool: those of the providers its `provider` lists, and
        for server_info every one."""
        self.serving = {}
        for tool in self._tool_manager.list_tools():
            provider: Any = tool.parameters.get("properties", {}).get("provider", {})
            offered: Any = cast(dict[str, Any], provider).get("enum") if isinstance(provider, dict) else None
            if isinstance(offered, list) and accounts:
                self.serving[tool.name] = [account for account in accounts if account.provider in offered]
        if accounts and self._tool_manager.get_tool("server_info") is not None:
            self.serving["server_info"] = list(accounts)  # it describes every account: a caller needs one

    async def list_tools(self) -> list[MCPTool]:
        """Every tool, or over HTTP those the caller's token has the scope for, each offering only the accounts
        the token may use (a tool none of them serves is left out)."""
        tools = await super().list_tools()
        token = get_access_token()
        if token is None:
            return tools
        usable = self.scopes.usable(token.scopes)
        shown: list[MCPTool] = []
        for tool in tools:
            if self.scopes.needed(tool.name) not in token.scopes:
                continue
            serving = self.serving.get(tool.name)
            if usable is None or serving is None:
                shown.append(tool)
                continue
            mine = [account for account in serving if account.name in usable]
            if len(mine) < len(serving) and mine:
                tool = tool.model_copy(update={"input_schema": narrowed_schema(tool.name, tool.input_schema, mine)})
            if mine or tool.name == "server_info":  # kept, so a caller with no account learns why from its call
                shown.append(tool)
        return shown

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        token = get_access_token()
        usable = self.scopes.usable(token.scopes) if token is not None else None
        over_http = context is not None and context.request_context.request is not None
        if token is not None and self.scopes.needed(name) not in token.scopes:
            # The HTTP gate answers 403 before this; kept so no path around it reaches a tool.
            result: CallToolResult | InputRequiredResult = self._failure(
                name[:80],
                PermissionDenied(
                    f"This sign-in was not granted {self.scopes.needed(name)}, which {_short(name, 80)} needs; "
                    "ask the user to sign in again granting it. Nothing was sent."
                ),
            )
        else:
            restricted = caller_accounts.set(usable)
            try:
                result = await self._call_tool(name, arguments, context, usable)
            finally:
                caller_accounts.reset(restricted)
        if over_http or token is not None:
            self._audit(token, name, arguments, result)
        return result

    def _audit(self, token: AccessToken | None, name: str, arguments: Mapping[str, Any], result: object) -> None:
        """One line per tool call over HTTP: who, what, where, how it ended; never a token or an argument's value."""
        outcome = "ok"
        contact_id: Any = None
        if isinstance(result, CallToolResult) and result.is_error:
            text = next((block.text for block in result.content if isinstance(block, TextContent)), "")
            found = _ERROR_CLASS.match(text)
            outcome = found.group(1) if found else "error"
        elif isinstance(result, CallToolResult) and name in WRITE_TOOLS:
            structured: dict[str, Any] = result.structured_content or {}
            contact: Any = structured.get("contact", structured)  # update_contact's answer nests it
            contact_id = cast(dict[str, Any], contact).get("id") if isinstance(contact, dict) else None
        if name in WRITE_TOOLS and contact_id is None:
            contact_id = arguments.get("contact_id")
        line = {
            "event": "tool_call",
            "subject": token.subject if token is not None else None,
            "client_id": token.client_id if token is not None else None,
            "tool": _short(name, 80),
            "provider": self._provider_of(name, arguments),
            "outcome": outcome,
        }
        if self.accounts:  # with an accounts file: which account it used (or asked for)
            answered: Any = result.structured_content if isinstance(result, CallToolResult) else None
            used: Any = cast(dict[str, Any], answered).get("account") if isinstance(answered, dict) else None
            given: Any = arguments.get("account")
            line["account"] = _short(str(used or given), 80) if (used or given) is not None else None
        if name in WRITE_TOOLS:
            line["contact_id"] = None if contact_id is None else _short(str(contact_id), 200)
        audit_logger.info("%s", self.redactor.text(json.dumps(line, ensure_ascii=False)))

    def _provider_of(self, name: str, arguments: Mapping[str, Any]) -> str | None:
        """The provider a call went to: the one it named, else the tool's default; None for a tool without one."""
        given = arguments.get("provider")
        if isinstance(given, str):
            return _short(given, 40)
        account = arguments.get("account")
        if self.accounts and (account == ALL_ACCOUNTS or isinstance(account, list)):
            return None  # several accounts, maybe of several providers: each row of the answer names its own
        owners = self.accounts.get(str(account), frozenset[str]())
        if len(owners) == 1:  # a named account alone implies its provider
            return next(iter(owners))
        tool = self._tool_manager.get_tool(name)
        schema: Any = tool.parameters.get("properties", {}).get("provider", {}) if tool is not None else {}
        default: Any = cast(dict[str, Any], schema).get("default") if isinstance(schema, dict) else None
        return default if isinstance(default, str) else None

    async def _call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        context: Context[AppState, Any] | None,
        usable: frozenset[str] | None = None,
    ) -> CallToolResult | InputRequiredResult:
        if self._tool_manager.get_tool(name) is None:
            shown = self.redactor.text(name)  # whole, before it is cut for the message
            listed = ", ".join(tool.name for tool in self._tool_manager.list_tools())
            why = self.hidden.get(name)
            unknown = NotSupported(
                f"{name} is not served here: {why}; it offers: {listed}."
                if why
                else f"There is no tool {_short(shown, 80)!r} on this server; it offers: {listed}."
            )
            return self._failure(shown[:80], unknown)
        if self.redactor.found_in(arguments):
            return self._failure(name, _holding_secrets(self.redactor, arguments))
        tool = self._tool_manager.get_tool(name)
        if tool is not None and usable is not None:
            try:
                arguments = self._within(tool, arguments, usable)
            except ContactsError as exc:
                return self._failure(name, exc)
        if self.accounts and tool is not None and "account" in tool.parameters.get("properties", {}):
            try:
                arguments = settle_account(arguments, self.accounts)
            except ValidationFailed as exc:
                return self._failure(name, exc)
        reporting = wait_reporter.set(context.report_progress if context is not None else None)
        try:
            result = await super().call_tool(name, arguments, context)
        except ToolError as exc:
            error = classify(exc)
            if isinstance(error, InternalError) and not isinstance(exc.__cause__, InternalError):
                logger.error("tool %s crashed", name, exc_info=exc.__cause__ or exc)
            return self._failure(name, error)
        finally:
            wait_reporter.reset(reporting)
        if not isinstance(result, CallToolResult):
            return result
        if result.is_error or result.structured_content is None:
            return self._redacted(result)
        note_chars = len(SANDBOX_NOTE) + 1 if self.sandbox else 0
        model = _output_model(self._tool_manager.get_tool(name))
        structured = shape(result.structured_content)
        text = as_text(structured, model)
        if len(text) + note_chars > self.max_result_chars:
            structured = fit(structured, self.max_result_chars, extra_chars=note_chars, model=model)
            text = as_text(structured, model)
        if self.redactor.found_in(text):  # the last line, for what came in through neither door
            structured = self.redactor.value(structured)
            text = self.redactor.text(as_text(structured, model))
        if self.sandbox:
            text = f"{SANDBOX_NOTE}\n{text}"
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)

    def _redacted(self, result: CallToolResult) -> CallToolResult:
        """A result passed on as the tool made it, with every piece of a secret taken out of its text blocks."""
        content = [
            block.model_copy(update={"text": self.redactor.text(block.text)})
            if isinstance(block, TextContent)
            else block
            for block in result.content
        ]
        structured = None if result.structured_content is None else self.redactor.value(result.structured_content)
        return result.model_copy(update={"content": content, "structured_content": structured})

    def _within(self, tool: Tool, arguments: Mapping[str, Any], usable: frozenset[str]) -> dict[str, Any]:
        """The arguments of a call by a caller who may use only the accounts `usable`: its account (and provider)
        filled in when left out, so the call goes to one of them, never to another's default.

        Raises:
            PermissionDenied: If the caller may use none of the accounts that serve the tool (or the provider).
            ValidationFailed: If it names an account it may not use; the message lists only those it may.
        """
        serving = self.serving.get(tool.name)
        if serving is None:
            return dict(arguments)
        mine = [each for each in serving if each.name in usable]
        if not mine:
            raise PermissionDenied(
                f"This sign-in may use none of the accounts {tool.name} serves; ask the user to sign in again with "
                f"access to one (a scope such as {self.scopes.account('NAME')}, granted by the operator). Nothing "
                "was sent."
            )
        properties = tool.parameters.get("properties", {})
        account, provider = arguments.get("account"), arguments.get("provider")
        if account is None:
            if provider is not None and provider not in {each.provider for each in serving}:
                return dict(arguments)  # the tool's own validation refuses it, listing the providers
            pick = next((each for each in mine if provider is None or each.provider == provider), None)
            if pick is None:
                others = ", ".join(dict.fromkeys(each.provider for each in mine))
                raise PermissionDenied(
                    f"This sign-in may use no {provider} account for {tool.name}; use provider {others} (or leave "
                    "provider out). Nothing was sent."
                )
            filled = dict(arguments)
            if "provider" in properties:
                filled["provider"] = pick.provider
            if "account" in properties:
                filled["account"] = pick.name
            return filled
        if account == ALL_ACCOUNTS:
            return dict(arguments)  # the fan-out counts only the caller's (`caller_accounts`)
        names = list(dict.fromkeys(each.name for each in mine))
        given = cast(list[Any], account) if isinstance(account, list) else [account]
        if any(isinstance(name, str) and name not in names for name in given):
            either = '; or "*", or a list of them' if "anyOf" in properties.get("account", {}) else ""
            raise ValidationFailed(
                f"Invalid arguments: account must be one of: {', '.join(names)}{either}; nothing was sent."
            )
        return dict(arguments)

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[AppState, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        token = get_access_token()
        restricted = caller_accounts.set(self.scopes.usable(token.scopes) if token is not None else None)
        try:
            contents = await super().read_resource(uri, context)
        finally:
            caller_accounts.reset(restricted)
        if isinstance(contents, InputRequiredResult):
            return contents
        return [
            replace(read, content=self.redactor.text(read.content)) if isinstance(read.content, str) else read
            for read in contents
        ]

    def _failure(self, name: str, error: ContactsError) -> CallToolResult:
        logger.info("tool %s failed: %s %s (%s)", name, error.kind, error.request or "", error.status or "-")
        text = self.redactor.text(error.render())
        if self.sandbox:
            text = f"{text}\n({SANDBOX_NOTE})"
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def budget_specs(settings: Settings, providers: Sequence[type[Provider]]) -> dict[str, BudgetSpec]:
    """The budgets of `providers`: the vendors' limits, or the settings' overrides.

    Raises:
        ConfigurationError: If an override names a budget that does not exist.
    """
    specs: dict[str, BudgetSpec] = {}
    for provider in providers:
        account = fingerprint(provider.account(settings))
        for name, rates in provider.default_budgets.items():
            override = settings.rate_limits.get(name)
            # A vendor default follows the upstream's advertised limit both ways; the user's own rule
            # is a ceiling (they may be reserving part of a shared key).
            specs[name] = BudgetSpec(
                rates=rates if override is None else override, account=account, may_rise=override is None
            )
    check_overrides(specs, settings.rate_limits)  # at build time, so a typo stops the server at start
    return specs


def account_budget_specs(
    settings: Settings, providers: Sequence[type[Provider]], accounts: Sequence[Account]
) -> dict[str, dict[str, BudgetSpec]]:
    """The budgets of `accounts`, by the fingerprint of whom the upstream counts them against.

    Accounts on one key (and scope) share one set of budgets, the first such account's limits; two keys never
    share. The environment's overrides (`CONTACTS_MCP_RATE_LIMITS`) must name budgets of `providers`.

    Raises:
        ConfigurationError: If an environment override names a budget that does not exist.
    """
    groups: dict[str, dict[str, BudgetSpec]] = {}
    for account in accounts:
        limits = account.apply(settings).rate_limits
        group = groups.setdefault(account.fingerprint, {})
        for name, rates in PROVIDERS[account.provider].default_budgets.items():
            if name in group:
                continue
            override = limits.get(name)
            group[name] = BudgetSpec(
                rates=rates if override is None else override, account=account.fingerprint, may_rise=override is None
            )
    known = {name: None for provider in providers for name in provider.default_budgets}
    check_overrides(known, settings.rate_limits)
    return groups


def _clock_given(clock: Callable[[], datetime] | None) -> dict[str, Any]:
    """`AppState`'s clock argument when one is given (else its own default, the system clock)."""
    return {"clock": clock} if clock is not None else {}


def _lifespan(
    settings: Settings,
    providers: Sequence[type[Provider]],
    transport: TransportFactory | None,
    clock: Callable[[], datetime] | None,
    *,
    sandbox: bool = False,
    accounts: Sequence[Account] | None = None,
) -> SharedState:
    if accounts is not None:
        return _accounts_lifespan(settings, providers, accounts, transport, clock, sandbox=sandbox)
    specs = budget_specs(settings, providers)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None

    @asynccontextmanager
    async def open_state() -> AsyncGenerator[AppState]:
        async with AsyncExitStack() as stack:
            budgets = await stack.enter_async_context(open_budgets(specs, redis_url=redis_url))
            opened: dict[str, Provider] = {}
            for provider in providers:
                instance = provider.from_settings(
                    settings, budgets=budgets, transport=transport and transport(), clock=clock
                )
                stack.push_async_callback(instance.aclose)
                opened[provider.name] = instance
            cometly = opened.get(Cometly.name)
            if isinstance(cometly, Cometly):
                index = await stack.enter_async_context(
                    open_index(settings, cometly, account=fingerprint(Cometly.account(settings)), sandbox=sandbox)
                )
                cometly.attach_index(index)
            yield AppState(
                providers=opened,
                budgets=budgets,
                max_result_chars=settings.max_result_tokens * CHARS_PER_TOKEN,
                **_clock_given(clock),
            )

    return SharedState(open_state)


def _accounts_lifespan(
    settings: Settings,
    providers: Sequence[type[Provider]],
    accounts: Sequence[Account],
    transport: TransportFactory | None,
    clock: Callable[[], datetime] | None,
    *,
    sandbox: bool,
) -> SharedState:
    """The lifespan of a server with named accounts: one provider instance, index and budget set per account.

    Instances are opened in the order of `accounts`; `AppState.providers` holds each provider's first
    account (what a call naming only `provider` reaches), `AppState.accounts` every account by name.
    """
    groups = account_budget_specs(settings, providers, accounts)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None

    @asynccontextmanager
    async def open_state() -> AsyncGenerator[AppState]:
        async with AsyncExitStack() as stack:
            opened_budgets: dict[str, Budgets] = {}
            every: dict[str, Budget] = {}
            for key, specs in groups.items():
                budgets = await stack.enter_async_context(open_budgets(specs, redis_url=redis_url))
                opened_budgets[key] = budgets
                every |= {f"{key}/{budget.name}": budget for budget in budgets}
            by_name: dict[tuple[str, str], Provider] = {}
            own_budgets: dict[tuple[str, str], Budgets] = {}
            for account in accounts:
                cls = PROVIDERS[account.provider]
                applied = account.apply(settings)
                budgets = opened_budgets[account.fingerprint]
                instance = cls.from_settings(applied, budgets=budgets, transport=transport and transport(), clock=clock)
                stack.push_async_callback(instance.aclose)
                if isinstance(instance, Cometly):
                    index = await stack.enter_async_context(
                        open_index(applied, instance, account=account.fingerprint, sandbox=sandbox)
                    )
                    instance.attach_index(index)
                by_name[account.provider, account.name] = instance
                own_budgets[account.provider, account.name] = budgets
            first: dict[str, Provider] = {}
            for instance in by_name.values():
                first.setdefault(instance.name, instance)
            yield AppState(
                providers=first,
                budgets=Budgets(every),
                max_result_chars=settings.max_result_tokens * CHARS_PER_TOKEN,
                accounts=by_name,
                account_budgets=own_budgets,
                **_clock_given(clock),
            )

    return SharedState(open_state)


def _hidden_tools(settings: Settings) -> dict[str, str]:
    """Why each write tool is left out, said when it is called anyway."""
    hidden: dict[str, str] = {}
    for tool in WRITE_TOOLS:
        if settings.read_only:
            hidden[tool] = (
                "this server runs read-only (CONTACTS_MCP_READ_ONLY), so it changes no contact; tell the user the "
                "change must be made in the provider itself or by an operator who turns read-only off"
            )
        elif settings.tools is not None and tool not in settings.tools:
            hidden[tool] = "the operator's allow-list (CONTACTS_MCP_TOOLS) leaves it out; tell the user"
    return hidden


def build_server(
    settings: Settings,
    *,
    transport: TransportFactory | None = None,
    sandbox: bool = False,
    providers: Sequence[type[Provider]] | None = None,
    clock: Callable[[], datetime] | None = None,
    accounts: Sequence[Account] | None = None,
) -> ContactsServer:
    """The MCP server for `settings`: tools for every configured provider.

    Args:
        settings: The loaded settings.
        transport: Makes the HTTP transport of each provider's client (the sandbox, tests); default: network.
        sandbox: Mark every result as sandbox data.
        providers: Serve these instead of the configured ones (to describe the tools without credentials).
        clock: The current moment (aware) that date words are resolved against; default: the system clock.
        accounts: Serve these named accounts; default: the environment's and `CONTACTS_MCP_ACCOUNTS_FILE`'s
            when that is set (`configured_accounts`), else one account per configured provider.

    Raises:
        ConfigurationError: If no provider is configured, a budget override names an unknown budget, or the
            accounts file has a mistake.
    """
    accounts = configured_accounts(settings) if accounts is None else accounts
    if accounts is not None:
        settings = with_accounts(settings, accounts)
        if providers is None:
            providers = [
                provider for provider in PROVIDERS.values() if any(a.provider == provider.name for a in accounts)
            ]
    providers = configured_providers(settings) if providers is None else providers
    if not providers:
        raise ConfigurationError(missing_provider_message())
    default = settings.default_provider
    if default is not None:
        if default not in {provider.name for provider in providers}:
            raise ConfigurationError(
                f"CONTACTS_MCP_DEFAULT_PROVIDER={default} is not a configured provider; "
                f"configured: {', '.join(provider.name for provider in providers)}"
            )
        providers = sorted(providers, key=lambda provider: provider.name != default)
    if accounts is not None:
        order = [provider.name for provider in providers]
        accounts = sorted(
            (account for account in accounts if account.provider in order), key=lambda a: order.index(a.provider)
        )
    server = ContactsServer(
        name="contacts-mcp",
        version=VERSION,
        instructions=INSTRUCTIONS,
        state=_lifespan(settings, providers, transport, clock, sandbox=sandbox, accounts=accounts),
        redactor=Redactor(secrets_of(settings)),
        sandbox=sandbox,
        max_result_chars=settings.max_result_tokens * CHARS_PER_TOKEN,
        hidden=_hidden_tools(settings),
        scopes=ToolScopes(
            read=settings.oauth_read_scope,
            write=settings.oauth_write_scope,
            account_prefix=settings.oauth_account_scope_prefix,
            accounts=tuple(dict.fromkeys(account.name for account in accounts or ())),
            static_accounts=static_token_accounts(settings, accounts),
        ),
        accounts={
            name: frozenset(account.provider for account in accounts or () if account.name == name)
            for name in {account.name for account in accounts or ()}
        },
    )
    register_contact_tools(
        server, providers, read_only=settings.read_only, only=settings.tools, accounts=accounts or ()
    )
    register_server_tools(
        server,
        providers,
        state=server.state,
        about=About(
            version=VERSION,
            read_only=settings.read_only,
            sandbox=sandbox,
            max_result_tokens=settings.max_result_tokens,
            shared_budgets="redis" if settings.redis_url else "memory",
        ),
        redact=server.redactor.text,
        only=settings.tools,
        accounts=accounts or (),
    )
    server.bind_accounts(accounts or ())
    return server


def static_token_accounts(settings: Settings, accounts: Sequence[Account] | None) -> tuple[str, ...] | None:
    """The accounts the static token may use (`CONTACTS_MCP_HTTP_TOKEN_ACCOUNTS`); None: every one.

    Raises:
        ConfigurationError: If the setting names an account there is not, or there is no token or accounts file.
    """
    given = settings.http_token_accounts
    if given is None or given == [ALL_ACCOUNTS]:
        return None
    if settings.http_token is None:
        raise ConfigurationError(
            "CONTACTS_MCP_HTTP_TOKEN_ACCOUNTS names the accounts the static token may use, but "
            "CONTACTS_MCP_HTTP_TOKEN is not set; set both, or remove CONTACTS_MCP_HTTP_TOKEN_ACCOUNTS"
        )
    names = list(dict.fromkeys(account.name for account in accounts or ()))
    if not names:
        raise ConfigurationError(
            "CONTACTS_MCP_HTTP_TOKEN_ACCOUNTS names accounts of an accounts file, but CONTACTS_MCP_ACCOUNTS_FILE is "
            "not set; set it, or remove CONTACTS_MCP_HTTP_TOKEN_ACCOUNTS"
        )
    unknown = [name for name in given if name not in names]
    if unknown:
        shown = ", ".join(name[:40] for name in unknown[:5])
        raise ConfigurationError(
            f"CONTACTS_MCP_HTTP_TOKEN_ACCOUNTS names accounts there are not: {shown}; the accounts are: "
            f"{', '.join(names)} (or * for every one)"
        )
    return tuple(dict.fromkeys(given))
