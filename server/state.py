"""What the lifespan hands every tool call: the configured providers and their budgets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from server.budgets import Budgets
from server.errors import NotSupported
from server.providers.base import Provider


@dataclass(frozen=True)
class AppState:
    """The server's shared state for its whole life (one per process under stdio and HTTP)."""

    providers: Mapping[str, Provider]
    budgets: Budgets

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
