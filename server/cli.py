"""The `contacts-mcp` command: parse, build, run. stdout belongs to the MCP protocol under stdio.

    contacts-mcp [serve] [--sandbox]          the MCP server over stdio (what MCP clients start); with
                                              --sandbox --accounts N, N further sandbox accounts of each vendor
    contacts-mcp serve --transport http       the MCP server over streamable HTTP at /mcp (sse: /sse)
    contacts-mcp tools [--json] [--sandbox]   the tools this configuration serves
    contacts-mcp call TOOL [JSON] [--sandbox] one tool call through the real MCP path, for debugging a setup
    contacts-mcp sandbox [--faults KINDS]     the sandbox contact APIs alone on 127.0.0.1, optionally failing
                                              (--allow-remote: off loopback, its fault switch behind a token)
    contacts-mcp demo                         a tour of the tools against the sandbox, over stdio

Everything about the sandbox and the HTTP transports is imported only when asked for, so the stdio server starts lean.
"""

from __future__ import annotations

import argparse
import errno
import gc
import json
import logging
import os
import secrets
import socket
import sys
import textwrap
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
from pydantic import SecretStr

from .errors import ConfigurationError
from .results import Redactor, redact_logs, secrets_of
from .settings import MIN_TOKEN_CHARS, Rate, Settings, load_settings, parse_rate_limits

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from .accounts import Account
    from .app import ContactsServer

logger = logging.getLogger("contacts_mcp")

