"""update_contact against the in-process sandbox: only what is named changes, and what reaches each vendor.

The property test draws a contact and one change of each kind each provider takes, and compares a
full get_contact before and after: every value not named is exactly as it was, the named one is as
asked. The other tests look at what was sent (the sandbox's requests, recorded by a transport).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from mcp import Client
from starlette.applications import Starlette

from contacts_mcp.server.budgets import BudgetSpec, fingerprint, open_budgets
from contacts_mcp.server.errors import Conflict, NotFound, UpstreamUnavailable, ValidationFailed
from contacts_mcp.server.providers.base import Provider
from contacts_mcp.server.providers.clemta import Clemta
from contacts_mcp.server.providers.cometly import Cometly
from contacts_mcp.server.providers.highlevel import HighLevel
from contacts_mcp.server.sandbox import create_app, sandbox_of, sandbox_settings
from contacts_mcp.server.settings import Rate, Settings
from contacts_mcp.tools.models import Contact, GetContactQuery
from contacts_mcp.tools.updates import Collection, ContactChanges, UpdateFields
from tests.conftest import sandboxed_server, text_of
from tests.sandbox.support import NOW, UNLIMITED

CONTACTS = 30
DRAWN_FROM = 15
"""The property test changes contacts from this index on; the tests that look at one contact take one before it."""
EXAMPLES = 20
Sent = list[tuple[str, str, Any]]
Draw = Callable[[SearchStrategy[Any]], Any]


@pytest.fixture(scope="module")
def app() -> Iterator[Starlette]:
    made = create_app(contacts=CONTACTS, now=NOW, rate_limits=UNLIMITED)
    yield made
    sandbox_of(made).store.close()


class Recording(httpx.AsyncBaseTransport):
    """The sandbox in process, keeping each request's method, path and JSON body."""

    def __init__(self, app: Starlette, sent: Sent, before_write: Any = None) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._sent = sent
        self._before_write = before_write

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self._sent.append((request.method, request.url.path, body))
        if request.method != "GET" and self._before_write is not None:
            self._before_write()
        return await self._inner.handle_async_request(request)


@asynccontextmanager
async def provider(
    cls: type[Provider],
    app: Starlette,
    sent: Sent | None = None,
    before_write: Any = None,
    transport: type[Recording] = Recording,
) -> AsyncGenerator[Any]:
    """The provider against the sandbox, with budgets no test reaches."""
    settings = Settings(**sandbox_settings("http://sandbox"))
    account = fingerprint(cls.account(settings))
    specs = {name: BudgetSpec(rates=(Rate(1_000_000, 60.0),), account=account) for name in cls.default_budgets}
    async with open_budgets(specs) as budgets:
        made = cls.from_settings(
            settings,
            budgets=budgets,
            transport=transport(app, [] if sent is None else sent, before_write),
            clock=lambda: NOW,
        )
        try:
            yield made
        finally:
            await made.aclose()


def ids_of(app: Starlette, cls: type[Provider]) -> list[str]:
    store = sandbox_of(app).store
    rows = [store.contact(contact_id) for contact_id in sorted(store.creation_times())]
    if cls is Cometly:
        return [str(row.id) for row in rows if row]
    return [row.highlevel_id if cls is HighLevel else row.clemta_id for row in rows if row]


async def full(made: Any, contact_id: str) -> dict[str, Any]:
    contact: Contact = await made.get_contact(GetContactQuery(contact_id=contact_id, use_custom_field_labels=False))
    return contact.model_dump(exclude={"updated_at"})


def cometly_change(draw: Draw, before: dict[str, Any]) -> tuple[ContactChanges, list[str]]:
    """One change Cometly takes, and the paths of `full()` it may touch."""
    kind = draw(st.sampled_from(["slot", "label", "clear", "add", "remove"]))
    key: Collection = draw(st.sampled_from(["emails", "phones", "names", "locations"]))
    index = draw(st.integers(0, 24))
    if kind in ("slot", "clear"):
        number = draw(st.integers(1, 30))
        slot = f"profile_field_{number}"
        value: Any = None
        if kind == "slot":
            value = (
                draw(st.text("abcxyz ", min_size=1, max_size=8)).strip() or "v"
                if number <= 15
                else draw(st.integers(1, 10_000))
                if number <= 25
                else draw(st.dates().map(lambda day: day.isoformat()).filter(lambda text: text >= "1000"))
            )
        return ContactChanges(contact_id=before["id"], custom_fields={slot: value}), [f"custom_fields.{slot}"]
    if kind == "label":
        label, slot = draw(st.sampled_from([("Customer Plan", "profile_field_5"), ("Seats", "profile_field_16")]))
        value = "Premium" if slot == "profile_field_5" else draw(st.integers(1, 99))
        return ContactChanges(contact_id=before["id"], custom_fields={label.lower(): value}), [f"custom_fields.{slot}"]
    if kind == "remove" and before[key]:
        return ContactChanges(contact_id=before["id"], remove={key: [before[key][index % len(before[key])]]}), [key]
    new = {"emails": "added@example.com", "phones": "+14155550199", "names": "Added Name", "locations": "Added, TX"}
    return ContactChanges(contact_id=before["id"], add={key: [new[key]]}), [key]


