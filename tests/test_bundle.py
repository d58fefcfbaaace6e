"""The Claude Desktop bundle: `manifest.json` validates, packs, and the unpacked bundle serves what it declares.

The pinned `mcpb` (package-lock.json) runs from `node_modules/.bin`; without it these tests skip
locally (`npm ci` installs it) and fail under CI. The unpacked bundle is started the way Claude
Desktop starts it, from the manifest's `mcp_config` with `${__dirname}` and `${user_config.*}`
substituted (an option left unfilled becomes its default, or an empty string), plus `UV_OFFLINE=1`
so uv installs from its cache and the test never reaches the network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from pydantic import SecretStr

from contacts_mcp.server.app import build_server
from contacts_mcp.server.settings import Settings, load_settings
from tests.conftest import (
    CLEMTA_COMPANY,
    CLEMTA_KEY,
    COMETLY_KEY,
    HIGHLEVEL_KEY,
    HIGHLEVEL_LOCATION,
    make_all_settings,
    make_settings,
)
from tests.test_registry import as_text, secret_variables, setting_variables

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
MCPB = ROOT / "node_modules" / ".bin" / "mcpb"
MANIFEST = ROOT / "manifest.json"
START_SECONDS = 180
"""The first start builds the bundle's environment from uv's cache; later ones only start the server."""
BUNDLE_TOP_LEVEL = {
    "manifest.json",
    "pyproject.toml",
    "uv.lock",
    "README.md",
    "LICENSE",
    "server",
    "tools",
    "contacts_mcp",
}
"""What running the bundle needs (.mcpbignore lets nothing else in)."""

Tool = tuple[str, str]


def manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]


def manifest_tools(data: Mapping[str, Any]) -> list[Tool]:
    return [(tool["name"], tool["description"]) for tool in data["tools"]]


async def served_tools(settings: Settings) -> list[Tool]:
    """(name, description) of each tool in the tools/list of a server built from `settings`, in order."""
    async with Client(build_server(settings)) as client:
        result = await client.list_tools()
    return [(tool.name, tool.description or "") for tool in result.tools]


@pytest.fixture(scope="module")
def mcpb() -> Path:
    """The pinned mcpb CLI; missing, the test skips locally and fails under CI."""
    if not MCPB.is_file():
        reason = f"{MCPB.relative_to(ROOT)} is missing: `npm ci` installs the mcpb that package-lock.json pins"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return MCPB


def run_mcpb(mcpb: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(mcpb), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL
    )


@pytest.fixture(scope="module")
def bundle(mcpb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`mcpb pack` of the checkout, unzipped into a directory of its own, as Claude Desktop installs it."""
    packed = tmp_path_factory.mktemp("packed") / "contacts-mcp.mcpb"
    result = run_mcpb(mcpb, "pack", str(ROOT), str(packed))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    unpacked = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(packed) as archive:
        archive.extractall(unpacked)
    return unpacked


def _uv() -> str:
    """uv as Claude Desktop finds it on PATH; under `python -m uv` (no uv on PATH), the one uv runs us with."""
    found = shutil.which("uv") or os.environ.get("UV")
    if not found:
        pytest.fail("no uv on PATH and no $UV: the bundle's mcp_config runs `uv`")
    return found


