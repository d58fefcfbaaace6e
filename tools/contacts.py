"""The contact tools. Each is thin: arguments in, one provider call, a model out.

The tools are registered per server because the `provider` argument is an enum of the providers
configured on it. This module must not use `from __future__ import annotations`: the SDK reads the
signatures at registration, and the `provider` annotation is a local of `register_contact_tools`.
"""

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from copy import deepcopy
from typing import Annotated, Any, Literal, TypeVar

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, JsonValue, ValidationError
from pydantic_core import PydanticCustomError

from ..server.accounts import Account
from ..server.errors import (
    ConfigurationError,
    ContactsError,
    InternalError,
    NotSupported,
    PermissionDenied,
    ValidationFailed,
)
from ..server.paging import MAX_RESULTS, Progress, list_query, read_contacts, sort_of, sorted_query
from ..server.providers import PROVIDERS
from ..server.providers.base import ID_SOURCES, Capability, Provider
from ..server.state import AppState
from .dates import DATE_FORMATS_HELP
from .models import (
    MAX_JOURNEY_ITEMS,
    AccountCount,
    Address,
    Contact,
    ContactFields,
    ContactMatches,
    ContactPage,
    FanOut,
    FilterCondition,
    GetContactQuery,
    Lookup,
    NewContact,
    Scalar,
    ShortText,
)
from .updates import Collection, ContactChanges, ContactUpdate, CustomValue, UpdateFields, Values

ToolContext = Context[AppState, Any]

logger = logging.getLogger(__name__)

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
CREATE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
UPDATE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)
WRITE_TOOLS = ("create_contact", "update_contact")
"""The tools that change upstream data: left out in read-only mode."""


def _id_text(value: Any) -> Any:
    # Models often send a numeric id as a JSON number; the schema says string, and both mean the same.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


ContactId = Annotated[
    str,
    BeforeValidator(_id_text),
    Field(
        min_length=1,
        max_length=200,
        description=f"The contact's id, e.g. 4821 for Cometly; {ID_SOURCES}.",
    ),
]
StartDate = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=80,
        description=f"Start of the creation-date range, in the account's timezone: {DATE_FORMATS_HELP}. "
        "A date starts at 00:00:00; a word or month starts on its first day; a range ('2026-01..2026-03') gives "
        "both ends, with no end_date. Leave it out for all history "
        "(from 2000-01-01 to end_date, or to now): for questions about a custom field rather than sign-up.",
    ),
]
EndDate = Annotated[
    str | None,
    Field(
        max_length=80,
        description="End of the range, in the same forms; a date ends at 23:59:59, a word or month on its last "
        "day, a range where it ends. Leave it out for the end of what start_date names ('last week' alone is "
        "last week; a date alone is that day; a date and time alone runs until now), or, without start_date, for now.",
    ),
]
SortBy = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=200,
        description="Sort the contacts by a custom field, named by its label (any case) or slot profile_field_N "
        "(numbers as numbers, dates as dates, text ignoring case and accents), or by the contact's own name, "
        "email or created_at (a custom field with one of those labels goes by its slot; Cometly's created_at "
        "sorts by the created_between window's end, then its start; an exact created_at is both). "
        "Contacts without a value come last. The server sorts what it read: one page, or every contact "
        "max_results read; `sorted.covers` says which. Leave it out for newest first.",
    ),
]
Order = Annotated[
    Literal["asc", "desc"] | None,
    Field(description="asc or desc; default desc for created_at (newest first), asc for everything else."),
]
PerPage = Annotated[int, Field(ge=1, le=5000, description="Contacts per page, 1-5000.")]
Cursor = Annotated[
    str | None,
    Field(max_length=2000, description="next_cursor of the previous page; omit for the first page."),
]
Texts = Annotated[list[str], Field(max_length=25)]
MaxResults = Annotated[
    int | None,
    Field(
        ge=1,
        le=MAX_RESULTS,
        description="Read pages until this many contacts (at most 100,000), instead of one page: the server "
        "walks the cursor itself, 5,000 per request, reporting progress. The result still stops at the size "
        "ceiling with a next_cursor.",
    ),
]
CountOnly = Annotated[
    bool,
    Field(
        description="Return only how many contacts match, as `total` (counted up to max_results or 100,000; "
        "`total_at_least` when it stopped there), no contacts: for 'how many signed up last month?'."
    ),
]
MAX_MATCHES = 25
"""The most matches find_contact shows: a short list to choose from, never a flood."""
SERVER_TOOLS = ("describe_custom_fields", "server_info")
"""The tools about the server itself (`tools.server`); named here so the allow-list knows them."""


