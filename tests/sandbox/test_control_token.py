"""The fault switch behind a token: `create_app(control_token=...)` guards GET and POST /_sandbox/faults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette

from contacts_mcp.server.sandbox import create_app, sandbox_of
from tests.sandbox.support import COMETLY, NOW, UNLIMITED, client_for

pytestmark = pytest.mark.anyio

TOKEN = "control-token-0123456789abcdef"
CONTROL = "/_sandbox/faults"
CONTACT = "/cometly/public-api/v1/contacts/10001"


@pytest.fixture
def guarded() -> Iterator[Starlette]:
    app = create_app(contacts=5, now=NOW, rate_limits=UNLIMITED, control_token=TOKEN)
    yield app
    sandbox_of(app).store.close()


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": TOKEN}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({"Authorization": "Basic " + TOKEN}, 401),
        ({"Authorization": "Bearer " + TOKEN[:-1]}, 403),
        ({"Authorization": "Bearer " + TOKEN + "x"}, 403),
        ({"Authorization": "Bearer " + TOKEN}, 200),
        ({"Authorization": "bearer  " + TOKEN + " "}, 200),
    ],
)
async def test_the_control_routes_answer_only_the_right_bearer_token(
    guarded: Starlette, method: str, headers: dict[str, str], status: int
) -> None:
    async with client_for(guarded) as http:
        answer = await http.request(method, CONTROL, json={"kinds": ["500"]}, headers=headers)
        contact = await http.get(CONTACT, headers=COMETLY)

    assert answer.status_code == status
    assert TOKEN not in answer.text
    switched = method == "POST" and status == 200
    assert contact.status_code == (500 if switched else 200), "only an accepted POST switches the faults"


async def test_without_a_token_the_control_routes_stay_open_as_before() -> None:
    app = create_app(contacts=5, now=NOW, rate_limits=UNLIMITED)
    try:
        async with client_for(app) as http:
            answer = await http.post(CONTROL, json={"kinds": []})
    finally:
        sandbox_of(app).store.close()

    assert answer.status_code == 200