def highlevel_change(draw: Draw, before: dict[str, Any]) -> tuple[ContactChanges, list[str]]:
    kind = draw(st.sampled_from(["field", "custom", "tag_add", "tag_remove", "email"]))
    index = draw(st.integers(0, 24))
    cid = before["id"]
    if kind == "field":
        name = draw(st.sampled_from(["source", "website", "first_name", "last_name"]))
        value = draw(st.sampled_from(["webinar", "https://example.com", "Ana", None]))
        theirs = {"source": "source", "website": "website", "first_name": "firstName", "last_name": "lastName"}
        return ContactChanges(contact_id=cid, fields=UpdateFields.model_validate({name: value})), [
            f"highlevel.{theirs[name]}"
        ]
    if kind == "custom":
        name, value = draw(st.sampled_from([("Customer Plan", "Premium"), ("seats", 7), ("Lifetime Value", None)]))
        return ContactChanges(contact_id=cid, custom_fields={name: value}), ["custom_fields"]
    if kind == "email" and before["emails"]:
        changes = ContactChanges(
            contact_id=cid, remove={"emails": before["emails"]}, add={"emails": ["new@example.com"]}
        )
        return changes, ["emails", "highlevel.emailLowerCase"]
    details: dict[str, Any] = before.get("highlevel") or {}
    held: list[str] = details.get("tags") or []
    if kind == "tag_remove" and held:
        return ContactChanges(contact_id=cid, remove={"tags": [held[index % len(held)]]}), ["highlevel.tags"]
    return ContactChanges(contact_id=cid, add={"tags": ["hot-lead"]}), ["highlevel.tags"]


def clemta_change(draw: Draw, before: dict[str, Any]) -> tuple[ContactChanges, list[str]]:
    kind = draw(st.sampled_from(["status", "description", "tax_id", "type", "cc_add", "cc_remove", "name"]))
    index = draw(st.integers(0, 24))
    cid = before["id"]
    if kind in ("status", "description", "tax_id"):
        value = draw(
            st.sampled_from(["inactive", "Changed text", None] if kind != "status" else ["inactive", "active"])
        )
        path = "clemta.billing.tax_id" if kind == "tax_id" else f"clemta.{kind}"
        return ContactChanges(contact_id=cid, fields=UpdateFields.model_validate({kind: value})), [path]
    if kind == "type":
        value = draw(st.sampled_from(["customer", "vendor"]))
        return ContactChanges(contact_id=cid, fields=UpdateFields.model_validate({"contact_type": value})), [
            "clemta.type"
        ]
    if kind == "cc_remove" and len(before["emails"]) > 1:
        gone = before["emails"][1:][index % (len(before["emails"]) - 1)]
        return ContactChanges(contact_id=cid, remove={"emails": [gone]}), ["emails", "clemta.cc_emails"]
    if kind == "name":
        changes = ContactChanges(contact_id=cid, remove={"names": before["names"]}, add={"names": ["Renamed Person"]})
        return changes, ["names"]
    return ContactChanges(contact_id=cid, add={"emails": ["cc.added@example.com"]}), ["emails", "clemta.cc_emails"]