def provider_argument(tool: str, names: Sequence[str]) -> Any:
    """The `provider` argument's annotation: a string enum of the providers that serve the tool.

    The tool functions declare `provider: str` for the type checker; registration swaps in this
    annotation, so the schema lists exactly the configured providers and validation enforces it.
    """

    listed = ", ".join(names)

    def configured(name: str) -> str:
        if name in names:
            return name
        if name in PROVIDERS:
            # A real provider that cannot do this (or is not set up here): not the caller's typo.
            raise PydanticCustomError(
                "not_supported",
                "{provider} does not offer {tool} on this server; {instead}, or use a provider that offers it: "
                "{names}.",
                {"provider": name, "tool": tool, "instead": PROVIDERS[name].instead_of(tool), "names": listed},
            )
        raise ValueError(f"provider must be one of: {listed}")

    return Annotated[
        str,
        Field(description=provider_description(tool, names), json_schema_extra={"enum": list(names)}),
        AfterValidator(configured),
    ]


def provider_description(tool: str, names: Sequence[str]) -> str:
    """What the `provider` argument of `tool` says, served by `names` (the first is the default)."""
    return f"Which contact API to use: {' or '.join(names)}. Left out, {names[0]}" + (
        f" (the first configured provider that offers {tool})." if len(names) > 1 else "."
    )


def account_description(accounts: Sequence[Account], *, fan_out: bool) -> str:
    """What the `account` argument says: each of `accounts` described for the model, the first the default."""
    listed = "; ".join(f"{account.name}: {account.description} ({account.provider})" for account in accounts)
    text = (
        f"Which named account to use: {listed}. Left out, {accounts[0].name}; given alone, it implies its "
        "provider (a `provider` given too must be that account's)."
    )
    if fan_out:
        text += (
            ' With count_only, "*" (every account) or a list of names counts each account apart: one row per '
            "account in `accounts`, for questions across accounts ('which account got the most leads last week?')."
        )
    return text


def account_argument(tool: str, accounts: Sequence[Account]) -> Any:
    """The `account` argument's annotation: a string enum of the named accounts whose provider offers `tool`,
    each described so a model can pick (`acme-hl: Acme Dental's HighLevel location (highlevel)`)."""
    names = list(dict.fromkeys(account.name for account in accounts))  # `default` is each provider's

    def known(name: str) -> str:
        if name in names:
            return name
        raise ValueError(f"account must be one of: {', '.join(names)}")

    return Annotated[
        str,
        Field(
            description=account_description(accounts, fan_out=False), json_schema_extra={"enum": list[JsonValue](names)}
        ),
        AfterValidator(known),
    ]


FAN_OUT_TOOLS = ("list_contacts", "filter_by_custom_field")
"""The tools whose count_only takes `account: "*"` or a list: one row per account."""
ALL_ACCOUNTS = "*"
MAX_FAN_OUT = 50
"""The most account names one fan-out call may list."""


def fan_out_argument(tool: str, accounts: Sequence[Account]) -> Any:
    """The `account` annotation of a fan-out tool: one name, `"*"` (every account) or a list of names."""
    names = list(dict.fromkeys(account.name for account in accounts))

    def known(value: str | list[str]) -> str | list[str]:
        given = [value] if isinstance(value, str) else value
        unknown = [name for name in given if name not in names and not (name == ALL_ACCOUNTS and given == [name])]
        if unknown or not given or len(given) > MAX_FAN_OUT:
            raise ValueError(f'account must be one of: {", ".join(names)}; or "*", or a list of them')
        return value

    return Annotated[
        str | list[str],
        Field(description=account_description(accounts, fan_out=True), json_schema_extra=_fan_out_schema(names)),
        AfterValidator(known),
    ]


def _fan_out_alternatives(names: Sequence[str]) -> list[JsonValue]:
    """The `anyOf` of a fan-out `account`: one of `names` or `"*"`, or a list of `names`."""
    return [
        {"type": "string", "enum": [*names, ALL_ACCOUNTS]},
        {
            "type": "array",
            "items": {"type": "string", "enum": list[JsonValue](names)},
            "minItems": 1,
            "maxItems": MAX_FAN_OUT,
        },
    ]


def _fan_out_schema(names: list[str]) -> Callable[[dict[str, Any]], None]:
    """Pydantic's `str | list[str]` schema with each branch's names (and `"*"`) as its enum."""
    alternatives = _fan_out_alternatives(names)

    def edit(schema: dict[str, Any]) -> None:
        schema["anyOf"] = alternatives

    return edit


caller_accounts: ContextVar[frozenset[str] | None] = ContextVar("caller_accounts", default=None)
"""The named accounts the caller of this request may use (its token's account scopes); None: every one.

Set by the server for each call and resource read; the tools read it where they pick an account (`source`,
the fan-out), so no path reaches an account the caller may not use.
"""


def narrowed_schema(tool: str, schema: Mapping[str, Any], accounts: Sequence[Account]) -> dict[str, Any]:
    """`schema`, a tool's input schema, offering only `accounts` (those of its accounts a caller may use, in
    order): its `account` and `provider` enums, defaults and descriptions name no other."""
    narrowed = deepcopy(dict(schema))
    properties: dict[str, Any] = narrowed.get("properties", {})
    providers = list(dict.fromkeys(account.provider for account in accounts))
    names = list(dict.fromkeys(account.name for account in accounts))
    if isinstance(properties.get("provider"), dict):
        properties["provider"].update(
            enum=providers, default=providers[0], description=provider_description(tool, providers)
        )
    if isinstance(properties.get("account"), dict):
        account: dict[str, Any] = properties["account"]
        account.update(default=names[0], description=account_description(accounts, fan_out=tool in FAN_OUT_TOOLS))
        if "anyOf" in account:
            account["anyOf"] = _fan_out_alternatives(names)
        else:
            account["enum"] = names
    return narrowed


