"""The sandbox's update endpoints follow the vendors' contracts: Cometly's sparse PUT, HighLevel's PUT and tag
endpoints, Clemta's PATCH (every answer here is also judged against the contract by the suite's hooks)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette

from contacts_mcp.server.sandbox import CLEMTA_COMPANY_ID, sandbox_of
from contacts_mcp.server.sandbox.highlevel import CUSTOM_FIELD_IDS
from tests.sandbox.support import CLEMTA, COMETLY, CONTACTS_PATH, HIGHLEVEL, MakeApp, client_for

pytestmark = pytest.mark.anyio


def first_row(app: Starlette) -> Any:
    store = sandbox_of(app).store
    return store.contact(min(store.creation_times()))


async def test_a_cometly_put_replaces_only_the_collections_sent_and_the_first_becomes_primary(
    make_app: MakeApp,
) -> None:
    app = make_app()
    row = first_row(app)
    async with client_for(app) as http:
        before = (await http.get(f"{CONTACTS_PATH}/{row.id}", headers=COMETLY)).json()
        put = await http.put(
            f"{CONTACTS_PATH}/{row.id}", headers=COMETLY, json={"phones": ["+14155550100", "+14155550101"], "names": []}
        )
        after = (await http.get(f"{CONTACTS_PATH}/{row.id}", headers=COMETLY)).json()

    assert put.status_code == 200
    assert set(put.json()) == {"id", "phones", "names"}  # what was not sent is not echoed
    assert [item["phone"] for item in after["phones"]] == ["+14155550100", "+14155550101"]
    assert after["names"] == []  # [] wipes the collection
    assert after["emails"] == before["emails"]
    assert after["custom_fields"] == before["custom_fields"]
    stored = sandbox_of(app).store.contact(row.id)
    assert stored is not None
    assert stored.phone == "+14155550100"


async def test_a_cometly_put_of_custom_fields_replaces_all_30_slots(make_app: MakeApp) -> None:
    app = make_app()
    row = first_row(app)
    async with client_for(app) as http:
        put = await http.put(
            f"{CONTACTS_PATH}/{row.id}", headers=COMETLY, json={"custom_fields": {"profile_field_5": "Premium"}}
        )
        after = (await http.get(f"{CONTACTS_PATH}/{row.id}", headers=COMETLY)).json()

    assert put.status_code == 200
    assert len(put.json()["custom_fields"]) == 30
    assert {key: value for key, value in after["custom_fields"].items() if value is not None} == {
        "profile_field_5": "Premium"
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "emails"),
        ({"custom_fields": {"plan": "x"}}, "custom_fields"),
        ({"custom_fields": {"profile_field_20": "lots"}}, "custom_fields.profile_field_20"),
        ({"emails": ["not-an-email"]}, "emails.0"),
    ],
)
async def test_a_cometly_put_with_bad_keys_or_types_is_a_422_and_changes_nothing(
    make_app: MakeApp, body: dict[str, Any], field: str
) -> None:
    app = make_app()
    row = first_row(app)
    async with client_for(app) as http:
        before = (await http.get(f"{CONTACTS_PATH}/{row.id}", headers=COMETLY)).json()
        put = await http.put(f"{CONTACTS_PATH}/{row.id}", headers=COMETLY, json=body)
        after = (await http.get(f"{CONTACTS_PATH}/{row.id}", headers=COMETLY)).json()

    assert put.status_code == 422
    assert field in put.json()["errors"]
    assert after == before


async def test_a_cometly_put_on_a_merged_id_changes_the_canonical_contact_and_answers_its_id(
    make_app: MakeApp,
) -> None:
    app = make_app(contacts=200)
    store = sandbox_of(app).store
    with store._locked() as connection:  # pyright: ignore[reportPrivateUsage]
        merged, canonical = connection.execute("SELECT id, contact_id FROM merged_profiles LIMIT 1").fetchone()
    async with client_for(app) as http:
        put = await http.put(f"{CONTACTS_PATH}/{merged}", headers=COMETLY, json={"locations": ["Austin, TX"]})
        missing = await http.put(f"{CONTACTS_PATH}/999999", headers=COMETLY, json={"locations": ["x"]})

    assert put.status_code == 200
    assert put.json()["id"] == canonical
    stored = store.contact(canonical)
    assert stored is not None
    assert stored.location == "Austin, TX"
    assert missing.status_code == 404


async def test_a_highlevel_put_takes_its_documented_keys_and_answers_succeded(make_app: MakeApp) -> None:
    app = make_app()
    row = first_row(app)
    path = f"/highlevel/contacts/{row.highlevel_id}"
    seats = CUSTOM_FIELD_IDS[16]
    async with client_for(app) as http:
        put = await http.put(
            path, headers=HIGHLEVEL, json={"source": "webinar", "customFields": [{"id": seats, "field_value": 7}]}
        )
        refused = await http.put(path, headers=HIGHLEVEL, json={"companyName": "Acme", "locationId": "x"})
        missing = await http.put("/highlevel/contacts/NoSuchContact0000001", headers=HIGHLEVEL, json={"source": "x"})

    assert put.status_code == 200
    assert put.json()["succeded"] is True
    contact = put.json()["contact"]
    assert contact["source"] == "webinar"
    assert {"id": seats, "value": "7"} in contact["customFields"]
    assert refused.status_code == 422
    assert refused.json()["message"] == [
        "property companyName should not exist",
        "property locationId should not exist",
    ]
    assert missing.status_code == 404


async def test_highlevel_tags_are_added_and_removed_by_their_endpoints_and_answer_the_whole_set(
    make_app: MakeApp,
) -> None:
    app = make_app()
    row = first_row(app)
    path = f"/highlevel/contacts/{row.highlevel_id}/tags"
    async with client_for(app) as http:
        added = await http.post(path, headers=HIGHLEVEL, json={"tags": ["Hot-Lead"]})
        removed = await http.request("DELETE", path, headers=HIGHLEVEL, json={"tags": ["hot-lead"]})
        empty = await http.post(path, headers=HIGHLEVEL, json={})

    assert added.status_code == 201
    assert added.json()["tags"] == [*row.profile.tags, "hot-lead"]
    assert removed.status_code == 200
    assert removed.json()["tags"] == list(row.profile.tags)
    assert empty.status_code == 422


async def test_a_clemta_patch_needs_its_four_keys_and_keeps_what_it_leaves_out(make_app: MakeApp) -> None:
    app = make_app()
    row = first_row(app)
    path = f"/clemta/contacts/{row.clemta_id}"
    async with client_for(app) as http:
        before = (await http.get(path, headers=CLEMTA)).json()["data"]
        missing = await http.patch(path, headers=CLEMTA, json={"status": "inactive"})
        patched = await http.patch(
            path,
            headers=CLEMTA,
            json={
                "type": before["type"],
                "full_name": before["full_name"],
                "email": before["email"],
                "company_id": CLEMTA_COMPANY_ID,
                "status": "inactive",
            },
        )

    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "VALIDATION_FAILED"
    assert patched.status_code == 200
    body = patched.json()
    assert (body["success"], body["message"]) == (True, "Contact updated successfully")
    after = body["data"]
    assert after["status"] == "inactive"
    assert {key: after[key] for key in ("description", "cc_emails", "billing")} == {
        key: before[key] for key in ("description", "cc_emails", "billing")
    }