def dropped(shown: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """`shown` without the values at `paths` (dotted), for comparing everything else."""
    copy: dict[str, Any] = json.loads(json.dumps(shown))
    for dotted in paths:
        node: Any = copy
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.get(part) or {}
        if isinstance(node, dict):
            cast(dict[str, Any], node).pop(last, None)
    return copy


Change = Callable[[Draw, dict[str, Any]], tuple[ContactChanges, list[str]]]
CHANGES: dict[type[Provider], Change] = {Cometly: cometly_change, HighLevel: highlevel_change, Clemta: clemta_change}


@pytest.mark.parametrize("cls", [Cometly, HighLevel, Clemta], ids=lambda cls: cls.name)
def test_an_update_changes_exactly_what_it_names(app: Starlette, cls: type[Provider]) -> None:
    ids = ids_of(app, cls)[DRAWN_FROM:]  # the other tests change the first contacts, each its own

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        contact_id = data.draw(st.sampled_from(ids))

        async def run() -> None:
            async with provider(cls, app) as made:
                before = await full(made, contact_id)
                changes, paths = CHANGES[cls](data.draw, before)
                try:
                    result = await made.update(changes)
                except ValidationFailed as exc:  # a full list (25 shown), a Clemta contact with no name
                    refused = exc.message
                    assert "at most 25" in refused or "requires the contact's" in refused
                    assert await full(made, contact_id) == before
                    return
                after = await full(made, contact_id)
            assert dropped(after, paths) == dropped(before, paths)
            asked = [change for change in result.changes if change.changed]
            for change in asked:
                assert change.after != change.before

            def held(key: str) -> list[str]:
                section: dict[str, Any] = after.get("highlevel") or {}
                return list(section.get("tags") or []) if key == "tags" else list(after[key])

            for key, values in changes.add.items():
                for value in values:
                    assert any(value.casefold() == str(item).casefold() for item in held(key)), (key, value)
            for key, values in changes.remove.items():
                added = changes.add.get(key, [])
                assert not [value for value in values if value in held(key) and value not in added]
            for name, value in changes.custom_fields.items():
                [shown] = result.changes
                if value is None:
                    assert shown.after is None, (name, shown)
                elif isinstance(value, int):
                    assert float(str(shown.after)) == value, (name, shown)
                else:
                    assert str(shown.after).startswith(str(value)), (name, shown)
            assert result.contact.id == contact_id

        anyio.run(run)

    check()


# --- What is sent -------------------------------------------------------------------------------------------------


async def cometly_id(app: Starlette) -> str:
    return ids_of(app, Cometly)[0]


@pytest.mark.anyio
async def test_a_cometly_custom_field_put_carries_all_30_slots_with_the_others_unchanged(app: Starlette) -> None:
    contact_id = ids_of(app, Cometly)[1]
    sent: Sent = []
    async with provider(Cometly, app, sent) as made:
        before = sandbox_of(app).store.contact(int(contact_id))
        assert before is not None
        await made.update(ContactChanges(contact_id=contact_id, custom_fields={"Lifetime Value": 1234.5}))

    [(_, _, body)] = [entry for entry in sent if entry[0] == "PUT"]
    assert list(body) == ["custom_fields"]  # no collection was touched, so none is sent
    # Every slot that has a value (one left out becomes null), as it was but the one named.
    held = {f"profile_field_{slot}" for slot, value in before.custom_fields.items() if value not in (None, "")}
    assert set(body["custom_fields"]) == held | {"profile_field_17"}
    assert body["custom_fields"]["profile_field_17"] == 1234.5
    for slot, expected in before.custom_fields.items():
        if slot != 17 and expected not in (None, ""):
            shown = body["custom_fields"][f"profile_field_{slot}"]
            assert shown == expected or float(shown) == float(expected), slot


@pytest.mark.anyio
async def test_a_cometly_email_added_sends_only_the_emails_merged_with_the_primary_kept(app: Starlette) -> None:
    contact_id = ids_of(app, Cometly)[2]
    sent: Sent = []
    async with provider(Cometly, app, sent) as made:
        before = await full(made, contact_id)
        result = await made.update(ContactChanges(contact_id=contact_id, add={"emails": ["work@example.com"]}))

    [(_, _, body)] = [entry for entry in sent if entry[0] == "PUT"]
    assert body == {"emails": [*before["emails"], "work@example.com"]}
    assert result.contact.emails[0] == before["emails"][0]
    assert [(c.field, c.changed) for c in result.changes] == [("emails", True)]


@pytest.mark.anyio
async def test_no_write_is_sent_when_nothing_changes(app: Starlette) -> None:
    cometly_id, highlevel_id, clemta_id = (ids_of(app, cls)[3] for cls in (Cometly, HighLevel, Clemta))
    sent: Sent = []
    async with provider(Cometly, app, sent) as made:
        shown = await full(made, cometly_id)
        plan = shown["custom_fields"].get("profile_field_5")
        result = await made.update(
            ContactChanges(
                contact_id=cometly_id, custom_fields={"profile_field_5": plan}, add={"emails": shown["emails"][:1]}
            )
        )
    async with provider(HighLevel, app, sent) as made:
        shown = await full(made, highlevel_id)
        again = await made.update(ContactChanges(contact_id=highlevel_id, add={"emails": shown["emails"]}))
    async with provider(Clemta, app, sent) as made:
        shown = await full(made, clemta_id)
        third = await made.update(
            ContactChanges(contact_id=clemta_id, fields=UpdateFields(status=shown["clemta"]["status"]))
        )

    assert [method for method, _, _ in sent if method != "GET"] == []
    for answer in (result, again, third):
        assert answer.changed is False
        assert answer.note
        assert answer.note.startswith("Nothing to change")
        assert all(not change.changed for change in answer.changes)


@pytest.mark.anyio
async def test_highlevel_tags_go_through_the_tag_endpoints_and_the_put_carries_only_what_changed(
    app: Starlette,
) -> None:
    contact_id = ids_of(app, HighLevel)[4]
    sent: Sent = []
    async with provider(HighLevel, app, sent) as made:
        result = await made.update(
            ContactChanges(contact_id=contact_id, add={"tags": ["Hot-Lead"]}, fields=UpdateFields(source="webinar"))
        )

    writes = [(method, path.removeprefix("/highlevel"), body) for method, path, body in sent if method != "GET"]
    assert writes == [
        ("PUT", f"/contacts/{contact_id}", {"source": "webinar"}),
        ("POST", f"/contacts/{contact_id}/tags", {"tags": ["Hot-Lead"]}),
    ]
    assert "hot-lead" in (result.contact.highlevel.tags if result.contact.highlevel else None or [])


@pytest.mark.anyio
async def test_a_clemta_patch_carries_the_four_required_keys_and_every_optional_value_read(app: Starlette) -> None:
    contact_id = ids_of(app, Clemta)[5]
    sent: Sent = []
    async with provider(Clemta, app, sent) as made:
        before = await full(made, contact_id)
        status = "on hold" if before["clemta"]["status"] != "on hold" else "active"
        await made.update(ContactChanges(contact_id=contact_id, fields=UpdateFields(status=status)))

    [(_, _, body)] = [entry for entry in sent if entry[0] == "PATCH"]
    assert {"type", "full_name", "email", "company_id"} <= set(body)
    details = before["clemta"]
    assert body["status"] == status
    assert body["description"] == (details.get("description") or "")
    assert body["cc_emails"] == (details.get("cc_emails") or [])
    held: dict[str, Any] = details.get("billing") or {}
    billing = {key: value for key, value in held.items() if value}
    assert {key: body["billing"].get(key) for key in billing} == billing


# --- Conflicts and bad input --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_change_made_by_someone_else_between_the_read_and_the_write_is_a_conflict(app: Starlette) -> None:
    contact_id = ids_of(app, Cometly)[6]
    store = sandbox_of(app).store

    def meddle() -> None:  # someone renames the contact while the update is on its way
        store.update(int(contact_id), now=1, collections={"name": ["Someone Else"]})

    async with provider(Cometly, app, before_write=meddle) as made:
        with pytest.raises(Conflict) as caught:
            await made.update(ContactChanges(contact_id=contact_id, custom_fields={"Customer Plan": "Conflicted"}))

    assert "names was" in caught.value.message
    assert "Someone Else" in caught.value.message
    assert "get_contact" in caught.value.message


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("cls", "changes", "error", "mentions"),
    [
        (Cometly, {"custom_fields": {"No Such Field": "x"}}, ValidationFailed, "Customer Plan"),
        (Cometly, {"custom_fields": {"Seats": "many"}}, ValidationFailed, "must be a number"),
        (Cometly, {}, ValidationFailed, "names nothing"),
        (Cometly, {"add": {"tags": ["vip"]}}, ValidationFailed, "HighLevel only"),
        (HighLevel, {"add": {"locations": ["Austin"]}}, ValidationFailed, "Cometly only"),
        (HighLevel, {"fields": UpdateFields(company_name="Acme")}, ValidationFailed, "companyName"),
        (HighLevel, {"custom_fields": {"nope": 1}}, ValidationFailed, "describe_custom_fields"),
        (HighLevel, {"add": {"emails": ["second@example.com"]}}, ValidationFailed, "remove_emails"),
        (Clemta, {"custom_fields": {"Plan": "x"}}, ValidationFailed, "no custom fields"),
        (Clemta, {"remove": {"names": ["x"]}, "add": {}}, None, None),
    ],
)
async def test_bad_updates_are_refused_and_send_no_write(
    app: Starlette, cls: type[Provider], changes: dict[str, Any], error: type[Exception] | None, mentions: str | None
) -> None:
    contact_id = ids_of(app, cls)[7]
    sent: Sent = []
    async with provider(cls, app, sent) as made:
        if error is None:  # removing a name the contact does not have: nothing to change
            result = await made.update(ContactChanges(contact_id=contact_id, **changes))
            assert result.changed is False
        else:
            with pytest.raises(error) as caught:
                await made.update(ContactChanges(contact_id=contact_id, **changes))
            assert mentions is not None
            assert mentions in str(caught.value)

    assert [method for method, _, _ in sent if method != "GET"] == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("cls", "contact_id"), [(Cometly, "999999"), (HighLevel, "NoSuchContact0000001"), (Clemta, "0" * 24)]
)
async def test_an_unknown_contact_is_not_found_and_nothing_is_written(
    app: Starlette, cls: type[Provider], contact_id: str
) -> None:
    sent: Sent = []
    field: dict[str, Any] = (
        {"fields": UpdateFields(status="x")} if cls is Clemta else {"custom_fields": {"Customer Plan": "Premium"}}
    )
    async with provider(cls, app, sent) as made:
        with pytest.raises(NotFound):
            await made.update(ContactChanges(contact_id=contact_id, **field))

    assert [method for method, _, _ in sent if method != "GET"] == []