def with_account_argument(fn: Callable[..., Any], tool: str, accounts: Sequence[Account]) -> None:
    """Give `fn` its `account` argument when more than one of `accounts` serves `tool`, else hide it.

    Hidden, the argument is absent from the schema (a server with one account per provider lists the tools it
    always has) and the function gets None: the provider's only account.
    """
    signature = inspect.signature(fn)
    parameters = list(signature.parameters.values())
    if len(accounts) > 1:
        parameters = [
            parameter.replace(
                annotation=(fan_out_argument if tool in FAN_OUT_TOOLS else account_argument)(tool, accounts),
                default=accounts[0].name,
            )
            if parameter.name == "account"
            else parameter
            for parameter in parameters
        ]
    else:
        parameters = [parameter for parameter in parameters if parameter.name != "account"]
    setattr(fn, "__signature__", signature.replace(parameters=parameters))  # noqa: B010 - read by the SDK


def settle_account(arguments: Mapping[str, Any], accounts: Mapping[str, frozenset[str]]) -> dict[str, Any]:
    """The arguments of a call naming an `account`, with the provider it implies when `provider` is left out.

    Args:
        arguments: The call's arguments, as the client sent them.
        accounts: The providers each account name is an account of (`default` may be several's).

    Raises:
        ValidationFailed: If `provider` is given too and that account is not one of its.
    """
    account, provider = arguments.get("account"), arguments.get("provider")
    if not isinstance(account, str) or account not in accounts:
        return dict(arguments)  # none given, or one the tool's own validation refuses
    owners = accounts[account]
    if provider is None:
        return {**arguments, "provider": next(iter(owners))} if len(owners) == 1 else dict(arguments)
    if provider not in owners:
        raise ValidationFailed(
            f"Invalid arguments: account {account} is a {' and '.join(sorted(owners))} account, but provider is "
            f"{str(provider)[:40]!r}. Leave provider out (the account implies it) or name an account of that "
            "provider; nothing was sent."
        )
    return dict(arguments)


def source(ctx: ToolContext, provider: str, account: str | None) -> tuple[Provider, str | None]:
    """The provider instance a call goes to and the named account it is (None without an accounts file).

    `account` wins when it is one of `provider`'s (the server has made sure a named account agrees with a given
    provider); else the provider's first account.

    Raises:
        NotSupported: If `provider` is not configured on this server.
    """
    app = ctx.request_context.lifespan_context
    if not app.accounts:
        return app.provider(provider), None
    usable = caller_accounts.get()
    if account is not None and usable is not None and account not in usable:
        # The server fills in and checks a restricted caller's account before the tool runs; kept so no
        # path around that reaches an account the caller may not use.
        raise PermissionDenied(f"This sign-in may not use the account {account[:40]}; nothing was sent.")
    chosen = app.accounts.get((provider, account)) if account is not None else None
    if chosen is not None:
        return chosen, account
    for (owner, name), instance in app.accounts.items():
        if owner == provider and (usable is None or name in usable):
            return instance, name
    if usable is not None:
        raise PermissionDenied(f"This sign-in may use no {provider[:40]} account; nothing was sent.")
    return app.provider(provider), None


Result = TypeVar("Result", bound=BaseModel)


def answered_by(result: Result, account: str | None) -> Result:
    """`result` saying which named account answered; unchanged without an accounts file."""
    return result if account is None else result.model_copy(update={"account": account})


def register_contact_tools(
    server: MCPServer[AppState],
    providers: Sequence[type[Provider]],
    *,
    read_only: bool,
    only: Sequence[str] | None = None,
    accounts: Sequence[Account] = (),
) -> None:
    """Add the contact tools that at least one of `providers` serves.

    Args:
        server: The server to add them to.
        providers: The configured providers.
        read_only: Leave out the tools that change upstream data.
        only: Add only these tools (the operator's allow-list, `CONTACTS_MCP_TOOLS`).
        accounts: The named accounts (an accounts file's, `default` ones included); a tool two or more of them
            serve takes an `account` argument.

    Raises:
        ConfigurationError: If `only` names a tool that does not exist, or a write tool while `read_only`.
    """
    if only is not None:
        known = [*_DESCRIPTIONS, *SERVER_TOOLS]
        unknown = sorted(set(only) - set(known))
        if unknown:
            raise ConfigurationError(
                f"CONTACTS_MCP_TOOLS names unknown tools: {', '.join(unknown)}; known: {', '.join(known)}"
            )
        for tool in WRITE_TOOLS:
            if read_only and tool in only:
                raise ConfigurationError(
                    f"CONTACTS_MCP_TOOLS names {tool} but CONTACTS_MCP_READ_ONLY is true; remove one of them"
                )

    def serving(tool: Capability) -> list[str]:
        return [provider.name for provider in providers if tool in provider.capabilities]

    def add(tool: Capability, annotations: ToolAnnotations, build: Callable[[str], Callable[..., Any]]) -> None:
        names = serving(tool)
        if only is not None and tool not in only:
            return
        if not names:
            if only is not None:
                logger.warning("CONTACTS_MCP_TOOLS names %s, but no configured provider offers it", tool)
            return
        fn = build(names[0])
        fn.__annotations__["provider"] = provider_argument(tool, names)
        with_account_argument(fn, tool, [account for account in accounts if account.provider in names])
        title, description = _DESCRIPTIONS[tool]
        server.add_tool(fn, name=tool, title=title, description=description, annotations=annotations)

    add("get_contact", READ, _get_contact)
    add("list_contacts", READ, _list_contacts)
    add("filter_by_custom_field", READ, _filter_by_custom_field)
    add("find_contact", READ, _find_contact)
    if not read_only:
        add("create_contact", CREATE, _create_contact)
        add("update_contact", UPDATE, _update_contact)


