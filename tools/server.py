"""Tools about the server itself: which custom fields can be filtered, and what the server is and has left.

`describe_custom_fields` (also the resource `contacts://custom-fields`) tells the model the labels
it may use in filter_by_custom_field; `server_info` tells it the providers, their timezones, and
how many requests each rate budget has left right now. Like `tools.contacts`, this module must not
use `from __future__ import annotations`: the SDK reads the signatures at registration.
"""

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.mcpserver.resources import FunctionResource
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from ..server.accounts import Account
from ..server.budgets import Budget
from ..server.budgets.base import limits_text
from ..server.errors import ContactsError
from ..server.providers.base import Provider
from ..server.providers.cometly import Cometly
from ..server.state import AppState, SharedState
from .contacts import (
    READ,
    SERVER_TOOLS,
    ToolContext,
    answered_by,
    caller_accounts,
    provider_argument,
    source,
    with_account_argument,
)
from .models import CustomFields, iso_utc

logger = logging.getLogger(__name__)

CUSTOM_FIELDS_URI = "contacts://custom-fields"
ACCOUNTS_URI = "contacts://accounts"
LOCAL_READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
"""server_info reads only the server's own state: no upstream is asked."""


class BudgetLeft(BaseModel):
    """One rate budget and what is left of it now."""

    name: str = Field(description="provider.tool, e.g. cometly.list_contacts.")
    limits: str = Field(
        description="The upstream's limit, shared by everyone on the same API key: the vendor's own figure as its "
        "rate-limit headers last said, or the operator's setting."
    )
    remaining: int | None = Field(
        default=None, description="Requests that can be sent right now without waiting; left out when unknown."
    )


class ProviderInfo(BaseModel):
    """One configured provider."""

    name: str = Field(description="The value of the tools' `provider` argument.")
    tools: list[str] = Field(
        default_factory=list[str], description="The tools that serve this provider on this server."
    )
    timezone: str | None = Field(
        default=None, description="The timezone its date ranges and date words are read in (list providers)."
    )


class AccountInfo(BaseModel):
    """One named account (an accounts file's, or the environment's `default`)."""

    name: str = Field(description="The value of the tools' `account` argument.")
    provider: str = Field(description="Its provider.")
    description: str = Field(description="Whose account it is.")
    budgets: list[BudgetLeft] = Field(
        description="Its rate budgets and what is left; accounts on one API key share them."
    )


class IndexInfo(BaseModel):
    """Cometly's contact index, which find_contact searches: how much of the Space it holds."""

    location: str = Field(description="Where it is: a file, or a database URL without its password.")
    contacts: int = Field(description="How many contacts it holds.")
    backfilled: bool = Field(description="Whether it has read the Space's whole history (false: still building).")
    last_sync: str | None = Field(default=None, description="When the sync last finished a range (ISO 8601 UTC).")
    dated: dict[str, int] = Field(
        description="Contacts by how precisely their sign-up is known: second, day, month, coarser, unknown."
    )


class ServerInfo(BaseModel):
    """What this server is, what it serves, and how much of each rate budget is left."""

    name: str
    version: str
    default_provider: str = Field(description="The provider tools use when `provider` is left out.")
    providers: list[ProviderInfo]
    read_only: bool = Field(description="Whether tools that change data (create_contact) are switched off.")
    sandbox: bool = Field(description="Whether the data is the built-in sandbox's generated contacts.")
    max_result_tokens: int = Field(description="The ceiling of one result, in tokens (about 4 characters each).")
    shared_budgets: Literal["memory", "redis"] = Field(
        description="Where budgets are counted: this process only, or Redis, shared by every process on the key."
    )
    budgets: list[BudgetLeft]
    index: IndexInfo | None = Field(
        default=None, description="Cometly's contact index; absent when it is off or Cometly is not configured."
    )
    accounts: SkipJsonSchema[list[AccountInfo] | None] = Field(
        default=None,
        description="The named accounts, with their own budgets; present only when accounts are configured.",
    )
    account_access: SkipJsonSchema[str | None] = Field(
        default=None, description="Present when this caller may use only some of the accounts: which, and why."
    )


@dataclass(frozen=True)
class About:
    """What server_info reports that is fixed at start."""

    version: str
    read_only: bool
    sandbox: bool
    max_result_tokens: int
    shared_budgets: Literal["memory", "redis"]