def desktop_launch(bundle: Path, values: Mapping[str, str]) -> StdioServerParameters:
    """The bundle's `mcp_config` with its variables substituted: `values` for the options the user filled in."""
    data = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    options: dict[str, Any] = data["user_config"]
    config: dict[str, Any] = data["server"]["mcp_config"]

    def option(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in values:
            return values[key]
        default = options[key].get("default")
        return "" if default is None else as_text(default)

    def substitute(text: str) -> str:
        return re.sub(r"\$\{user_config\.([A-Za-z0-9_]+)\}", option, text.replace("${__dirname}", str(bundle)))

    command = substitute(config["command"])
    inherited = {name: os.environ[name] for name in ("UV_CACHE_DIR", "XDG_CACHE_HOME") if name in os.environ}
    env = {name: substitute(value) for name, value in config.get("env", {}).items()}
    return StdioServerParameters(
        command=_uv() if command == "uv" else command,
        args=[substitute(arg) for arg in config.get("args", [])],
        env={**inherited, **env, "UV_OFFLINE": "1", "CONTACTS_MCP_LOG_LEVEL": "WARNING"},
        cwd=bundle,
    )


async def tools_over_stdio(params: StdioServerParameters) -> list[Tool]:
    with anyio.fail_after(START_SECONDS):
        async with Client(params) as client:
            result = await client.list_tools()
    return [(tool.name, tool.description or "") for tool in result.tools]


def test_the_manifest_validates_with_the_pinned_mcpb(mcpb: Path) -> None:
    result = run_mcpb(mcpb, "validate", str(MANIFEST))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "validation passes" in result.stdout


def test_the_bundle_holds_only_what_running_needs(bundle: Path) -> None:
    assert {path.name for path in bundle.iterdir()} == BUNDLE_TOP_LEVEL
    assert sorted(path.name for path in (bundle / "contacts_mcp").iterdir()) == ["__init__.py", "__main__.py"]
    assert not [path for path in bundle.rglob("*") if path.name == "__pycache__" or path.suffix == ".pyc"]
    assert (bundle / "server" / "cli.py").is_file()
    assert (bundle / "tools" / "contacts.py").is_file()


async def test_the_unpacked_bundle_started_as_claude_desktop_does_serves_every_tool_it_declares(bundle: Path) -> None:
    values = {
        "cometly_api_key": COMETLY_KEY,
        "highlevel_api_key": HIGHLEVEL_KEY,
        "highlevel_location_id": HIGHLEVEL_LOCATION,
        "clemta_api_key": CLEMTA_KEY,
        "clemta_company_id": CLEMTA_COMPANY,
        "cometly_timezone": "UTC",
        "clemta_timezone": "UTC",
    }  # tools/list asks no upstream, so keys that open nothing do

    assert await tools_over_stdio(desktop_launch(bundle, values)) == manifest_tools(manifest())


async def test_the_bundle_starts_with_one_provider_and_every_other_option_left_empty(bundle: Path) -> None:
    """An unfilled optional option arrives as an empty string: it must mean "not set", not a bad value."""
    launched = desktop_launch(bundle, {"cometly_api_key": COMETLY_KEY})

    assert launched.env is not None
    assert launched.env["HIGHLEVEL_API_KEY"] == launched.env["COMETLY_TIMEZONE"] == ""
    assert await tools_over_stdio(launched) == await served_tools(make_settings())


async def test_the_manifest_lists_every_tool_the_server_can_serve_with_its_full_description() -> None:
    """Every provider configured and read-only off is the most the server serves; the manifest says that."""
    data = manifest()

    assert manifest_tools(data) == await served_tools(make_all_settings())
    assert data["tools_generated"] is False


def test_the_manifest_agrees_with_pyproject() -> None:
    data, project = manifest(), pyproject()

    assert data["version"] == project["version"]
    assert data["name"] == project["name"]
    assert data["description"] == project["description"]
    assert data["license"] == project["license"]
    assert data["repository"] == {"type": "git", "url": project["urls"]["Repository"]}
    assert data["compatibility"]["runtimes"] == {"python": project["requires-python"]}


def test_every_user_config_option_passes_one_real_setting_under_its_own_name() -> None:
    data = manifest()
    options: dict[str, Any] = data["user_config"]
    env: dict[str, str] = data["server"]["mcp_config"]["env"]
    settings = setting_variables()

    assert env == {key.upper(): f"${{user_config.{key}}}" for key in options}
    assert set(env) <= set(settings)
    assert {key.upper() for key, option in options.items() if option.get("sensitive")} == set(env) & secret_variables()
    for key, option in options.items():
        field = settings[key.upper()]
        assert option["required"] is False, key  # a user has one provider or more
        assert option["type"] == ("boolean" if field.annotation is bool else "string"), key
        if "default" in option:
            assert as_text(option["default"]) == as_text(field.get_default(call_default_factory=True)), key


def test_one_provider_and_the_other_options_left_empty_load_as_that_provider_alone() -> None:
    """The same check in process, without mcpb: the launch's environment loaded as the server loads it."""
    launched = desktop_launch(ROOT, {"cometly_api_key": COMETLY_KEY})
    assert launched.env is not None
    with pytest.MonkeyPatch.context() as patch:
        for name, value in launched.env.items():
            patch.setenv(name, value)
        settings = load_settings(env_file=None)

    assert settings.cometly.api_key == SecretStr(COMETLY_KEY)
    assert (settings.highlevel.configured, settings.clemta.configured) == (False, False)
    assert (settings.cometly.timezone, settings.clemta.timezone, settings.read_only) == ("UTC", "UTC", False)