def _get_contact(default: str) -> Callable[..., Any]:
    async def get_contact(
        ctx: ToolContext,
        contact_id: ContactId,
        include_comet_tokens: Annotated[bool, Field(description="Cometly: add the last 5 comet tokens.")] = False,
        include_events: Annotated[
            bool,
            Field(
                description="Cometly: add the ad journey: conversions and touchpoints with ad, ad set, campaign, "
                "account, and `journey`, their summary (first/last touch, conversions and amounts by name)."
            ),
        ] = False,
        include_direct_touchpoints: Annotated[
            bool, Field(description="Cometly: with include_events, also list direct (non-ad) touchpoints.")
        ] = False,
        include_browsing_hits: Annotated[
            bool, Field(description="Cometly: add up to 1,000 raw page views (its browsing session hits).")
        ] = False,
        use_custom_field_labels: Annotated[
            bool,
            Field(
                description="Key custom fields by name: Cometly's label (e.g. 'Customer Plan') instead of the slot, "
                "HighLevel's field name instead of its id."
            ),
        ] = True,
        limit: Annotated[
            int,
            Field(
                ge=1,
                le=MAX_JOURNEY_ITEMS,
                description="At most this many events and this many browsing hits, the newest; the result counts "
                "those left out.",
            ),
        ] = 20,
        exact_created_at: Annotated[
            bool,
            Field(
                description="Cometly: find the sign-up time to the second when only a window is known "
                "(created_between). Costs about 17 list requests of a budget of 15 a minute, so ask only when "
                "the exact time matters; if it stops with [rate_limited], call again later: it goes on from "
                "what it proved."
            ),
        ] = False,
        provider: str = default,
        account: str | None = None,
    ) -> Contact:
        query = GetContactQuery(
            contact_id=contact_id,
            include_comet_tokens=include_comet_tokens,
            include_events=include_events,
            include_direct_touchpoints=include_direct_touchpoints,
            include_browsing_hits=include_browsing_hits,
            use_custom_field_labels=use_custom_field_labels,
            exact_created_at=exact_created_at,
        )
        upstream, named = source(ctx, provider, account)
        contact = await upstream.get_contact(query)
        return answered_by(contact.limited(limit), named)

    return get_contact


def _list_contacts(default: str) -> Callable[..., Any]:
    async def list_contacts(
        ctx: ToolContext,
        start_date: StartDate = None,
        end_date: EndDate = None,
        per_page: PerPage = 50,
        cursor: Cursor = None,
        max_results: MaxResults = None,
        count_only: CountOnly = False,
        sort_by: SortBy = None,
        order: Order = None,
        include_all_emails: Annotated[bool, Field(description="List every email, not just the primary one.")] = False,
        include_comet_tokens: Annotated[bool, Field(description="Add the last 5 comet tokens.")] = False,
        include_custom_fields: Annotated[bool, Field(description="Add the custom fields that have a value.")] = False,
        use_custom_field_labels: Annotated[
            bool, Field(description="Key custom fields by their label instead of slot.")
        ] = True,
        provider: str = default,
        account: str | list[str] | None = None,
    ) -> ContactPage:
        return await _read_range(
            ctx,
            "list_contacts",
            provider,
            account,
            max_results=max_results,
            count_only=count_only,
            sort_by=sort_by,
            order=order,
            start_date=start_date,
            end_date=end_date,
            per_page=per_page,
            cursor=cursor,
            include_all_emails=include_all_emails,
            include_comet_tokens=include_comet_tokens,
            include_custom_fields=include_custom_fields,
            use_custom_field_labels=use_custom_field_labels,
        )

    return list_contacts