EXIT_CONFIGURATION = 2
SANDBOX_ROOT = "http://sandbox"
"""Where a `--sandbox` command's providers reach the sandbox in process (no port, no network)."""
SANDBOX_TOKEN_VARIABLE = "CONTACTS_MCP_SANDBOX_TOKEN"
"""The bearer token the sandbox's control routes require; without it one is generated when off loopback."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake on the command line is one line and exit 2, as every other start-up failure is:
    what is wrong and where the help is, without argparse's usage block (the subcommands' parsers are of this
    class too, `add_subparsers` makes them so)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIGURATION, f"{self.prog}: {message}; see `{self.prog} --help`\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="contacts-mcp",
        description="An MCP server that gives AI agents typed tools over a company's contacts.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the MCP server (stdio, the default; or HTTP)")
    serve.add_argument(
        "--transport",
        choices=("stdio", "http", "sse"),
        default="stdio",
        help="stdio for desktop clients (default); http for streamable HTTP at /mcp; sse for older clients at /sse",
    )
    serve.add_argument("--host", default="127.0.0.1", help="HTTP: address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="HTTP: port (default 8000; 0 picks a free one)")
    serve.add_argument(
        "--stateless",
        action="store_true",
        help="HTTP: no sessions, so replicas behind a load balancer can answer any request",
    )
    tools = commands.add_parser("tools", help="print the tools this configuration serves")
    tools.add_argument("--json", action="store_true", help="print the full tools/list result as JSON")
    call = commands.add_parser("call", help="run one tool through the MCP path and print its result")
    call.add_argument("tool", help="tool name, e.g. get_contact")
    call.add_argument("arguments", nargs="?", default="{}", help='arguments as JSON, e.g. \'{"contact_id": "4821"}\'')
    for command in (serve, tools, call):
        command.add_argument(
            "--sandbox", action="store_true", help="use the built-in sandbox (generated contacts) instead of real APIs"
        )
        _sandbox_data_arguments(command)
        command.add_argument(
            "--accounts",
            metavar="N",
            help="with --sandbox: also serve N further sandbox accounts of each vendor (cometly-2, highlevel-2, "
            "clemta-2, ..., as `contacts-mcp sandbox --accounts N` prints them), named by the tools' account "
            "argument (default 0: one account per vendor, as without it)",
        )
    sandbox = commands.add_parser(
        "sandbox",
        help="run the sandbox contact APIs alone on 127.0.0.1",
        description="Run the sandbox contact APIs (Cometly, HighLevel, Clemta on one port), optionally failing.",
        epilog=_SANDBOX_FAULTS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sandbox.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; off loopback needs --allow-remote)"
    )
    sandbox.add_argument(
        "--allow-remote",
        action="store_true",
        help=(
            "allow a --host off loopback (e.g. 0.0.0.0): anyone who reaches the port gets the generated data; "
            f"/_sandbox/faults then needs Authorization: Bearer <token>, ${SANDBOX_TOKEN_VARIABLE} or one "
            "generated and printed at start"
        ),
    )
    sandbox.add_argument("--port", type=_port, default=8765, help="port (default 8765; 0 picks a free one)")
    _sandbox_data_arguments(sandbox)
    sandbox.add_argument(
        "--accounts",
        type=_account_count,
        default=0,
        metavar="N",
        help="serve N further accounts of each vendor beside the default ones (own contacts, key and timezone), "
        "each printed at start with what an accounts file (CONTACTS_MCP_ACCOUNTS_FILE) needs (default 0)",
    )
    sandbox.add_argument(
        "--rate-limit",
        action="append",
        default=[],
        metavar="NAME=COUNT/SECONDS",
        help="replace a sandbox endpoint's limit, e.g. cometly.get_contact=10/2 (repeatable)",
    )
    sandbox.add_argument(
        "--faults",
        type=_fault_kinds,
        metavar="KIND[,KIND...]",
        help="answer requests with these upstream failures, taking turns (kinds below)",
    )
    sandbox.add_argument(
        "--fault-rate", type=_probability, default=1.0, metavar="P", help="probability a request fails (default 1)"
    )
    sandbox.add_argument("--fault-route", metavar="TEXT", help="fail only requests whose path contains TEXT")
    sandbox.add_argument(
        "--fault-retry-after", type=int, default=1, metavar="SECONDS", help="Retry-After of a 503 (default 1)"
    )
    sandbox.add_argument(
        "--fault-delay", type=float, default=60.0, metavar="SECONDS", help="how long a timeout lasts (default 60)"
    )
    sandbox.add_argument(
        "--fault-size", type=int, default=16 * 1024 * 1024, metavar="BYTES", help="size of a large body (16 MiB)"
    )
    commands.add_parser("demo", help="tour the tools against the sandbox over stdio; exits 0 if all steps work")
    index = commands.add_parser(
        "index",
        help="build, inspect or delete Cometly's contact index (find_contact's search)",
        description="The contact index: a local, searchable copy of the Cometly Space's contacts, kept in sync by "
        "the server (CONTACTS_MCP_INDEX, CONTACTS_MCP_INDEX_URL).",
    )
    actions = index.add_subparsers(dest="action", metavar="ACTION", required=True)
    sync = actions.add_parser("sync", help="catch the index up with Cometly now (resumes where a sync stopped)")
    sync.add_argument(
        "--dates",
        action="store_true",
        help="also date every contact to the day (about one list request per day of history)",
    )
    status = actions.add_parser("status", help="where the index is, how many contacts it holds, how far it is synced")
    for action in (sync, status):
        action.add_argument(
            "--account",
            metavar="NAME",
            help="the Cometly account to sync or show, by its name in the accounts file (CONTACTS_MCP_ACCOUNTS_FILE); "
            "default: the environment's (COMETLY_API_KEY), named default",
        )
    actions.add_parser("forget", help="delete the index, every account's (it is built again by the next sync)")
    return parser


_SANDBOX_FAULTS = """\
fault kinds (--faults), injected before keys and rate limits are checked:
  500          HTTP 500 with a JSON error body
  502-html     HTTP 502 with an HTML page, as a proxy sends
  503          HTTP 503 with Retry-After: --fault-retry-after
  reset        the headers and a few bytes, then the connection is reset (TCP RST)
  timeout      no answer for --fault-delay seconds, without holding up other requests
  not-json     HTTP 200 with an HTML page
  wrong-shape  HTTP 200 with JSON of the wrong shape: {"unexpected": true}
  empty        HTTP 200 with an empty body
  large        HTTP 200 with --fault-size bytes of valid JSON, chunked

e.g. contacts-mcp sandbox --faults 503,reset --fault-rate 0.3 --fault-route /highlevel/

While it runs, POST /_sandbox/faults replaces the faults, e.g. {"kinds": ["timeout"], "delay": 5};
{"kinds": []} turns them off; GET /_sandbox/faults shows them. Other fields: rate, route, times
(fail only that many requests), retry_after, large_bytes, shape, seed.

