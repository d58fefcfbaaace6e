"""What the lifespan hands every tool call (the configured providers and their budgets), and its sharing."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio

from .budgets import Budgets
from .errors import NotSupported
from .providers.base import Provider


@dataclass(frozen=True)
class AppState:
    """The server's shared state for its whole life (one per process under stdio and HTTP)."""

    providers: Mapping[str, Provider]
    budgets: Budgets
    max_result_chars: int = 80_000
    """The ceiling for one result's text (`CONTACTS_MCP_MAX_RESULT_TOKENS` x 4)."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The current moment, aware; date words ("today", "last week") are resolved against it."""
    accounts: Mapping[tuple[str, str], Provider] = field(default_factory=dict[tuple[str, str], Provider])
    """With an accounts file: each named account's provider instance by (provider, name), `default` ones first
    (each provider's environment account is named `default`); else empty."""
    account_budgets: Mapping[tuple[str, str], Budgets] = field(default_factory=dict[tuple[str, str], Budgets])
    """With an accounts file: each named account's budgets by (provider, name), shared by accounts on one key."""

    def provider(self, name: str) -> Provider:
        """The provider called `name`.

        Raises:
            NotSupported: If it is not configured on this server.
        """
        try:
            return self.providers[name]
        except KeyError:
            configured = ", ".join(self.providers) or "none"
            raise NotSupported(
                f"provider {name!r} is not configured on this server (configured: {configured})."
            ) from None


class SharedState:
    """The server's lifespan: opens the budgets and providers once, however many sessions enter it.

    Under stdio and streamable HTTP the SDK enters the lifespan once per process; under SSE (and per
    in-memory client) once per connection, which would give each connection budgets of its own and
    let them add up past the upstream's limit. Every entry shares one `AppState`, opened by the
    first to enter and closed when the last leaves. The HTTP app holds one entry for its whole life
    (`hold`), so the state is opened and closed by the same task.
    """

    def __init__(self, open_state: Callable[[], AbstractAsyncContextManager[AppState]]) -> None:
        self._open_state = open_state
        self._lock = anyio.Lock()
        self._users = 0
        self._stack: AsyncExitStack | None = None
        self._state: AppState | None = None

    def __call__(self, _: Any) -> AbstractAsyncContextManager[AppState]:
        return self.hold()

    @asynccontextmanager
    async def hold(self) -> AsyncGenerator[AppState]:
        """Share the state (opening it if no one holds it) until the block ends."""
        async with self._lock:
            if self._state is None:
                stack = AsyncExitStack()
                self._state = await stack.enter_async_context(self._open_state())
                self._stack = stack
            self._users += 1
            state = self._state
        try:
            yield state
        finally:
            with anyio.CancelScope(shield=True):
                async with self._lock:
                    self._users -= 1
                    if self._users == 0 and self._stack is not None:
                        stack, self._stack, self._state = self._stack, None, None
                        await stack.aclose()