def _filter_by_custom_field(default: str) -> Callable[..., Any]:
    async def filter_by_custom_field(
        ctx: ToolContext,
        conditions: Annotated[
            list[FilterCondition],
            Field(min_length=1, max_length=10, description="1-10 conditions, all of which must hold."),
        ],
        start_date: StartDate = None,
        end_date: EndDate = None,
        per_page: PerPage = 50,
        cursor: Cursor = None,
        max_results: MaxResults = None,
        count_only: CountOnly = False,
        sort_by: SortBy = None,
        order: Order = None,
        include_custom_fields: Annotated[bool, Field(description="Add the custom fields that have a value.")] = True,
        use_custom_field_labels: Annotated[
            bool, Field(description="Key custom fields by their label instead of slot.")
        ] = True,
        provider: str = default,
        account: str | list[str] | None = None,
    ) -> ContactPage:
        return await _read_range(
            ctx,
            "filter_by_custom_field",
            provider,
            account,
            max_results=max_results,
            count_only=count_only,
            sort_by=sort_by,
            order=order,
            start_date=start_date,
            end_date=end_date,
            conditions=conditions,
            per_page=per_page,
            cursor=cursor,
            include_custom_fields=include_custom_fields,
            use_custom_field_labels=use_custom_field_labels,
        )

    return filter_by_custom_field


async def _read_range(
    ctx: ToolContext,
    tool: Capability,
    provider: str,
    account: str | list[str] | None,
    *,
    max_results: int | None,
    count_only: bool,
    sort_by: str | None,
    order: Literal["asc", "desc"] | None,
    **query: Any,
) -> ContactPage:
    """The contacts of a date range (`query` holds list_query's arguments): a page, many, or their count, sorted
    when asked; with `account` "*" or a list, each account's count (`_count_accounts`)."""
    app = ctx.request_context.lifespan_context
    if isinstance(account, list) or account == ALL_ACCOUNTS:
        if not count_only:
            raise ValidationFailed(
                'Invalid arguments: account "*" or a list counts several '
                "accounts: add count_only: true, or name one account to list its contacts; nothing was sent."
            )
        return await _count_accounts(ctx, tool, account, max_results=max_results, query=query)
    upstream, named = source(ctx, provider, account)
    page = await _read_one(
        upstream,
        app,
        max_results=max_results,
        count_only=count_only,
        sort_by=sort_by,
        order=order,
        progress=ctx.report_progress,
        query=query,
    )
    return answered_by(page, named)


async def _read_one(
    upstream: Provider,
    app: AppState,
    *,
    max_results: int | None,
    count_only: bool,
    sort_by: str | None,
    order: Literal["asc", "desc"] | None,
    progress: Progress | None,
    query: Mapping[str, Any],
) -> ContactPage:
    listed = list_query(upstream, now=app.clock(), **query)  # bad dates are refused before sort_by reads labels
    sort = None if count_only else await sort_of(upstream, sort_by, order)
    return await read_contacts(
        upstream,
        sorted_query(listed, sort),
        max_results=max_results,
        count_only=count_only,
        max_chars=app.max_result_chars,
        progress=progress,
        sort=sort,
    )


async def _count_accounts(
    ctx: ToolContext,
    tool: Capability,
    account: str | list[str],
    *,
    max_results: int | None,
    query: Mapping[str, Any],
) -> ContactPage:
    """Each named account's count, concurrently, each within its own budget; an account that fails gives its
    row's error, never the call's, and one that is slow holds only its own row.

    Raises:
        ValidationFailed: Without an accounts file.
        NotSupported: If an account named explicitly has no provider that offers `tool`.
    """
    app = ctx.request_context.lifespan_context
    if not app.accounts:
        raise ValidationFailed(
            'Invalid arguments: account "*" or a list needs named accounts (an accounts file); nothing was sent.'
        )
    wanted = None if account == ALL_ACCOUNTS else set(account)
    usable = caller_accounts.get()
    if wanted is not None and usable is not None and not wanted <= usable:  # the server refuses these first
        raise PermissionDenied("This sign-in may not use every account named; nothing was sent.")
    chosen = [
        (key, instance)
        for key, instance in app.accounts.items()
        if (wanted is None or key[1] in wanted) and (usable is None or key[1] in usable)
    ]
    if not chosen:
        raise PermissionDenied("This sign-in may use none of this server's accounts; nothing was sent.")
    serving = [(key, instance) for key, instance in chosen if tool in type(instance).capabilities]
    served = {key for key, _ in serving}
    skipped = [f"{name} ({owner})" for (owner, name), _ in chosen if (owner, name) not in served]
    if wanted is not None:
        refused = sorted(name for name in wanted if all(key[1] != name for key in served))
        if refused:
            raise NotSupported(
                f"{', '.join(refused)}: no provider of that account offers {tool}; name accounts whose provider "
                'does (the account argument lists them), or use "*"; nothing was sent.'
            )
    rows = [AccountCount(account=name, provider=owner) for (owner, name), _ in serving]

    async def count(row: AccountCount, upstream: Provider) -> None:
        try:
            page = await _read_one(
                upstream,
                app,
                max_results=max_results,
                count_only=True,
                sort_by=None,
                order=None,
                progress=None,  # several accounts' progress would interleave into nonsense
                query=query,
            )
        except ContactsError as exc:
            row.error = exc.render()
        except ValidationError as exc:
            row.error = ValidationFailed(f"Invalid arguments for this account: {exc.errors()[0]['msg']}").render()
        except Exception:
            logger.exception("counting account %s (%s) failed", row.account, row.provider)
            row.error = InternalError(
                "Counting this account failed unexpectedly; the details are in the server's log."
            ).render()
        else:
            row.total, row.total_at_least, row.has_more, row.range = (
                page.total,
                page.total_at_least,
                page.has_more,
                page.range,
            )

    async with anyio.create_task_group() as group:
        for row, (_, upstream) in zip(rows, serving, strict=True):
            group.start_soon(count, row, upstream)
    note = f"Left out, their provider does not offer {tool}: {', '.join(skipped)}." if skipped else None
    exact = all(row.total is not None for row in rows)
    return ContactPage(
        contacts=[],
        total=sum(row.total or 0 for row in rows) if exact else None,
        has_more=any(row.has_more or row.error is not None for row in rows),
        accounts=FanOut(rows=rows, note=note),
    )