Off loopback (--allow-remote), or whenever CONTACTS_MCP_SANDBOX_TOKEN is set, both need
Authorization: Bearer <token>: the variable's value (16 characters or more), else a token generated
at start and printed once with the base URLs. Without it they answer 401, with another token 403.
"""


def _fault_kinds(text: str) -> tuple[str, ...]:
    from .sandbox.faults import parse_kinds  # deferred: only the sandbox command imports the sandbox

    try:
        return parse_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability from 0 to 1, e.g. 0.25")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 0 to 65535 (0 picks a free one)")
    return value


MAX_FURTHER_ACCOUNTS = 20


def _further_accounts(text: str) -> int:
    """`--accounts`'s number of further sandbox accounts of each vendor.

    Raises:
        ValueError: If `text` is not a whole number from 0 to `MAX_FURTHER_ACCOUNTS`, saying so.
    """
    value = int(text) if text.isascii() and text.isdigit() else -1
    if not 0 <= value <= MAX_FURTHER_ACCOUNTS:
        raise ValueError(f"{text[:40]!r} is not a number of further accounts from 0 to {MAX_FURTHER_ACCOUNTS}, e.g. 2")
    return value


def _account_count(text: str) -> int:
    try:
        return _further_accounts(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sandbox_account_count(args: argparse.Namespace) -> int:
    """How many further sandbox accounts `serve`, `tools` or `call` were asked for (`--accounts`; 0 without it).

    Checked here rather than by argparse, so a mistake is one line (argparse adds its usage).

    Raises:
        ConfigurationError: If the number is not one, or `--accounts` is given without `--sandbox`.
    """
    text: str | None = getattr(args, "accounts", None)
    if text is None:
        return 0
    if not getattr(args, "sandbox", False):
        raise ConfigurationError(
            "contacts-mcp: --accounts serves further sandbox accounts and needs --sandbox; the accounts of real "
            "providers come from the accounts file (CONTACTS_MCP_ACCOUNTS_FILE)"
        )
    try:
        return _further_accounts(text)
    except ValueError as exc:
        raise ConfigurationError(f"contacts-mcp: --accounts {exc}") from None


def _contact_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of contacts, 0 or more, e.g. 500")
    return value


def _sandbox_data_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--db", default=":memory:", help="sandbox SQLite file, kept between runs (default: memory)")
    command.add_argument(
        "--contacts", type=_contact_count, default=500, help="contacts to generate in a new sandbox (500)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `contacts-mcp` console script; returns the exit status.

    Every mistake of the person running it (a setting, an option, a file) ends here as one line on
    stderr and exit status 2, before anything is served: `ConfigurationError`, raised where the
    value is read, names what to change. So do an address that cannot be bound (`_listen` binds
    before uvicorn starts) and a service the lifespan cannot reach (`_opened` opens it before serving).
    """
    args = _parser().parse_args(argv)
    level = os.environ.get("CONTACTS_MCP_LOG_LEVEL", "").strip().upper() or "INFO"
    if level not in logging.getLevelNamesMapping():
        print("contacts-mcp: CONTACTS_MCP_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL", file=sys.stderr)
        return EXIT_CONFIGURATION
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise, not news
        match args.command:
            case "sandbox":
                return _run_sandbox(args)
            case "demo":
                from .demo import run_demo, server_command

                return anyio.run(run_demo, server_command())
            case _:
                pass
        sandbox: bool = getattr(args, "sandbox", False)
        _sandbox_account_count(args)  # a mistake stops here, before any setting is read
        settings = _sandbox_settings() if sandbox else load_settings()
        loaded: list[Account] = []
        if settings.accounts_file is not None:  # read here too, so every account's key is kept out of the logs
            from .accounts import load_accounts

            loaded = load_accounts(settings.accounts_file, os.environ)
            settings = settings.with_account_keys([account.key for account in loaded])
        redact_logs(Redactor(secrets_of(settings)))
        match args.command:
            case "index":
                from .index import commands

                named: str | None = getattr(args, "account", None)
                indexed = _indexed_account(settings, named, loaded)
                if named is not None:
                    print(f"account: {named} (cometly)", flush=True)  # whose index the lines below are
                action = {"sync": commands.sync, "status": commands.status, "forget": commands.forget}[args.action]
                return anyio.run(action, indexed, *((args.dates,) if args.action == "sync" else ()))
            case "tools":
                return anyio.run(_print_tools, settings, args.json, _sandboxed(settings, args) if sandbox else None)
            case "call":
                server = _sandboxed(settings, args) if sandbox else None
                return anyio.run(_call, settings, args.tool, args.arguments, server)
            case _:
                return _serve(_sandboxed(settings, args) if sandbox else None, settings, args)
    except ConfigurationError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIGURATION
    except BaseExceptionGroup as group:  # the SDK's task groups wrap what the lifespan raises at start
        found, _ = group.split(ConfigurationError)
        if found is None:
            raise
        print("\n".join(str(exc) for exc in _leaves(found)), file=sys.stderr)
        return EXIT_CONFIGURATION
    except KeyboardInterrupt:
        return 130