_DESCRIPTIONS = {
    "describe_custom_fields": (
        "Describe custom fields",
        "List the custom fields of a provider's account, the same way for every provider: each field's label "
        "(the name results key custom fields by), `slot` (the name to pass: Cometly's profile_field_N, "
        "HighLevel's field id), its type (text, number, date, or HighLevel's picklist, checkbox, file, ...) and, "
        "where known, `values` to match exactly: a picklist's options, or a text field's values in use among "
        "the contacts sampled (e.g. Lead Source: Facebook Ads, Google Ads, ...), listed only for fields with at "
        "most 20 distinct values set on at least 3 times as many contacts, so never emails, names or phones. "
        "Cometly: the fields filter_by_custom_field can filter on, and the operators each type takes; call it "
        "before filter_by_custom_field when unsure what a field is called or which value to match, and "
        "conditions may then name the label. HighLevel: the location's contact fields; they cannot be filtered "
        "here. Clemta contacts have no custom fields (an empty list, with a note). Read from the provider and "
        "reused for a while; pass refresh=true after a field was renamed.",
    ),
    "server_info": (
        "Server info",
        "Describe this server: the configured providers and the tools each serves, the timezone date ranges "
        "are read in, whether it is read-only or sandbox data, the result ceiling, and how many requests each "
        "rate budget has left right now (budgets are shared by everyone on the same API key). Use it to plan "
        "bulk reads or when a call was rate limited.",
    ),
}
assert set(_DESCRIPTIONS) == set(SERVER_TOOLS)


def register_server_tools(
    server: MCPServer[AppState],
    providers: Sequence[type[Provider]],
    *,
    state: SharedState,
    about: About,
    redact: Callable[[str], str],
    only: Sequence[str] | None = None,
    accounts: Sequence[Account] = (),
) -> None:
    """Add describe_custom_fields (and its resource) and server_info, unless the allow-list leaves them out.

    `redact` takes every secret out of the text of a failed resource read, as the server does for tools.
    With `accounts` (an accounts file's), describe_custom_fields takes an `account` argument when two or
    more serve it, server_info lists them, and so does the resource `contacts://accounts`.
    """
    names = [provider.name for provider in providers]
    if only is None or "describe_custom_fields" in only:
        fn = _describe_custom_fields(names[0])
        fn.__annotations__["provider"] = provider_argument("describe_custom_fields", names)
        with_account_argument(
            fn, "describe_custom_fields", [account for account in accounts if account.provider in names]
        )
        title, description = _DESCRIPTIONS["describe_custom_fields"]
        server.add_tool(fn, name="describe_custom_fields", title=title, description=description, annotations=READ)
        server.add_resource(_custom_fields_resource(state, names, redact))
    if only is None or "server_info" in only:
        title, description = _DESCRIPTIONS["server_info"]
        info = _server_info(providers, about, only, accounts)
        server.add_tool(info, name="server_info", title=title, description=description, annotations=LOCAL_READ)
    if accounts:
        server.add_resource(_accounts_resource(state, accounts))


def _describe_custom_fields(default: str) -> Any:
    async def describe_custom_fields(
        ctx: ToolContext,
        refresh: Annotated[
            bool, Field(description="Read the labels from the provider again instead of reusing them.")
        ] = False,
        provider: str = default,
        account: str | None = None,
    ) -> CustomFields:
        upstream, named = source(ctx, provider, account)
        return answered_by(await upstream.custom_fields(refresh=refresh), named)

    return describe_custom_fields


def _custom_fields_resource(state: SharedState, names: Sequence[str], redact: Callable[[str], str]) -> FunctionResource:
    async def custom_fields() -> str:
        try:
            async with state.hold() as app:
                found = [await upstream.custom_fields() for upstream in _first_usable(app, names)]
        except ContactsError as exc:
            raise ResourceError(redact(exc.render())) from None
        return "[" + ",".join(fields.model_dump_json(exclude_none=True) for fields in found) + "]"

    return FunctionResource.from_function(
        custom_fields,
        uri=CUSTOM_FIELDS_URI,
        name="custom_fields",
        title="Custom fields",
        description="Each configured provider's custom fields: label, slot, type, values to match and operators "
        "(what describe_custom_fields returns), as a JSON array.",
        mime_type="application/json",
    )


def _first_usable(app: AppState, names: Sequence[str]) -> list[Provider]:
    """Each provider of `names`'s first account the caller may use (`caller_accounts`); a provider without one
    is left out. Every caller may use every account without an accounts file or account scopes."""
    usable = caller_accounts.get()
    if usable is None or not app.accounts:
        return [app.provider(name) for name in names]
    first: dict[str, Provider] = {}
    for (owner, account), instance in app.accounts.items():
        if owner in names and account in usable:
            first.setdefault(owner, instance)
    return [first[name] for name in names if name in first]