def _find_contact(default: str) -> Callable[..., Any]:
    async def find_contact(
        ctx: ToolContext,
        email: Annotated[
            str | None, Field(max_length=320, description="An email address; matches it exactly, any case.")
        ] = None,
        phone: Annotated[
            str | None,
            Field(max_length=40, description="A phone number, e.g. +14155550100; matches it exactly."),
        ] = None,
        name: Annotated[
            str | None,
            Field(
                max_length=200,
                description="A name or part of one, e.g. 'jose nun' finds José Núñez: any case, accents ignored.",
            ),
        ] = None,
        query: Annotated[
            str | None,
            Field(
                max_length=200,
                description="Anything else: part of a name or email, an email domain ('acme.com'), a company "
                "(HighLevel) or a phone; used when you do not know which it is.",
            ),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_MATCHES, description="Show at most this many matches.")] = 5,
        provider: str = default,
        account: str | None = None,
    ) -> ContactMatches:
        lookup = Lookup(email=_given(email), phone=_given(phone), name=_given(name), query=_given(query))
        if lookup.email is None and lookup.phone is None and lookup.name is None and lookup.query is None:
            raise ValidationFailed(
                "Give what to look for: email, phone, name (any part) or query (anything, e.g. a domain)."
            )
        upstream, named = source(ctx, provider, account)
        found = await upstream.find_contacts(lookup, limit=limit)
        return answered_by(found.model_copy(update={"contacts": found.contacts[:limit]}), named)

    return find_contact


def _given(value: str | None) -> str | None:
    """An argument stripped; None when it is missing or blank."""
    return (value or "").strip() or None


def _create_contact(default: str) -> Callable[..., Any]:
    async def create_contact(
        ctx: ToolContext,
        emails: Annotated[
            list[str],
            Field(min_length=1, max_length=25, description="Email addresses, at least one; the first is primary."),
        ],
        phones: Annotated[Texts, Field(description="Phone numbers, e.g. +14155550100; the first is primary.")] = [],  # noqa: B006 - pydantic copies defaults
        names: Annotated[Texts, Field(description="Names, e.g. 'Jane Doe'; the first is primary.")] = [],  # noqa: B006
        locations: Annotated[
            Texts, Field(description="Cometly only: free-text locations, e.g. 'Austin, TX'; the first is primary.")
        ] = [],  # noqa: B006
        address: Annotated[
            Address | None,
            Field(
                description="HighLevel and Clemta: the postal address in parts (for Clemta, its billing address); "
                "each part says which of them takes it."
            ),
        ] = None,
        custom_fields: Annotated[
            dict[str, Scalar | list[str]],
            Field(max_length=30, description=CUSTOM_FIELDS_HELP),
        ] = {},  # noqa: B006
        tags: Annotated[
            list[ShortText], Field(max_length=50, description="HighLevel only: tags to give the contact.")
        ] = [],  # noqa: B006
        fields: Annotated[
            ContactFields | None,
            Field(description="The provider's own fields (company, source, status, ...); each says who takes it."),
        ] = None,
        contact_type: Annotated[
            Literal["customer", "vendor"],
            Field(description="Clemta only: whether the contact is a customer or a vendor."),
        ] = "customer",
        allow_duplicate: Annotated[
            bool,
            Field(
                description="Create it even if a contact with the first email already exists (otherwise that "
                "is refused with [conflict], naming the existing contact)."
            ),
        ] = False,
        provider: str = default,
        account: str | None = None,
    ) -> Contact:
        contact = NewContact(
            emails=emails,
            phones=phones,
            names=names,
            locations=locations,
            custom_fields=custom_fields,
            contact_type=contact_type,
            address=address,
            tags=tags,
            fields=fields or ContactFields(),
            allow_duplicate=allow_duplicate,
        )
        upstream, named = source(ctx, provider, account)
        return answered_by(await upstream.create(contact), named)

    return create_contact


CUSTOM_FIELDS_HELP = (
    "Custom field values by field, Cometly and HighLevel: Cometly by label (any case, e.g. 'Customer Plan') or "
    "slot (profile_field_1..15 text, max 10,240 chars; 16..25 numbers; 26..30 dates YYYY-MM-DD); HighLevel by "
    "the field's name (any case), id or key (contact.my_field or my_field), numbers for numeric and monetary "
    "fields, dates for date fields, a list for checkboxes. describe_custom_fields lists the names; one that "
    "matches none is refused before anything is sent."
)


