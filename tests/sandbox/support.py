"""What the sandbox tests share: the pinned clock, keys as headers, paths, and how to reach an app."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

import httpx
from starlette.applications import Starlette

from contacts_mcp.server.sandbox import DEFAULT_RATE_LIMITS, SANDBOX_KEYS

NOW = datetime(2026, 3, 15, 12, 0, 0, tzinfo=UTC)
"""The pinned "now" of every test app: noon, so the seconds a test takes never change the day."""

SEED = 1
COUNT = 500
UNLIMITED = dict.fromkeys(DEFAULT_RATE_LIMITS, (1000000, 60.0))
"""Budgets no test reaches, for tests about something other than rate limits."""

COMETLY = {"Authorization": f"Bearer {SANDBOX_KEYS['cometly']}"}
HIGHLEVEL = {"Authorization": f"Bearer {SANDBOX_KEYS['highlevel']}", "Version": "2021-07-28"}
CLEMTA = {"X-API-Key": SANDBOX_KEYS["clemta"]}
CONTACTS_PATH = "/cometly/public-api/v1/contacts"
EVERYTHING = {"start_date": "2025-01-01 00:00:00", "end_date": "2026-12-31 23:59:59"}
"""List bounds that hold every generated contact."""


def client_for(app: Starlette) -> httpx.AsyncClient:
    """An HTTP client talking to `app` in process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox")


class MakeApp(Protocol):
    """Builds a sandbox app the test owns (closed at teardown); defaults: 20 contacts, NOW, no limits hit."""

    def __call__(
        self,
        *,
        contacts: int = 20,
        db_path: str = ":memory:",
        seed: int = SEED,
        rate_limits: Mapping[str, tuple[int, float]] | None = None,
    ) -> Starlette: ...
