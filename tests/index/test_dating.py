"""Exact dating against the sandbox, whose list (like Cometly's) shows no creation time: proof by bisection only."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import anyio
import pytest

from contacts_mcp.server.budgets.background import Priority
from contacts_mcp.server.errors import RateLimited
from contacts_mcp.server.index import dating
from contacts_mcp.server.index.base import Entry
from contacts_mcp.server.index.dating import exact_created_at
from contacts_mcp.server.providers.cometly import Cometly
from contacts_mcp.server.sandbox import sandbox_of
from tests.index.sync_support import ACCOUNT, NOW, cometly, make_sync, space, sqlite, truth

pytestmark = pytest.mark.anyio


class Counting:
    """Cometly, counting list requests and checking each window is one Cometly accepts (end after start)."""

    def __init__(self, source: Cometly) -> None:
        self._source = source
        self.zone = source.zone
        self.requests = 0

    async def list_entries(
        self,
        start: datetime,
        end: datetime,
        *,
        cursor: str | None = None,
        per_page: int = 5_000,
        priority: Priority | None = None,
    ) -> tuple[list[Entry], str | None]:
        assert end - start >= timedelta(seconds=1)
        self.requests += 1
        return await self._source.list_entries(start, end, cursor=cursor, per_page=per_page, priority=priority)


async def test_a_contact_dated_to_its_day_is_dated_to_the_second_in_about_17_requests(tmp_path: Path) -> None:
    app = space(contacts=200, span_days=30, timezone="America/Chicago")
    real = truth(app)
    with anyio.fail_after(60):
        async with sqlite(tmp_path / "index.db") as store, cometly(app=app, timezone="America/Chicago") as source:
            sync = make_sync(store, source)
            await sync.run()
            await sync.run(kinds=("date",))
            counting = Counting(source)
            picked = sorted(real)[::40]
            spent: list[int] = []
            for contact_id in picked:
                before = counting.requests
                moment = await exact_created_at(counting, store, ACCOUNT, contact_id, now=NOW)
                spent.append(counting.requests - before)
                assert moment == real[contact_id]
            held = await store.get(ACCOUNT, picked)
            again = await exact_created_at(counting, store, ACCOUNT, picked[0], now=NOW)

    assert all(held[i].created_after == held[i].created_before == real[i] for i in picked)
    assert max(spent) <= 19  # log2(86400) ~ 17, and a last confirming request at most
    assert again == real[picked[0]]  # known now: no request
    assert counting.requests == sum(spent)


async def test_a_contact_the_index_has_never_seen_is_dated_from_all_of_history(tmp_path: Path) -> None:
    app = space(contacts=50, span_days=10)
    real = truth(app)
    contact_id = sorted(real)[7]
    with anyio.fail_after(60):
        async with sqlite(tmp_path / "index.db") as store, cometly(app=app) as source:
            moment = await exact_created_at(Counting(source), store, ACCOUNT, contact_id, now=NOW)

    assert moment == real[contact_id]


async def test_a_contact_deleted_upstream_is_not_dated_but_reported_gone(tmp_path: Path) -> None:
    app = space(contacts=80, span_days=10)
    real = truth(app)
    contact_id = sorted(real)[20]
    with anyio.fail_after(60):
        async with sqlite(tmp_path / "index.db") as store, cometly(app=app) as source:
            await make_sync(store, source).run()
            sandbox_of(app).store.delete([int(contact_id)])
            moment = await exact_created_at(Counting(source), store, ACCOUNT, contact_id, now=NOW)
            held = (await store.get(ACCOUNT, [contact_id]))[contact_id]

    assert moment is None
    assert held.created_after != held.created_before  # nothing was concluded from the answers that lacked it


async def test_a_half_holding_more_than_one_page_is_walked_by_its_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dating, "PER_PAGE", 3)
    app = space(times=[int(NOW.timestamp()) - 3600 + n for n in range(0, 40, 2)])
    real = truth(app)
    contact_id = sorted(real, key=int)[0]  # the oldest: the last of every page, id descending
    with anyio.fail_after(60):
        async with sqlite(tmp_path / "index.db") as store, cometly(app=app) as source:
            moment = await exact_created_at(Counting(source), store, ACCOUNT, contact_id, now=NOW)

    assert moment == real[contact_id]


class Limited(Counting):
    """Counting, with a budget that runs out after `room` list requests, as Cometly's 15 a minute does."""

    def __init__(self, source: Cometly, room: int) -> None:
        super().__init__(source)
        self.room = room

    async def list_entries(
        self,
        start: datetime,
        end: datetime,
        *,
        cursor: str | None = None,
        per_page: int = 5_000,
        priority: Priority | None = None,
    ) -> tuple[list[Entry], str | None]:
        if self.requests >= self.room:
            raise RateLimited("The rate budget cometly.list_contacts is used up.", retry_after=30)
        return await super().list_entries(start, end, cursor=cursor, per_page=per_page, priority=priority)


async def test_a_dating_stopped_by_the_budget_goes_on_from_what_it_proved(tmp_path: Path) -> None:
    app = space(contacts=100, span_days=20)
    real = truth(app)
    contact_id = sorted(real)[50]
    with anyio.fail_after(60):
        async with sqlite(tmp_path / "index.db") as store, cometly(app=app) as source:
            sync = make_sync(store, source)
            await sync.run()
            await sync.run(kinds=("date",))
            fresh = Counting(source)
            assert await exact_created_at(fresh, store, ACCOUNT, contact_id, now=NOW) == real[contact_id]
            other = sorted(real)[60]
            first = Limited(source, room=8)
            with pytest.raises(RateLimited):
                await exact_created_at(first, store, ACCOUNT, other, now=NOW)
            second = Counting(source)
            moment = await exact_created_at(second, store, ACCOUNT, other, now=NOW)

    assert moment == real[other]
    assert first.requests == 8
    assert second.requests <= fresh.requests - 8 + 2  # it went on, it did not start again