def _usable(accounts: Sequence[Account]) -> list[Account]:
    """The accounts of `accounts` the caller may use (`caller_accounts`)."""
    usable = caller_accounts.get()
    return [account for account in accounts if usable is None or account.name in usable]


async def _budgets_left(budgets: Iterable[Budget]) -> list[BudgetLeft]:
    """Each budget's limits, as the upstream's headers have moved them, and what is left of it now."""
    left: list[BudgetLeft] = []
    for budget in budgets:
        rates = budget.rates
        try:
            remaining: int | None = await budget.remaining()
            rates = await budget.current_rates()  # as the upstream's headers have moved them
        except ContactsError:  # the shared store is down: the calls themselves will say so
            logger.info("could not read budget %s", budget.name, exc_info=True)
            remaining = None
        left.append(BudgetLeft(name=budget.name, limits=limits_text(rates), remaining=remaining))
    return left


async def _accounts_info(app: AppState, accounts: Sequence[Account]) -> list[AccountInfo]:
    return [
        AccountInfo(
            name=account.name,
            provider=account.provider,
            description=account.description,
            budgets=await _budgets_left(app.account_budgets[account.provider, account.name])
            if (account.provider, account.name) in app.account_budgets
            else [],
        )
        for account in accounts
    ]


def _accounts_resource(state: SharedState, accounts: Sequence[Account]) -> FunctionResource:
    async def listed() -> str:
        async with state.hold() as app:
            found = await _accounts_info(app, _usable(accounts))
        return "[" + ",".join(info.model_dump_json(exclude_none=True) for info in found) + "]"

    return FunctionResource.from_function(
        listed,
        uri=ACCOUNTS_URI,
        name="accounts",
        title="Accounts",
        description="The named accounts the tools' `account` argument takes: name, provider, description and "
        "their rate budgets with what is left (what server_info's `accounts` lists), as a JSON array.",
        mime_type="application/json",
    )


def _server_info(
    providers: Sequence[type[Provider]], about: About, only: Sequence[str] | None, accounts: Sequence[Account] = ()
) -> Any:
    def served(provider: type[Provider]) -> list[str]:
        tools = [tool for tool in provider.capabilities if only is None or tool in only]
        if about.read_only:
            tools = [tool for tool in tools if tool != "create_contact"]
        return sorted(tools)

    async def server_info(ctx: ToolContext) -> ServerInfo:
        app = ctx.request_context.lifespan_context
        restricted = caller_accounts.get() is not None and bool(accounts)
        reachable = _first_usable(app, [provider.name for provider in providers])
        by_name = {upstream.name: upstream for upstream in reachable}
        shown = [provider for provider in providers if provider.name in by_name]
        mine = _usable(accounts)
        if restricted:  # only the budgets of the accounts this caller may use, each set once
            sets = [app.account_budgets.get((account.provider, account.name)) for account in mine]
            budgets = await _budgets_left(
                {id(budget): budget for found in sets if found is not None for budget in found}.values()
            )
        else:
            budgets = await _budgets_left(app.budgets)
        cometly = by_name.get("cometly")
        return ServerInfo(
            name="contacts-mcp",
            version=about.version,
            default_provider=(shown or providers)[0].name,
            providers=[
                ProviderInfo(
                    name=provider.name,
                    tools=served(provider),
                    timezone=by_name[provider.name].zone.key if "list_contacts" in provider.capabilities else None,
                )
                for provider in shown
            ],
            read_only=about.read_only,
            sandbox=about.sandbox,
            max_result_tokens=about.max_result_tokens,
            shared_budgets=about.shared_budgets,
            budgets=budgets,
            index=await _index_info(cometly) if isinstance(cometly, Cometly) else None,
            accounts=await _accounts_info(app, mine) if accounts else None,
            account_access=f"This sign-in may use {len(mine)} of the server's {len(accounts)} accounts, those "
            "listed in accounts; another needs the operator to grant it."
            if restricted
            else None,
        )

    return server_info


async def _index_info(cometly: Cometly) -> IndexInfo | None:
    index = cometly.index
    if index is None:
        return None
    try:
        status = await index.status()
        backfilled = await index.backfilled_at() is not None
    except ContactsError:  # the index's database is down: find_contact will say so
        logger.info("could not read the contact index's status", exc_info=True)
        return None
    return IndexInfo(
        location=index.location,
        contacts=status.contacts,
        backfilled=backfilled,
        last_sync=iso_utc(status.last_sync.timestamp()) if status.last_sync else None,
        dated=dict(status.dated),
    )
