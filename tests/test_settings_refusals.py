"""URL settings and the `.env` file the server cannot use are refused at start in one line, without the password.

Each case runs the installed entry point; an unparsable Redis URL or base URL used to end in a
traceback from urllib, redis-py or httpx, some after the server had started.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contacts_mcp.server.settings import CometlySettings, Settings
from tests.conftest import COMETLY_KEY
from tests.startup_support import PASSWORD, assert_refused_in_one_line, run_entry_point


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{PASSWORD}@127.0.0.1:abc/0",
        f"redis://:{PASSWORD}@[::1/0",
        f"redis://:{PASSWORD}@[::1]x:6379/0",
        f"redis://:{PASSWORD}@[not-an-address]:6379/0",
        f"redis://:{PASSWORD}@::1:6379/0",
        f"redis://:{PASSWORD}@127.0.0.1:99999/0",
        f"redis://:{PASSWORD}@127.0.0.1:0/0",
        f"redis://:{PASSWORD}@127.0.0.1:/0",
        f"redis://:{PASSWORD}@127.0.0.1:+1/0",
        f"redis://:{PASSWORD}@127.0.0.1:6379/x",
        f"redis://:{PASSWORD}@127.0.0.1:6379/0/1",
        f"redis://:{PASSWORD}@127.0.0.1:6379/0?db=x",
        f"redis://:{PASSWORD}@/0",
        "redis://:s3cret/pw@127.0.0.1:6379/0",  # a slash the password should have percent-encoded
        f"redis://:{PASSWORD}@red is:6379/0",
        f"unix://:{PASSWORD}@run/redis.sock",  # two slashes: "run" would be a host, ignored
        f"unix://:{PASSWORD}@",
        f"http://:{PASSWORD}@127.0.0.1:6379/0",
    ],
)
def test_an_unusable_redis_url_is_one_line_naming_the_variable_without_the_password(tmp_path: Path, url: str) -> None:
    result = run_entry_point(tmp_path, "serve", COMETLY_API_KEY=COMETLY_KEY, CONTACTS_MCP_REDIS_URL=url)

    assert_refused_in_one_line(result, "CONTACTS_MCP_REDIS_URL")


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/v1",
        "http://cometly.test:abc/v1",
        "http://cometly.test:99999/v1",
        "http://cometly.test:0/v1",
        "http://",
        "https:///public-api/v1",
        "https://come tly.test/v1",
        "https://cometly.test/public api/v1",
        "http://[not-an-address]/v1",
        f"https://user:{PASSWORD}@cometly.test:99999/v1",
    ],
)
def test_an_unusable_base_url_is_one_line_naming_the_variable(tmp_path: Path, url: str) -> None:
    result = run_entry_point(tmp_path, "serve", COMETLY_API_KEY=COMETLY_KEY, COMETLY_BASE_URL=url)

    assert_refused_in_one_line(result, "COMETLY_BASE_URL")


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://127.0.0.1",
        "rediss://user:p%2Fw@redis.example.com:6380/15",
        "redis://[::1]:6379/2",
        "redis://redis_cache:6379?db=3",
        "unix:///run/redis/redis.sock?db=1",
        "unix://:pw@/run/redis/redis.sock",
    ],
)
def test_a_usable_redis_url_is_accepted_as_given(url: str) -> None:
    settings = Settings.model_validate({"redis_url": url})

    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value() == url


@pytest.mark.parametrize(
    "url",
    ["https://app.cometly.com/public-api/v1", "http://127.0.0.1:8765/cometly/public-api/v1", "http://[::1]:80/x"],
)
def test_a_usable_base_url_is_accepted(url: str) -> None:
    assert CometlySettings(base_url=url).base_url == url


def test_a_dotenv_file_that_is_not_utf8_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"COMETLY_API_KEY=" + COMETLY_KEY.encode() + b"\xff\xfe\n")

    result = run_entry_point(tmp_path, "tools")

    line = assert_refused_in_one_line(result, ".env")
    assert COMETLY_KEY not in line


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONTACTS_MCP_OAUTH_ISSUER", "ftp://issuer.example.com"),
        ("CONTACTS_MCP_OAUTH_ISSUER", "https://issuer.example.com/?tenant=1"),
        ("CONTACTS_MCP_OAUTH_ISSUER", "https://issuer.example.com:99999"),
        ("CONTACTS_MCP_PUBLIC_URL", "contacts.example.com/mcp"),
        ("CONTACTS_MCP_PUBLIC_URL", "https://contacts.example.com/mcp#top"),
        ("CONTACTS_MCP_PUBLIC_URL", f"https://user:{PASSWORD}@contacts.example.com/mcp"),
        ("CONTACTS_MCP_OAUTH_READ_SCOPE", "contacts read"),
        ("CONTACTS_MCP_OAUTH_WRITE_SCOPE", 'contacts:"write"'),
    ],
)
def test_an_unusable_oauth_setting_is_one_line_naming_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    result = run_entry_point(tmp_path, "serve", COMETLY_API_KEY=COMETLY_KEY, **{variable: value})

    assert_refused_in_one_line(result, variable)


def test_usable_oauth_settings_are_kept_as_given() -> None:
    settings = Settings.model_validate(
        {
            "oauth_issuer": "https://login.example.com/realms/team/",
            "public_url": "https://contacts.example.com/mcp",
            "oauth_read_scope": " api://contacts/read ",
        }
    )

    assert settings.oauth_issuer == "https://login.example.com/realms/team/"  # the trailing slash is the issuer's
    assert settings.public_url == "https://contacts.example.com/mcp"
    assert settings.oauth_read_scope == "api://contacts/read"