@pytest.mark.anyio
async def test_a_clear_the_vendor_answers_with_its_default_is_shown_as_read_not_a_conflict(app: Starlette) -> None:
    contact_id = ids_of(app, Clemta)[10]
    async with provider(Clemta, app) as made:
        await made.update(ContactChanges(contact_id=contact_id, fields=UpdateFields(status="inactive")))
        cleared = await made.update(ContactChanges(contact_id=contact_id, fields=UpdateFields(status=None)))

    [change] = cleared.changes
    assert (change.field, change.before, change.after, change.changed) == ("status", "inactive", "active", True)
    assert cleared.note == "status was cleared and Clemta set it to 'active'."


class FailingWrites(Recording):
    """The sandbox, but every write is answered 502 after it was recorded (it may have landed: unknown)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return await super().handle_async_request(request)
        body = json.loads(request.content) if request.content else None
        self._sent.append((request.method, request.url.path, body))
        return httpx.Response(502, text="<html>Bad Gateway</html>")


@pytest.mark.anyio
@pytest.mark.parametrize("cls", [Cometly, HighLevel, Clemta], ids=lambda cls: cls.name)
async def test_a_write_that_fails_is_sent_once_and_the_error_says_how_to_check_it(
    app: Starlette, cls: type[Provider]
) -> None:
    contact_id = ids_of(app, cls)[9]
    change = (
        ContactChanges(contact_id=contact_id, custom_fields={"Customer Plan": "Plan from a failed write"})
        if cls is Cometly
        else ContactChanges(contact_id=contact_id, fields=UpdateFields(source="a failed write"))
        if cls is HighLevel
        else ContactChanges(contact_id=contact_id, fields=UpdateFields(description="A failed write"))
    )
    sent: Sent = []
    async with provider(cls, app, sent, transport=FailingWrites) as made:
        with pytest.raises(UpstreamUnavailable) as caught:
            await made.update(change)

    writes = [(method, path) for method, path, _ in sent if method != "GET"]
    assert len(writes) == 1, writes
    assert "get_contact" in caught.value.message


# --- Through the tool --------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_tool_moves_a_lead_to_premium_by_label_and_shows_before_and_after(app: Starlette) -> None:
    contact_id = ids_of(app, Cometly)[8]
    sandbox_of(app).store.update(int(contact_id), now=1, slots={5: "Basic"})
    async with Client(sandboxed_server(app)) as client:
        result = await client.call_tool(
            "update_contact", {"contact_id": contact_id, "custom_fields": {"customer plan": "Premium"}}
        )

    assert not result.is_error, text_of(result)
    content = result.structured_content
    assert content is not None
    assert content["contact"]["custom_fields"]["Customer Plan"] == "Premium"
    assert content["changes"] == [{"field": "Customer Plan", "before": "Basic", "after": "Premium", "changed": True}]
