"""The sandbox's fault plan, in process: what it fails, in which order, and that it comes before keys and budgets."""

from __future__ import annotations

import json

import anyio
import pytest

from contacts_mcp.server.sandbox import Faults, sandbox_of
from tests.sandbox.support import COMETLY, CONTACTS_PATH, MakeApp, client_for

pytestmark = pytest.mark.anyio

CONTACT = f"{CONTACTS_PATH}/10001"


async def test_a_fault_comes_before_the_key_check_and_spends_no_rate_budget(make_app: MakeApp) -> None:
    app = make_app(rate_limits={"cometly.get_contact": (1, 60.0)})
    async with client_for(app) as http:
        sandbox_of(app).faults.set(Faults(kinds=("500",)))
        keyless = await http.get(CONTACT)
        faulted = await http.get(CONTACT, headers=COMETLY)
        sandbox_of(app).faults.clear()
        first = await http.get(CONTACT, headers=COMETLY)
        second = await http.get(CONTACT, headers=COMETLY)

    assert (keyless.status_code, faulted.status_code) == (500, 500)
    assert first.status_code == 200
    assert second.status_code == 429  # the one request the budget allows was the first unfaulted one


async def test_several_kinds_take_turns_in_the_order_given(make_app: MakeApp) -> None:
    app = make_app()
    sandbox_of(app).faults.set(Faults(kinds=("500", "503", "502-html"), retry_after=7))
    async with client_for(app) as http:
        answers = [await http.get(CONTACT, headers=COMETLY) for _ in range(4)]

    assert [answer.status_code for answer in answers] == [500, 503, 502, 500]
    assert answers[1].headers["Retry-After"] == "7"
    assert answers[2].headers["Content-Type"].startswith("text/html")
    assert [injection.kind for injection in sandbox_of(app).faults.injected] == ["500", "503", "502-html", "500"]


async def test_a_rate_below_one_fails_the_same_requests_for_the_same_seed(make_app: MakeApp) -> None:
    runs: list[list[int]] = []
    for _ in range(2):
        app = make_app()
        sandbox_of(app).faults.set(Faults(kinds=("500",), rate=0.5, seed=7))
        async with client_for(app) as http:
            runs.append([(await http.get(CONTACT, headers=COMETLY)).status_code for _ in range(20)])

    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500}


async def test_times_ends_the_faults_after_that_many_requests(make_app: MakeApp) -> None:
    app = make_app()
    sandbox_of(app).faults.set(Faults(kinds=("empty",), times=2))
    async with client_for(app) as http:
        answers = [await http.get(CONTACT, headers=COMETLY) for _ in range(3)]

    assert [answer.content for answer in answers[:2]] == [b"", b""]
    assert answers[2].json()["id"] == 10001


async def test_a_route_limits_the_faults_to_matching_paths(make_app: MakeApp) -> None:
    app = make_app()
    sandbox_of(app).faults.set(Faults(kinds=("500",), route="/highlevel/"))
    async with client_for(app) as http:
        cometly = await http.get(CONTACT, headers=COMETLY)
        highlevel = await http.get("/highlevel/contacts/abc")

    assert cometly.status_code == 200
    assert highlevel.status_code == 500


async def test_the_control_endpoint_switches_faults_and_refuses_an_unknown_kind(make_app: MakeApp) -> None:
    app = make_app()
    async with client_for(app) as http:
        switched = await http.post("/_sandbox/faults", json={"kinds": ["wrong-shape"], "shape": [1, 2]})
        shaped = await http.get(CONTACT, headers=COMETLY)
        refused = await http.post("/_sandbox/faults", json={"kinds": ["teapot"]})
        shown = await http.get("/_sandbox/faults")
        await http.post("/_sandbox/faults", json={"kinds": []})
        normal = await http.get(CONTACT, headers=COMETLY)

    assert switched.status_code == 200
    assert shaped.json() == [1, 2]
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["kinds", 0]
    assert shown.json()["kinds"] == ["wrong-shape"]  # a refused plan leaves the one in force
    assert normal.status_code == 200


async def test_a_large_body_is_valid_json_of_about_the_size_asked(make_app: MakeApp) -> None:
    app = make_app()
    sandbox_of(app).faults.set(Faults(kinds=("large",), large_bytes=300_000))
    async with client_for(app) as http:
        answer = await http.get(CONTACT, headers=COMETLY)

    assert answer.status_code == 200
    assert "Content-Length" not in answer.headers  # sent chunked: a client must count what it reads
    assert 300_000 - 200 <= len(answer.content) <= 300_000
    assert isinstance(json.loads(answer.content)["data"], list)


async def test_a_timeout_answers_normally_after_its_delay_when_the_client_waits(make_app: MakeApp) -> None:
    app = make_app()
    sandbox_of(app).faults.set(Faults(kinds=("timeout",), delay=0.2))
    async with client_for(app) as http:
        began = anyio.current_time()
        with anyio.fail_after(5):
            answer = await http.get(CONTACT, headers=COMETLY)

    assert anyio.current_time() - began >= 0.2
    assert answer.json()["id"] == 10001
