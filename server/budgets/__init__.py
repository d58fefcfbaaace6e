"""Rate budgets behind one interface (`base.Budget`), with two backends.

- `memory`: one process's budgets, the default; nothing to set up.
- `redis_backend`: every process on the same Redis shares each budget atomically, on the Redis
  server's clock (`CONTACTS_MCP_REDIS_URL`).

The rule they keep, and why, is in `base`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import asynccontextmanager

from .base import (
    Budget,
    Budgets,
    BudgetSpec,
    Observation,
    WaitReporter,
    check_overrides,
    fingerprint,
    wait_reporter,
)
from .memory import MemoryBudget

__all__ = [
    "Budget",
    "BudgetSpec",
    "Budgets",
    "MemoryBudget",
    "Observation",
    "WaitReporter",
    "check_overrides",
    "fingerprint",
    "open_budgets",
    "wait_reporter",
]


@asynccontextmanager
async def open_budgets(specs: Mapping[str, BudgetSpec], *, redis_url: str | None = None) -> AsyncGenerator[Budgets]:
    """The budgets for `specs`: kept in this process, or shared through Redis when `redis_url` is set.

    Raises:
        ConfigurationError: If Redis is configured but cannot be reached.
    """
    if redis_url is None:
        yield Budgets({name: MemoryBudget(name, spec.rates, may_rise=spec.may_rise) for name, spec in specs.items()})
        return
    from .redis_backend import RedisStore  # only when configured: the client is not small

    async with RedisStore.connect(redis_url) as store:
        yield Budgets(
            {
                name: store.budget(name, spec.rates, account=spec.account, may_rise=spec.may_rise)
                for name, spec in specs.items()
            }
        )