def _update_contact(default: str) -> Callable[..., Any]:
    async def update_contact(
        ctx: ToolContext,
        contact_id: Annotated[
            str,
            BeforeValidator(_id_text),
            Field(
                min_length=1,
                max_length=200,
                description="The contact's id; ids come from find_contact, list_contacts or filter_by_custom_field.",
            ),
        ],
        custom_fields: Annotated[
            dict[str, CustomValue],
            Field(
                max_length=30,
                description=f"{CUSTOM_FIELDS_HELP} null clears a field; the fields not named keep their values. "
                "Clemta has none.",
            ),
        ] = {},  # noqa: B006 - pydantic copies defaults
        add_emails: Annotated[
            Values,
            Field(
                description="Emails to add (Cometly: after the existing ones, the primary stays; HighLevel holds "
                "one, so remove the old one in the same call; Clemta: the first is its email, the rest cc_emails)."
            ),
        ] = [],  # noqa: B006
        remove_emails: Annotated[
            Values, Field(description="Emails to remove; removing the primary makes the next one primary.")
        ] = [],  # noqa: B006
        add_phones: Annotated[
            Values,
            Field(
                description="Phones to add, e.g. +14155550100 (HighLevel and Clemta hold one: remove the old one "
                "in the same call)."
            ),
        ] = [],  # noqa: B006
        remove_phones: Annotated[Values, Field(description="Phones to remove.")] = [],  # noqa: B006
        add_names: Annotated[
            Values, Field(description="Names to add (HighLevel and Clemta hold one: remove the old one too).")
        ] = [],  # noqa: B006
        remove_names: Annotated[
            Values, Field(description="Names to remove (Clemta needs one: add another in the same call).")
        ] = [],  # noqa: B006
        add_locations: Annotated[
            Values, Field(description="Cometly only: free-text locations to add, e.g. 'Austin, TX'.")
        ] = [],  # noqa: B006
        remove_locations: Annotated[Values, Field(description="Cometly only: locations to remove.")] = [],  # noqa: B006
        add_tags: Annotated[Values, Field(description="HighLevel only: tags to add, e.g. hot-lead.")] = [],  # noqa: B006
        remove_tags: Annotated[Values, Field(description="HighLevel only: tags to remove.")] = [],  # noqa: B006
        fields: Annotated[
            UpdateFields | None,
            Field(
                description="The provider's own fields to set (null clears one): HighLevel first_name, last_name, "
                "source, website; Clemta status, description, tax_id, bcc_emails, contact_type. Each says who "
                "takes it."
            ),
        ] = None,
        provider: str = default,
        account: str | None = None,
    ) -> ContactUpdate:
        lists: dict[Collection, tuple[list[str], list[str]]] = {
            "emails": (add_emails, remove_emails),
            "phones": (add_phones, remove_phones),
            "names": (add_names, remove_names),
            "locations": (add_locations, remove_locations),
            "tags": (add_tags, remove_tags),
        }
        changes = ContactChanges(
            contact_id=contact_id,
            custom_fields=custom_fields,
            add={key: added for key, (added, _) in lists.items() if added},
            remove={key: removed for key, (_, removed) in lists.items() if removed},
            fields=fields or UpdateFields(),
        )
        upstream, named = source(ctx, provider, account)
        updated = await upstream.update(changes)
        return updated if named is None else updated.model_copy(update={"contact": answered_by(updated.contact, named)})

    return update_contact


