"""`contacts-mcp sandbox` stays on this machine unless told otherwise, and then its fault switch needs a token.

The command runs through the real `main()`; only uvicorn is replaced, by a stand-in that records the
bind and announces a root URL, so no test ever listens off loopback. The app it would have served is
then called in process.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from contacts_mcp.server import cli
from contacts_mcp.server.cli import main
from contacts_mcp.server.sandbox import SANDBOX_KEYS, sandbox_of
from tests.http_support import ENTRY_POINT

pytestmark = pytest.mark.anyio

CONTROL = "/_sandbox/faults"
CONTACT = "/cometly/public-api/v1/contacts/10001"
COMETLY = {"Authorization": f"Bearer {SANDBOX_KEYS['cometly']}"}
GIVEN_TOKEN = "given-sandbox-token-0123456789"


@dataclass
class Served:
    """What the sandbox command would have served, instead of serving it."""

    app: Starlette | None = None
    host: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Served]:
    monkeypatch.chdir(tmp_path)
    record = Served()

    def run_uvicorn(app: Starlette, **options: Any) -> None:
        record.app, record.host = app, options["host"]
        record.calls.append(options)
        announce: Callable[[str], None] = options["announce"]
        announce("http://192.0.2.10:8765")

    monkeypatch.setattr(cli, "_run_uvicorn", run_uvicorn)
    yield record
    if record.app is not None:
        sandbox_of(record.app).store.close()


def client_for(app: Starlette | None) -> httpx.AsyncClient:
    assert app is not None
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "0", "0x0", "0.0", "::", "[::]", "0000::", "", "192.0.2.10", "sandbox.example.com"]
)
def test_the_sandbox_refuses_to_listen_off_loopback_without_allow_remote(
    served: Served, capsys: pytest.CaptureFixture[str], host: str
) -> None:
    assert main(["sandbox", "--host", host, "--port", "0"]) == 2

    captured = capsys.readouterr()
    assert served.calls == [], "nothing was bound"
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert "--allow-remote" in line


def test_the_installed_sandbox_refuses_a_public_bind_in_one_line(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [str(ENTRY_POINT), "sandbox", "--host", "0.0.0.0", "--port", "0"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stdout) == (2, "")
    [line] = result.stderr.splitlines()
    assert "--allow-remote" in line


async def test_with_allow_remote_the_control_routes_need_the_token_printed_once_at_start(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sandbox", "--host", "0.0.0.0", "--port", "0", "--allow-remote"]) == 0

    out = capsys.readouterr().out
    tokens = re.findall(r"Authorization: Bearer (\S+)", out)
    assert len(tokens) == 1, out
    [token] = tokens
    assert len(token) >= 32
    assert out.count(token) == 1
    async with client_for(served.app) as http:
        missing = await http.post(CONTROL, json={"kinds": ["500"]})
        wrong = await http.post(CONTROL, json={"kinds": ["500"]}, headers=bearer(token[:-1] + "x"))
        not_bearer = await http.get(CONTROL, headers={"Authorization": token})
        peek = await http.get(CONTROL, headers=bearer("nope"))
        still_normal = await http.get(CONTACT, headers=COMETLY)
        switched = await http.post(CONTROL, json={"kinds": ["500"]}, headers=bearer(token))
        failing = await http.get(CONTACT, headers=COMETLY)
        shown = await http.get(CONTROL, headers=bearer(token))

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert not_bearer.status_code == 401
    assert wrong.status_code == 403
    assert peek.status_code == 403
    assert still_normal.status_code == 200, "a refused switch changed nothing"
    assert switched.status_code == 200
    assert failing.status_code == 500
    assert shown.json()["kinds"] == ["500"]
    assert token not in missing.text + wrong.text


async def test_a_token_given_in_the_environment_is_required_even_on_loopback_and_never_printed(
    served: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTACTS_MCP_SANDBOX_TOKEN", GIVEN_TOKEN)

    assert main(["sandbox", "--port", "0"]) == 0

    captured = capsys.readouterr()
    assert GIVEN_TOKEN not in captured.out + captured.err
    assert "CONTACTS_MCP_SANDBOX_TOKEN" in captured.out
    async with client_for(served.app) as http:
        missing = await http.get(CONTROL)
        allowed = await http.get(CONTROL, headers=bearer(GIVEN_TOKEN))

    assert missing.status_code == 401
    assert allowed.status_code == 200


def test_a_short_token_in_the_environment_is_refused_in_one_line(
    served: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTACTS_MCP_SANDBOX_TOKEN", "short-secret")

    assert main(["sandbox", "--host", "0.0.0.0", "--allow-remote"]) == 2

    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert "CONTACTS_MCP_SANDBOX_TOKEN" in line
    assert "short-secret" not in line
    assert served.calls == []


async def test_on_loopback_the_control_routes_need_no_token_as_before(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sandbox", "--host", "localhost", "--port", "0"]) == 0

    assert "Bearer" not in capsys.readouterr().out
    async with client_for(served.app) as http:
        switched = await http.post(CONTROL, json={"kinds": []})

    assert switched.status_code == 200
    assert served.host == "localhost"


def test_the_sandbox_help_documents_allow_remote_and_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["sandbox", "--help"])

    out = capsys.readouterr().out
    assert "--allow-remote" in out
    assert "CONTACTS_MCP_SANDBOX_TOKEN" in out