def _indexed_account(settings: Settings, name: str | None, loaded: Sequence[Account]) -> Settings:
    """The settings `index sync|status --account NAME` run on: `settings` themselves without `--account` or
    for `default`, else as if the accounts file's Cometly account `name` were the one Space (`Account.apply`),
    so the index entry and budgets are the ones a server with that file keeps for it (its key's fingerprint).

    Raises:
        ConfigurationError: If no Cometly account is named `name`, listing the ones there are.
    """
    from .accounts import default_account

    if name is None:
        return settings
    environment = default_account(settings, "cometly")
    cometly = [account for account in (environment, *loaded) if account is not None and account.provider == "cometly"]
    found = next((account for account in cometly if account.name == name), None)
    if found is not None:
        return settings if found is environment else found.apply(settings)
    other = next((account for account in loaded if account.name == name), None)
    what = f"is a {other.provider} account; the index is Cometly's" if other else "names no Cometly account"
    known = ", ".join(account.name for account in cometly) or "none"
    where = "" if settings.accounts_file else " (no accounts file: CONTACTS_MCP_ACCOUNTS_FILE is not set)"
    raise ConfigurationError(
        f"contacts-mcp: index --account {name[:40]!r} {what}; the Cometly accounts: {known}{where}"
    )


def _leaves(group: BaseExceptionGroup[ConfigurationError]) -> list[ConfigurationError]:
    return [
        leaf for exc in group.exceptions for leaf in (_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    ]


def _sandbox_settings() -> Settings:
    """The settings of a `--sandbox` command: the server's own, with the sandbox's providers.

    Read, from the environment and `.env` as ever (and refused, in one line, when invalid): the
    `CONTACTS_MCP_*` settings that shape what is served and how, so the sandbox shows the
    configuration one will run: READ_ONLY, TOOLS, DEFAULT_PROVIDER, MAX_WAIT_SECONDS,
    TIMEOUT_SECONDS, RATE_LIMITS, MAX_RESPONSE_BYTES, MAX_RESULT_TOKENS, CUSTOM_FIELDS_TTL_SECONDS,
    and for `--transport http|sse` HTTP_TOKEN, ALLOWED_HOSTS and ALLOWED_ORIGINS.

    Ignored, never read, so a half-configured or wrong `.env` cannot stop the no-account path:
    every `COMETLY_*`, `HIGHLEVEL_*` and `CLEMTA_*` setting, the timezones included (the sandbox
    brings its own keys, URLs and ids, and its Cometly Space keeps its dates in UTC, so date words
    read the same everywhere); `CONTACTS_MCP_REDIS_URL`, since every process embeds a sandbox
    of its own whose limits no other process shares, so its budgets stay in the process; and
    `CONTACTS_MCP_INDEX_URL`, since the sandbox's contacts are generated afresh by each process: its
    contact index is a temporary file, deleted at exit (`CONTACTS_MCP_INDEX=off` still turns it off);
    and `CONTACTS_MCP_ACCOUNTS_FILE`, whose accounts are real ones, not the sandbox's.

    Raises:
        ConfigurationError: If a setting it reads is invalid, naming it and where it came from.
    """
    from .sandbox import sandbox_settings

    return load_settings(providers=sandbox_settings(SANDBOX_ROOT), unread=("redis_url", "index_url", "accounts_file"))


def _sandboxed(settings: Settings, args: argparse.Namespace) -> ContactsServer:
    """The MCP server backed by an in-process sandbox (no port, no network, no real credentials).

    Its providers are the sandbox's and its budgets stay in the process, whatever `settings` hold
    (`_sandbox_settings()` has never read the others). With `--accounts N` the sandbox serves
    `extra_accounts(N)` too, and the server each vendor's accounts by name (`_named_sandbox_accounts`).
    """
    import httpx

    from .app import build_server
    from .sandbox import extra_accounts, sandbox_settings

    count = _sandbox_account_count(args)
    app = _sandbox_app(args, "contacts-mcp", accounts=extra_accounts(count))
    sandboxed = settings.model_copy(update={**sandbox_settings(SANDBOX_ROOT), "redis_url": None, "index_url": None})
    accounts = _named_sandbox_accounts(sandboxed, app) if count else None
    return build_server(sandboxed, transport=lambda: httpx.ASGITransport(app=app), sandbox=True, accounts=accounts)


_SANDBOX_UNITS = {"cometly": "Cometly Spaces", "highlevel": "HighLevel locations", "clemta": "Clemta companies"}


def _named_sandbox_accounts(settings: Settings, app: Starlette) -> list[Account]:
    """The accounts of a sandbox serving further ones, as an accounts file would name them: each vendor's
    `default` (the settings' own, so `CONTACTS_MCP_RATE_LIMITS` still applies), then the further ones, with
    descriptions the model can choose by."""
    from .accounts import Account, default_accounts
    from .sandbox import DEFAULT_ACCOUNT, sandbox_accounts

    served = sandbox_accounts(app)
    described = {account.provider: account.description for account in served if account.name == DEFAULT_ACCOUNT}
    defaults = [replace(account, description=described[account.provider]) for account in default_accounts(settings)]
    further = [
        Account(
            name=account.name,
            provider=account.provider,
            description=f"another of the sandbox's {_SANDBOX_UNITS[account.provider]}, with its own generated "
            f"contacts" + ("" if account.provider == "highlevel" else f"; dates in {account.timezone}"),
            key=SecretStr(account.key),
            base_url=account.base_url(SANDBOX_ROOT),
            location_id=account.location_id,
            company_id=account.company_id,
            timezone=None if account.provider == "highlevel" else account.timezone,
        )
        for account in served
        if account.name != DEFAULT_ACCOUNT
    ]
    return [*defaults, *further]


def _serve(server: ContactsServer | None, settings: Settings, args: argparse.Namespace) -> int:
    from .app import build_server

    transport: str = getattr(args, "transport", "stdio")  # `contacts-mcp` alone means `serve` over stdio
    if getattr(args, "stateless", False) and transport != "http":
        raise ConfigurationError("contacts-mcp: --stateless applies to --transport http only")
    server = server or build_server(settings)
    data = " (sandbox data)" if server.sandbox else ""
    # Everything built so far lives as long as the process: keep it out of the collector's full passes,
    # which otherwise rescan it while a bulk result of thousands of contacts is built.
    gc.freeze()
    if transport == "stdio":
        # deferred, as server.app is: `sandbox` and `demo` never load the SDK
        from .stdio import StdioLimits, serve_stdio

        async def stdio() -> None:
            logger.info("contacts-mcp serving over stdio%s", data)
            await serve_stdio(server, StdioLimits())

        anyio.run(_opened, server.state.hold, stdio)
        return 0
    from .oauth import OAuthConfig, OAuthVerifier  # deferred with the HTTP transports
    from .web import HttpOptions, http_app, listener_options, warn_if_open  # deferred: uvicorn, HTTP transports

    options = HttpOptions(
        transport="sse" if transport == "sse" else "http", host=args.host, port=args.port, stateless=args.stateless
    )
    oauth = OAuthConfig.from_settings(settings)
    verifier = OAuthVerifier(oauth) if oauth is not None else None
    app = http_app(server, settings, options, verifier=verifier)
    kind = "SSE" if transport == "sse" else "streamable HTTP" + (" (stateless)" if args.stateless else "")

    def announce(root: str) -> None:
        logger.info("contacts-mcp serving MCP over %s at %s%s%s", kind, root, options.path, data)

    def listening() -> dict[str, Any]:
        warn_if_open(settings)
        return listener_options()

    @asynccontextmanager
    async def verifying() -> AsyncGenerator[None]:
        """The issuer discovered and its keys read before the port is bound; a silent issuer stops the start."""
        if verifier is None:
            yield
            return
        try:
            await verifier.start()
            yield
        finally:
            await verifier.aclose()

    _run_uvicorn(
        app,
        host=options.bind_host,
        port=args.port,
        announce=announce,
        prepare=verifying,
        hold=server.state.hold,
        listening=listening,
    )
    return 0


async def _opened(
    hold: Callable[[], AbstractAsyncContextManager[object]], serve: Callable[[], Awaitable[None]]
) -> None:
    """Open the server's shared state (`hold`), then `serve` while holding it.

    Everything the lifespan connects to (Redis for shared budgets today; a database would join it
    there) is opened here, before a word is served or logged, so a `ConfigurationError` it raises
    (unreachable, refused credentials) reaches `main()` plainly: one line, exit 2, not a traceback
    from inside uvicorn's or the SDK's task groups. The SDK's and the HTTP app's own entries into
    the lifespan then share what is open.
    """
    async with hold():
        await serve()


def _listen(host: str, port: int, command: str) -> list[socket.socket]:
    """Sockets listening on `port` at every address `host` resolves to, bound as asyncio's `create_server` would.

    Bound here, before uvicorn starts (it takes them through `serve(sockets=...)`), so that an address
    this process cannot have is one line naming the option to change, not uvicorn's exit in a
    traceback. Port 0 picks a free port, as before.

    Raises:
        ConfigurationError: If `host` does not resolve or is not this machine's (naming --host), or the port
            is in use or not permitted (naming --port).
    """
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigurationError(
            f"{command}: --host {host[:80]!r} is not an address of this machine or a name that resolves ({reason}); "
            "give one of its addresses, e.g. --host 127.0.0.1"
        ) from None
    listeners: list[socket.socket] = []
    try:
        for family, kind, protocol, _, address in dict.fromkeys(infos):
            try:
                listener = socket.socket(family, kind, protocol)
            except OSError:
                continue  # a family this system cannot open, which asyncio skips too
            listeners.append(listener)
            if os.name == "posix":
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind(address)
            listener.listen()  # uvicorn listens again with its own backlog
            listener.setblocking(False)
    except OSError as exc:
        for listener in listeners:
            listener.close()
        raise ConfigurationError(_unbindable(exc, command, host, port, shown)) from None
    if not listeners:
        raise ConfigurationError(f"{command}: cannot open a socket for --host {host[:80]!r}; e.g. --host 127.0.0.1")
    return listeners


def _unbindable(exc: OSError, command: str, host: str, port: int, shown: str) -> str:
    """What to change when binding `shown` failed with `exc`."""
    match exc.errno:
        case errno.EADDRINUSE:
            return (
                f"{command}: {shown} is already in use; choose another --port (--port 0 picks a free one), "
                "or stop the program that holds it"
            )
        case errno.EADDRNOTAVAIL:
            return f"{command}: --host {host} is not an address of this machine; give one it has, e.g. --host 127.0.0.1"
        case errno.EACCES | errno.EPERM:
            return (
                f"{command}: not permitted to listen on {shown}: ports below 1024 need privileges; choose "
                "another --port, 1024 or above (--port 0 picks a free one)"
            )
        case _:
            return f"{command}: cannot listen on {shown} ({exc.strerror or exc}); change --host or --port"


def _run_uvicorn(
    app: Any,
    *,
    host: str,
    port: int,
    announce: Callable[[str], None],
    command: str = "contacts-mcp",
    prepare: Callable[[], AbstractAsyncContextManager[object]] = nullcontext,
    hold: Callable[[], AbstractAsyncContextManager[object]] = nullcontext,
    listening: Callable[[], dict[str, Any]] = dict,
) -> None:
    """Open `prepare`, listen on `host`:`port`, open `hold`, then serve `app` with uvicorn, logging through ours.

    `prepare` is what must be ready before anything can connect (the OAuth verifier's discovery);
    `announce` gets the root URL once serving. `listening` runs once the socket and `hold` are
    open, and returns settings to add to uvicorn's (`serve` passes its connection guard and limits,
    and logs them then, so a refusal at start stays the only line).

    Raises:
        ConfigurationError: If `prepare` cannot open, the address cannot be had (`_listen`), or `hold` cannot open.
    """
    import uvicorn

    async def run() -> None:
        async with prepare():
            listeners = _listen(host, port, command)
            try:

                async def serve() -> None:
                    uvicorn_config = uvicorn.Config(
                        app,
                        host=host,
                        port=port,
                        log_config=None,
                        log_level="warning",
                        access_log=False,
                        lifespan="on",
                        **listening(),
                    )
                    server = uvicorn.Server(uvicorn_config)

                    async def announce_when_started() -> None:
                        while not server.started:  # uvicorn offers a flag, not an event
                            if server.should_exit:
                                return
                            await anyio.sleep(0.05)
                        bound = server.servers[0].sockets[0].getsockname()[1]
                        announce(f"http://{f'[{host}]' if ':' in host else host}:{bound}")

                    async with anyio.create_task_group() as tg:
                        tg.start_soon(announce_when_started)
                        await server.serve(sockets=listeners)
                        tg.cancel_scope.cancel()

                await _opened(hold, serve)
            finally:
                for listener in listeners:
                    listener.close()

    anyio.run(run)


def _sandbox_app(args: argparse.Namespace, command: str, **options: Any) -> Starlette:
    """The sandbox app of `--db` and `--contacts`, and `options` for `create_app`.

    Raises:
        ConfigurationError: If `--db` cannot hold a sandbox, or an option is refused; naming what to change.
    """
    from .sandbox import create_app
    from .sandbox.store import UnusableDatabase

    try:
        return create_app(db_path=args.db, contacts=args.contacts, **options)
    except UnusableDatabase as exc:
        raise ConfigurationError(
            f"{command}: --db {exc}; give a new file in an existing directory or an earlier sandbox's file "
            "(e.g. --db sandbox.sqlite3), or leave --db out for a sandbox in memory"
        ) from None
    except ValueError as exc:
        raise ConfigurationError(f"{command}: {exc}") from None


def _control_token(host: str, allow_remote: bool) -> tuple[str | None, bool]:
    """The token the sandbox's control routes will need, and whether it was generated here (to show it once).

    None on loopback, unless one is set in the environment; off loopback, that one or a generated one.

    Raises:
        ConfigurationError: If `host` is off loopback without `--allow-remote`, or the token set is too short.
    """
    from .binds import is_loopback  # deferred with the rest of the sandbox; loads no MCP or HTTP module

    remote = not is_loopback(host)
    if remote and not allow_remote:
        raise ConfigurationError(
            f"contacts-mcp sandbox: refusing to listen on {host!r}, off this machine: anyone who can reach it could "
            "switch its faults and read and write its data. Bind 127.0.0.1 (the default), or pass --allow-remote, "
            "which puts /_sandbox/faults behind a token"
        )
    given = os.environ.get(SANDBOX_TOKEN_VARIABLE, "").strip()
    if given and len(given) < MIN_TOKEN_CHARS:
        raise ConfigurationError(
            f"contacts-mcp sandbox: {SANDBOX_TOKEN_VARIABLE} must be at least {MIN_TOKEN_CHARS} characters; make one "
            "with `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`, or unset it to have one generated"
        )
    if given or not remote:
        return given or None, False
    return secrets.token_urlsafe(32), True


def _run_sandbox(args: argparse.Namespace) -> int:
    from .binds import bind_host
    from .sandbox import extra_accounts, sandbox_accounts, sandbox_environment
    from .sandbox.faults import Faults

    token, generated = _control_token(args.host, args.allow_remote)
    limits: dict[str, tuple[Rate, ...]] = {}
    try:
        for text in args.rate_limit:
            limits.update(parse_rate_limits(text))
        faults = Faults(
            kinds=args.faults or (),
            rate=args.fault_rate,
            route=args.fault_route,
            retry_after=args.fault_retry_after,
            delay=args.fault_delay,
            large_bytes=args.fault_size,
        )
    except ValueError as exc:
        raise ConfigurationError(f"contacts-mcp sandbox: {exc}") from None
    app = _sandbox_app(
        args,
        "contacts-mcp sandbox",
        rate_limits={name: (rates[0].count, rates[0].seconds) for name, rates in limits.items()},
        faults=faults,
        control_token=token,
        accounts=extra_accounts(args.accounts),
    )

    def announce(root: str) -> None:
        print(f"contacts-mcp sandbox on {root} ({args.contacts} generated contacts in {args.db})", flush=True)
        env = sandbox_environment(root)
        for vendor in ("COMETLY_", "HIGHLEVEL_", "CLEMTA_"):
            shown = "  ".join(f"{name}={value}" for name, value in env.items() if name.startswith(vendor))
            print(f"  {shown}", flush=True)
        for account in (item for item in sandbox_accounts(app) if item.name != "default"):
            scope = account.location_id or account.company_id
            named = f" {'location_id' if account.location_id else 'company_id'}={scope}" if scope else ""
            zone = f" timezone={account.timezone}" if account.provider != "highlevel" else ""
            print(
                f"  [accounts.{account.name}] provider={account.provider} key={account.key} "
                f"base_url={account.base_url(root)}{named}{zone}",
                flush=True,
            )
        if faults.kinds:
            where = f" on paths containing {faults.route!r}" if faults.route else ""
            print(
                f"  failing {faults.rate:.0%} of requests{where} with {', '.join(faults.kinds)}; "
                f"switch with POST {root}/_sandbox/faults",
                flush=True,
            )
        if token is not None:  # the generated token is shown this once, never logged
            shown = token if generated else f"${SANDBOX_TOKEN_VARIABLE}"
            print(f"  control: {root}/_sandbox/faults needs Authorization: Bearer {shown}", flush=True)

    host = bind_host(args.host)
    _run_uvicorn(app, host=host, port=args.port, announce=announce, command="contacts-mcp sandbox")
    return 0


async def _print_tools(settings: Settings, as_json: bool, server: ContactsServer | None = None) -> int:
    from mcp import Client

    from .app import build_server, configured_providers
    from .providers import PROVIDERS

    if server is None:
        providers = configured_providers(settings)
        if not providers:
            print(
                "contacts-mcp: no provider is configured; these are the tools every provider serves.", file=sys.stderr
            )
            providers = list(PROVIDERS.values())
        server = build_server(settings, providers=providers)
    async with Client(server) as client:
        listed = await client.list_tools()
    if as_json:
        print(json.dumps(listed.model_dump(mode="json", by_alias=True, exclude_none=True)["tools"], indent=2))
        return 0
    for tool in listed.tools:
        hints = tool.annotations
        kind = "read-only" if hints and hints.read_only_hint else "writes"
        print(f"{tool.name}  ({kind})")
        properties: dict[str, Any] = tool.input_schema.get("properties", {})
        required = set(tool.input_schema.get("required", []))
        for name, schema in properties.items():
            default = "" if name in required else f" = {json.dumps(schema.get('default'))}"
            print(f"    {name}{default}")
        print(textwrap.indent(textwrap.fill(tool.description or "", width=96), "    # "))
        print()
    return 0


async def _call(settings: Settings, tool: str, raw_arguments: str, server: ContactsServer | None = None) -> int:
    from mcp import Client

    from .app import build_server

    try:
        arguments = json.loads(raw_arguments)
    except json.JSONDecodeError as exc:
        print(
            f'contacts-mcp: the arguments are not JSON ({exc.msg}); e.g. \'{{"contact_id": "4821"}}\'', file=sys.stderr
        )
        return EXIT_CONFIGURATION
    if not isinstance(arguments, dict):
        print("contacts-mcp: the arguments must be a JSON object", file=sys.stderr)
        return EXIT_CONFIGURATION
    async with Client(server or build_server(settings)) as client:
        result = await client.call_tool(tool, arguments)  # pyright: ignore[reportUnknownArgumentType]
    for block in result.content:
        print(getattr(block, "text", block))
    return 1 if result.is_error else 0