_DESCRIPTIONS: dict[Capability, tuple[str, str]] = {
    "get_contact": (
        "Get contact",
        "Look up one contact by id and return its full record: every email, phone, name and location "
        "(merged profiles included) and the custom fields that have a value. Ask for more only when needed: "
        "include_events adds its ad journey (conversions and touchpoints with ad, ad set, campaign and account), "
        "include_comet_tokens its latest comet tokens, include_browsing_hits its raw page views (the newest "
        "`limit` of events and of hits, 20 unless asked; `truncated` counts the rest). With include_events, "
        "`journey` sums up every event Cometly returned, even those `limit` leaves out: first_touch and "
        "last_touch (simply the oldest and newest touchpoints: no attribution model is applied; the first/last "
        "AD touch unless include_direct_touchpoints), and conversions by event_name with count and total_amount "
        "(amounts summed as Cometly reports them, in the account's currency, which it does not name; "
        "amount_missing counts those without one), so 'which campaign brought them in and how much have they "
        "spent' needs no adding up. HighLevel contacts carry its first/last-touch attribution as `journey` too. "
        "Ids come from find_contact, list_contacts, filter_by_custom_field, create_contact or update_contact, or "
        "from the user. Returns one Contact.",
    ),
    "list_contacts": (
        "List contacts",
        "List the contacts created in a date range, newest first: use it for questions like 'who signed up "
        "last week?' (start_date='last week') or, with count_only, 'how many signed up this month?'. Dates "
        "may be words (today, last 7 days, last month, ...) or dates, read in the account's timezone; the "
        "result's `range` shows the exact range used. Each contact carries its primary email, name, phone and "
        "location; call get_contact for one contact's full record or journey, and filter_by_custom_field to "
        "narrow by custom fields. Leave start_date out for all history (from 2000-01-01 to end_date or now). "
        "sort_by sorts by a custom field's label, name, email or created_at, over what was read; "
        "`sorted.covers` says whether that is every match (max_results reads them all). One page by default; "
        "max_results reads several. Returns `contacts` (a table in the text), `count` (how many this result "
        "holds), `total` (how many match, when known exactly), `has_more` and `next_cursor`: to read on, call "
        "again with the same arguments and cursor=next_cursor.",
    ),
    "filter_by_custom_field": (
        "Filter contacts by custom field",
        "Find the contacts whose custom fields match all of 1-10 conditions, e.g. "
        'leads whose Customer Plan is Premium: {"field": "Customer Plan", "operator": "equal_to", "value": '
        '"Premium"}. A field is named by its label (any case) or its slot profile_field_N; '
        "describe_custom_fields lists both, with each field's type and operators. Text, number and date "
        "fields each have their own operators (see `operator`); `between` takes `start` and `end` "
        "(or a period alone in `value`: 'next 14 days'), `any`/`unknown` take no value; date values may be words "
        "('next quarter', 'last month'). Mind Cometly's semantics when "
        "counting: on a number field `any` means greater than 0 and `unknown` includes 0; not_equal_to and "
        "not_contains leave out contacts where the field is unset (add a second call with `unknown` to count "
        "those); a date equal_to matches the whole calendar day. Only labelled fields can be filtered (Cometly "
        "only). start_date is optional: left out, the conditions apply to all history. sort_by and order "
        "sort as in list_contacts: 'whose trial ends in the next two weeks?' is Trial Ends between 'next 14 "
        "days' with sort_by='Trial Ends' and max_results. Returns what list_contacts returns, custom fields "
        "included, plus `filters`: the conditions as sent, labels resolved to slots.",
    ),
    "find_contact": (
        "Find contact",
        "Find contacts by email, phone, name or anything else in one call: use it when the user names a "
        "person ('what do we have on jane@acme.com?', 'find José'), to learn when they signed up, or before "
        "create_contact. email or phone match exactly ([not_found] when no contact has it); name matches any "
        "part of a name, any case, accents ignored; query is for text of unknown kind (part of a name or "
        "email, an email domain such as acme.com, a company, a phone). Returns `contacts`, best match first "
        "(at most `limit`), each a Contact with its id, primary fields and sign-up date (created_at; for "
        "Cometly created_between when only a window is known), `total` (how many matched in all) and "
        "`source`/`as_of` (how fresh). Cometly answers from the server's contact index and reads each contact "
        "shown live; HighLevel from its duplicate search (email, phone) and contact search (name, query); "
        "Clemta from its contact search.",
    ),
    "create_contact": (
        "Create contact",
        "Create a new contact (a lead) with at least one email; the first item of each list becomes the "
        "primary value. Not idempotent: every call creates a contact, so when unsure whether it exists, look "
        "first with find_contact, list_contacts or filter_by_custom_field. What each provider takes: Cometly "
        "emails, phones, names, free-text locations and custom_fields by label or slot; HighLevel one email and "
        "one phone, custom_fields by name, id or key, names (names[0] is its name, split into first and last "
        "name unless fields give them), address "
        "(line1, city, state, postal_code, country), tags, and fields first_name, last_name, company_name, "
        "source, website; Clemta a name (names[0] becomes its full_name; required), emails (the rest become "
        "cc_emails), one phone and the address (its billing details), contact_type, and fields status, "
        "description, tax_id, bcc_emails. An argument the provider has no place for is refused, naming who takes "
        "it, before anything is sent. A contact whose first email already exists is not created: the call "
        "fails with [conflict] naming the existing one (allow_duplicate=true creates it anyway). Returns the "
        "created Contact with its new id.",
    ),
    "update_contact": (
        "Update contact",
        "Change one existing contact: 'move Olivia to Premium' (custom_fields={'Customer Plan': 'Premium'}), "
        "'fix her lifetime value', 'add her work email' (add_emails), 'tag her hot-lead' (add_tags, HighLevel). "
        "Only what is named changes: every other value, custom field and list item stays as it is (the server "
        "reads the contact, merges the change, writes, and reads it back). Lists change by add_*/remove_* "
        "(the first item stays primary; removing it promotes the next); custom fields by label or slot "
        "(Cometly) or name, id or key (HighLevel), null to clear; fields for a provider's own fields. Safe to "
        "repeat: a value already as asked is listed unchanged and nothing is sent. An argument the provider "
        "has no place for is refused before anything is sent, naming who takes it. If someone else changed the "
        "contact meanwhile, it fails with [conflict] naming the fields. Ids come from find_contact, list_contacts, "
        "filter_by_custom_field or create_contact. Returns the contact after the update and `changes`: each named "
        "field's before and after.",
    ),
}
