"""The accounts file: a complete file is read as written, and each mistake is refused in one line at its line.

Every refusal names the file and the line to fix (found in the text, since tomllib keeps no
positions, so quoted names, dotted keys, inline tables and multi-line strings are covered), and no
refusal or repr ever shows a key: from the environment, from a secrets file, or written (wrongly)
into the accounts file itself.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import SecretStr

from contacts_mcp.server.accounts import Account, default_account, default_accounts, load_accounts
from contacts_mcp.server.app import budget_specs
from contacts_mcp.server.budgets import fingerprint
from contacts_mcp.server.errors import ConfigurationError
from contacts_mcp.server.providers import PROVIDERS
from contacts_mcp.server.settings import Rate, Settings, parse_rate_limits
from tests.conftest import HIGHLEVEL_LOCATION, clemta_settings, highlevel_settings, make_settings

ACME_KEY = "pit-Qm7Xc2Vb9Lk4Rz8Tw1"
BETA_KEY = "pit-Hy3Jn6Df1Gs8Pa5Ue2"
EU_KEY = "cm-Wo4Ei9Ru2Ty7Ia3Sd6"
US_KEY = "cm-Fg1Hj6Kl3Zx8Cv5Bn0"
BOOKS_KEY = "cl-Mq2Nw7Eb4Rv9Tc6Yx1"
WRITTEN_KEY = "pit-Wr1tt3nInF1le8Kq4"
"""A key someone wrote into the accounts file: refused, and never quoted back."""
PASTED_KEY = "Xk4Lm9Qp2Rs7Tv3Wy8Za5"
"""A key pasted where a variable's name belongs: it is a valid variable name, but not a conventional one."""
SECRETS = (ACME_KEY, BETA_KEY, EU_KEY, US_KEY, BOOKS_KEY, WRITTEN_KEY, PASTED_KEY)
PIECE_CHARS = 8

ENVIRON = {
    "ACME_HL_KEY": ACME_KEY,
    "BETA_HL_KEY": f"  {BETA_KEY}\n",
    "US_KEY": US_KEY,
    "BOOKS_KEY": BOOKS_KEY,
    "BLANK_KEY": "  \n",
    "K": WRITTEN_KEY,
}


def leaked(text: str) -> list[str]:
    """Every 8-character piece of a key found in `text`."""
    return sorted(
        {
            secret[at : at + PIECE_CHARS]
            for secret in SECRETS
            for at in range(len(secret) - PIECE_CHARS + 1)
            if secret[at : at + PIECE_CHARS] in text
        }
    )


def write(folder: Path, text: str, *, name: str = "accounts.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def refusal(folder: Path, text: str, environ: dict[str, str] | None = None) -> tuple[int, str]:
    """The line and the message of the file's refusal, checked to be one line naming the file, with no key."""
    path = write(folder, text)
    with pytest.raises(ConfigurationError) as caught:
        load_accounts(path, ENVIRON if environ is None else environ)
    message = str(caught.value)
    assert "\n" not in message
    assert leaked(message) == []
    prefix = f"contacts-mcp: {path}:"
    assert message.startswith(prefix)
    line, _, rest = message.removeprefix(prefix).partition(": ")
    return int(line), rest


COMPLETE = """
# Two HighLevel locations, two Cometly Spaces and a Clemta company.
[accounts.acme-hl]
provider = "highlevel"
description = "Acme Dental's HighLevel location"
api_key_env = "ACME_HL_KEY"
location_id = "loc-acme-0001"
rate_limits = { location = ["50/10", "100000/86400"] }

[accounts."beta-hl"]  # a quoted name is the same name
provider = "highlevel"
description = "Beta Gyms' HighLevel location"
api_key_env = "BETA_HL_KEY"
location_id = "loc-beta-0002"
base_url = "http://127.0.0.1:8931/highlevel/"

[accounts.brand-eu]
provider = "cometly"
description = "the EU brand's Cometly Space"
api_key_file = "secrets/brand_eu_key"
timezone = "Europe/Berlin"
rate_limits = "cometly.list_contacts=10/60,cometly.get_contact=5/60"

[accounts]
brand-us = { provider = "cometly", description = "US brand", api_key_env = "US_KEY", timezone = "America/New_York" }
books.provider = "clemta"
books.description = "the bookkeeping company in Clemta"
books.api_key_env = "BOOKS_KEY"
books.company_id = "64b8f1a2e4b0c8d9f0bbbbbb"
"""


def test_a_complete_file_gives_every_account_in_order_with_its_key_scope_timezone_and_limits(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "brand_eu_key").write_text(f"\n  {EU_KEY}  \n", encoding="utf-8")

    accounts = load_accounts(write(tmp_path, COMPLETE), ENVIRON)

    assert [(account.name, account.provider) for account in accounts] == [
        ("acme-hl", "highlevel"),
        ("beta-hl", "highlevel"),
        ("brand-eu", "cometly"),
        ("brand-us", "cometly"),
        ("books", "clemta"),
    ]
    acme, beta, eu, us, books = accounts
    assert acme.description == "Acme Dental's HighLevel location"
    assert [account.key.get_secret_value() for account in accounts] == [ACME_KEY, BETA_KEY, EU_KEY, US_KEY, BOOKS_KEY]
    assert (acme.location_id, beta.location_id) == ("loc-acme-0001", "loc-beta-0002")
    assert acme.base_url == "https://services.leadconnectorhq.com"
    assert beta.base_url == "http://127.0.0.1:8931/highlevel"
    assert (acme.timezone, eu.timezone, us.timezone, books.timezone) == (
        None,
        "Europe/Berlin",
        "America/New_York",
        "UTC",
    )
    assert books.company_id == "64b8f1a2e4b0c8d9f0bbbbbb"
    assert dict(acme.rate_limits) == {"highlevel.location": (Rate(50, 10.0), Rate(100000, 86400.0))}
    assert dict(eu.rate_limits) == parse_rate_limits("cometly.list_contacts=10/60,cometly.get_contact=5/60")
    assert dict(us.rate_limits) == {}


def test_an_account_runs_on_its_providers_own_settings_and_budgets(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "brand_eu_key").write_text(EU_KEY, encoding="utf-8")
    _, beta, eu, *_ = load_accounts(write(tmp_path, COMPLETE), ENVIRON)
    settings = make_settings(
        highlevel=highlevel_settings(),
        rate_limits=parse_rate_limits("cometly.create_contact=1/60,highlevel.location=9/9"),
    )

    applied = eu.apply(settings)
    both = [PROVIDERS["cometly"], PROVIDERS["highlevel"]]
    specs = {name: spec for name, spec in budget_specs(applied, both).items() if name.startswith("cometly.")}
    beta_specs = budget_specs(beta.apply(settings), both)

    assert applied.cometly.key() == EU_KEY
    assert applied.cometly.timezone == "Europe/Berlin"
    assert applied.highlevel == settings.highlevel  # the other providers are left as they were
    assert applied.rate_limits["highlevel.location"] == (Rate(9, 9.0),)
    assert specs["cometly.list_contacts"].rates == (Rate(10, 60.0),)
    assert not specs["cometly.list_contacts"].may_rise
    assert specs["cometly.create_contact"].may_rise  # the environment's overrides are the default account's
    assert {spec.account for spec in specs.values()} == {eu.fingerprint}
    assert beta_specs["highlevel.location"].account == beta.fingerprint
    assert beta_specs["highlevel.location"].rates == PROVIDERS["highlevel"].default_budgets["highlevel.location"]
    assert beta.apply(settings).highlevel.base_url == "http://127.0.0.1:8931/highlevel"


def test_accounts_on_one_key_share_a_fingerprint_and_two_keys_or_two_locations_never_do(tmp_path: Path) -> None:
    text = """
    [accounts.one]
    provider = "cometly"
    description = "a Space"
    api_key_env = "US_KEY"

    [accounts.same-key]
    provider = "cometly"
    description = "the same Space under another name"
    api_key_env = "US_KEY"
    timezone = "Asia/Tokyo"

    [accounts.other-key]
    provider = "cometly"
    description = "another Space"
    api_key_env = "BOOKS_KEY"

    [accounts.hl-a]
    provider = "highlevel"
    description = "location A"
    api_key_env = "ACME_HL_KEY"
    location_id = "loc-a"

    [accounts.hl-a-again]
    provider = "highlevel"
    description = "location A again"
    api_key_env = "ACME_HL_KEY"
    location_id = "loc-a"

    [accounts.hl-b]
    provider = "highlevel"
    description = "location B, same key"
    api_key_env = "ACME_HL_KEY"
    location_id = "loc-b"

    [accounts.books]
    provider = "clemta"
    description = "Clemta on the Cometly account's key"
    api_key_env = "US_KEY"
    """
    one, same, other, hl_a, hl_a_again, hl_b, books = load_accounts(write(tmp_path, text), ENVIRON)

    assert one.fingerprint == same.fingerprint
    assert one.fingerprint != other.fingerprint
    assert hl_a.fingerprint == hl_a_again.fingerprint
    assert hl_a.fingerprint != hl_b.fingerprint  # HighLevel counts per location
    assert books.fingerprint != one.fingerprint  # one string on two vendors is two accounts
    assert all(len(account.fingerprint) == 16 for account in (one, hl_a, books))
    assert not any(leaked(account.fingerprint) for account in (one, hl_a, books))


def test_the_default_account_is_the_environments_with_todays_fingerprint() -> None:
    settings = make_settings(
        highlevel=highlevel_settings(),
        clemta=clemta_settings(),
        rate_limits=parse_rate_limits("cometly.list_contacts=3/60,highlevel.location=7/10"),
    )

    accounts = default_accounts(settings)

    assert [(account.name, account.provider) for account in accounts] == [
        ("default", "cometly"),
        ("default", "highlevel"),
        ("default", "clemta"),
    ]
    cometly, highlevel, clemta = accounts
    for account in accounts:
        provider = PROVIDERS[account.provider]
        assert account.fingerprint == fingerprint(provider.account(settings))  # as budget_specs keys it today
        assert account.apply(settings) == settings
    assert highlevel.location_id == HIGHLEVEL_LOCATION
    assert dict(cometly.rate_limits) == {"cometly.list_contacts": (Rate(3, 60.0),)}
    assert dict(highlevel.rate_limits) == {"highlevel.location": (Rate(7, 10.0),)}
    assert dict(clemta.rate_limits) == {}
    assert (cometly.timezone, highlevel.timezone) == ("UTC", None)
    assert default_account(Settings.model_validate({"cometly": settings.cometly}), "highlevel") is None


def test_a_file_account_sharing_the_environments_key_shares_its_budget(tmp_path: Path) -> None:
    settings = make_settings()
    [default] = default_accounts(settings)
    text = """
    [accounts.also]
    provider = "cometly"
    description = "the same Space"
    api_key_env = "COMETLY_KEY"
    """
    [also] = load_accounts(write(tmp_path, text), {"COMETLY_KEY": f" {settings.cometly.key()} "})

    assert also.fingerprint == default.fingerprint


def test_api_key_file_is_read_stripped_from_the_files_folder_or_the_secrets_dir(tmp_path: Path) -> None:
    secrets = tmp_path / "run-secrets"
    secrets.mkdir()
    (tmp_path / "key.txt").write_text(f"{US_KEY}\r\n", encoding="utf-8")
    (secrets / "key.txt").write_text(f"\ufeff {EU_KEY}\n", encoding="utf-8")
    (tmp_path / "absolute.txt").write_text(BOOKS_KEY, encoding="utf-8")
    text = f"""
    [accounts.here]
    provider = "cometly"
    description = "beside the accounts file"
    api_key_file = "key.txt"

    [accounts.absolute]
    provider = "clemta"
    description = "anywhere"
    api_key_file = {str(tmp_path / "absolute.txt")!r}
    """
    path = write(tmp_path, text)

    here, absolute = load_accounts(path, {})
    [in_secrets, _] = load_accounts(path, {}, secrets_dir=secrets)

    assert here.key.get_secret_value() == US_KEY
    assert in_secrets.key.get_secret_value() == EU_KEY
    assert absolute.key.get_secret_value() == BOOKS_KEY


def test_no_key_is_in_an_accounts_repr_or_str(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "brand_eu_key").write_text(EU_KEY, encoding="utf-8")
    accounts = load_accounts(write(tmp_path, COMPLETE), ENVIRON)
    shown = [repr(accounts), str(accounts[0]), f"{accounts[2]}", repr(default_accounts(make_settings()))]

    assert all(leaked(text) == [] for text in shown)
    assert "acme-hl" in shown[0]
    assert "Europe/Berlin" in shown[2]
    assert (accounts[0].name, accounts[0].key) == ("acme-hl", SecretStr(ACME_KEY))


def hl(name: str = "acme-hl", *extra: str, header: str | None = None) -> str:
    """A valid HighLevel account's table, lines 1-5 (header first), with `extra` lines from line 6."""
    lines = [
        header or f"[accounts.{name}]",
        'provider = "highlevel"',
        'description = "Acme Dental"',
        'api_key_env = "ACME_HL_KEY"',
        'location_id = "loc-acme"',
        *extra,
    ]
    return "\n".join(lines) + "\n"


def cometly(name: str = "brand-us", *extra: str) -> str:
    """A valid Cometly account's table, lines 1-4 (header first), with `extra` lines from line 5."""
    lines = [f"[accounts.{name}]", 'provider = "cometly"', 'description = "US Space"', 'api_key_env = "US_KEY"', *extra]
    return "\n".join(lines) + "\n"


REFUSALS: list[tuple[str, str, int, tuple[str, ...]]] = [
    # TOML syntax, as tomllib finds it, at its line
    ("syntax", hl() + "\n" + 'timezone = "UTC\n', 7, ("not valid TOML", "column")),
    ("syntax-bare-value", hl("acme-hl", "rate_limits = { location = 15/60 }"), 6, ("not valid TOML",)),
    ("unterminated-at-end", hl("acme-hl", 'timezone = """never closed'), 6, ("not valid TOML",)),
    ("duplicate", hl() + "\n" + hl(header='[accounts."acme-hl"]'), 7, ("[accounts.acme-hl]", "twice")),
    ("duplicate-key", hl("acme-hl", 'provider = "cometly"', "", "[accounts.x]"), 6, ("not valid TOML",)),
    # the document's shape
    ("no-accounts", "# nothing yet\n", 1, ("no account",)),
    ("empty-accounts", "# none\n[accounts]\n", 2, ("no account",)),
    ("accounts-not-a-table", "# accounts\naccounts = 3\n", 2, ("accounts is a number",)),
    ("account-not-a-table", "[accounts]\nacme = 'highlevel'\n", 2, ("accounts.acme is a string",)),
    ("unknown-top-level", "acounts = 1\n\n" + hl(), 1, ("unknown key acounts", "did you mean accounts")),
    # names
    ("bad-name", hl(header='[accounts."Acme HL"]'), 1, ('[accounts."Acme HL"]', "lowercase")),
    ("bad-name-dash", hl("-acme"), 1, ("lowercase",)),
    ("name-too-long", hl("a" * 41), 1, ("1 to 40",)),
    ("reserved", "# the environment's\n" + cometly("default"), 2, ("default",)),
    # keys
    ("unknown-key", hl("acme-hl", 'descripton = "x"'), 6, ("descripton", "did you mean description")),
    ("another-providers-key", cometly("brand-us", 'location_id = "x"'), 5, ("location_id", "only HighLevel")),
    ("timezone-on-highlevel", hl("acme-hl", 'timezone = "UTC"'), 6, ("timezone", "Cometly and Clemta")),
    ("no-provider", "[accounts.a]\ndescription = 'x'\napi_key_env = 'US_KEY'\n", 1, ("no provider",)),
    ("no-description", "# one\n[accounts.a]\nprovider = 'cometly'\napi_key_env = 'US_KEY'\n", 2, ("no description",)),
    (
        "no-api-key-env",
        "[accounts.a]\nprovider = 'cometly'\ndescription = 'x'\n",
        1,
        ("[accounts.a] has no api_key_env (the name of the environment variable holding its Cometly key)",),
    ),
    (
        "no-location",
        "[accounts.a]\nprovider = 'highlevel'\ndescription = 'x'\napi_key_env = 'ACME_HL_KEY'\n",
        1,
        ("location_id",),
    ),
    ("empty-location", hl("acme-hl").replace('"loc-acme"', '"  "'), 5, ("location_id is empty",)),
    # types and values
    ("provider-type", "[accounts.a]\nprovider = 1\n", 2, ("provider is a number",)),
    ("unknown-provider", "[accounts.a]\nprovider = 'HighLevel'\n", 2, ("'HighLevel'", "did you mean highlevel")),
    ("description-type", hl().replace('"Acme Dental"', "5"), 3, ("description is a number",)),
    ("description-lines", hl().replace('"Acme Dental"', "'''Acme\nDental'''"), 3, ("one line",)),
    ("description-long", hl().replace("Acme Dental", "x" * 201), 3, ("200 characters",)),
    ("api-key-env-type", hl().replace('"ACME_HL_KEY"', '["ACME_HL_KEY"]'), 4, ("api_key_env is a list",)),
    ("env-not-set", hl().replace("ACME_HL_KEY", "ACME_HL_TOKEN"), 4, ("ACME_HL_TOKEN", "not set")),
    ("env-empty", hl().replace("ACME_HL_KEY", "BLANK_KEY"), 4, ("BLANK_KEY", "empty")),
    ("env-and-file", hl("acme-hl", 'api_key_file = "k"'), 6, ("keep one",)),
    ("file-missing", cometly("a").replace('api_key_env = "US_KEY"', 'api_key_file = "nope.txt"'), 4, ("nope.txt",)),
    ("file-empty-path", cometly("a").replace('api_key_env = "US_KEY"', 'api_key_file = ""'), 4, ("empty",)),
    ("bad-timezone", cometly("a", 'timezone = "Mars/Olympus"'), 5, ("timezone", "Mars/Olympus")),
    ("bad-base-url", cometly("a", 'base_url = "ftp://cometly.test"'), 5, ("base_url", "http")),
    ("base-url-type", cometly("a", "base_url = true"), 5, ("base_url is true or false",)),
    # rate limits
    ("rate-zero", cometly("a", 'rate_limits = { list_contacts = "15/0" }'), 5, ("rate_limits.list_contacts",)),
    ("rate-text", cometly("a", "rate_limits = { list_contacts = 'fast' }"), 5, ("count/seconds",)),
    (
        "rate-smuggled",
        cometly("a", "rate_limits = { list_contacts = '1/1,cometly.list_contacts=9/1' }"),
        5,
        ("count/seconds",),
    ),
    ("rate-type", cometly("a", "rate_limits = { list_contacts = 15 }"), 5, ("is a number",)),
    (
        "rate-unknown",
        cometly("a", 'rate_limits = { list_contact = "1/1" }'),
        5,
        ("list_contact", "did you mean list_contacts"),
    ),
    ("rate-dotted", cometly("a", 'rate_limits = { cometly.list_contacts = "1/1" }'), 5, ("without its provider",)),
    ("rate-string", cometly("a", 'rate_limits = "list_contacts=15/60"'), 5, ("provider.tool=count/seconds",)),
    (
        "rate-other-provider",
        hl("acme-hl", 'rate_limits = "cometly.list_contacts=15/60"'),
        6,
        ("not a budget of HighLevel",),
    ),
    ("rate-table-type", cometly("a", "rate_limits = 15"), 5, ("rate_limits is a number",)),
]


@pytest.mark.parametrize(
    ("text", "line", "fragments"), [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS]
)
def test_each_mistake_is_refused_in_one_line_at_its_line(
    tmp_path: Path, text: str, line: int, fragments: tuple[str, ...]
) -> None:
    found, message = refusal(tmp_path, text)

    assert found == line, message
    for fragment in fragments:
        assert fragment in message


KEY_IN_FILE: list[tuple[str, str, int]] = [
    ("api_key", hl("acme-hl", f'api_key = "{WRITTEN_KEY}"'), 6),
    ("key", hl("acme-hl", f"key = '{WRITTEN_KEY}'"), 6),
    ("token", hl("acme-hl", f'token = """{WRITTEN_KEY}"""'), 6),
    ("secret", cometly("a", f'secret = "{WRITTEN_KEY}"'), 5),
    ("apiKey", f'[accounts]\nb = {{ provider = "cometly", apiKey = "{WRITTEN_KEY}" }}\n', 2),
    ("access_token", f'[accounts.a]\nprovider = "clemta"\naccess_token = "{WRITTEN_KEY}"\n', 3),
    ("unknown provider", f'[accounts.a]\nprovider = "x"\nkey = "{WRITTEN_KEY}"\n', 3),
    ("top level", f'api_key = "{WRITTEN_KEY}"\n' + hl(), 1),
    ("pasted into api_key_env", hl().replace("ACME_HL_KEY", WRITTEN_KEY), 4),
    ("pasted, a valid name", hl().replace("ACME_HL_KEY", PASTED_KEY), 4),
    ("api_key_evn", hl("acme-hl", f'api_key_evn = "{WRITTEN_KEY}"'), 6),
]


@pytest.mark.parametrize(("text", "line"), [case[1:] for case in KEY_IN_FILE], ids=[case[0] for case in KEY_IN_FILE])
def test_a_key_written_in_the_file_is_refused_at_its_line_and_never_quoted(
    tmp_path: Path, text: str, line: int
) -> None:
    found, message = refusal(tmp_path, text)

    assert found == line, message
    assert "api_key_env" in message  # says where the key goes instead


def test_a_secrets_file_that_is_empty_not_text_or_more_than_the_key_is_refused_without_its_content(
    tmp_path: Path,
) -> None:
    contents = {
        "empty": b" \n\n",
        "binary": b"\xff\xfe" + WRITTEN_KEY.encode(),
        "two words": f"HL_KEY= {WRITTEN_KEY}\n".encode(),
        "two lines": f"{WRITTEN_KEY}\n{PASTED_KEY}\n".encode(),
    }
    for name, content in contents.items():
        (tmp_path / f"{name}.key").write_bytes(content)
        found, message = refusal(
            tmp_path, cometly("a").replace('api_key_env = "US_KEY"', f'api_key_file = "{name}.key"')
        )

        assert found == 4, message
        assert f"{name}.key" in message


def test_an_unreadable_or_non_utf8_accounts_file_is_refused_in_one_line_without_its_bytes(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'[accounts.a]\napi_key = "\xff' + WRITTEN_KEY.encode() + b'"\n')

    for path in (missing, binary):
        with pytest.raises(ConfigurationError) as caught:
            load_accounts(path, ENVIRON)
        message = str(caught.value)
        assert "\n" not in message
        assert str(path) in message
        assert leaked(message) == []


@pytest.mark.parametrize(
    "mistake",
    ['base_url = "ftp://cometly.test"', 'timezone = "Mars/Olympus"', 'rate_limits = { list_contacts = "0/1" }'],
)
def test_a_refusal_after_the_key_was_read_from_a_secrets_file_does_not_quote_it(tmp_path: Path, mistake: str) -> None:
    (tmp_path / "k").write_text(WRITTEN_KEY, encoding="utf-8")

    found, _ = refusal(tmp_path, cometly("a", mistake).replace('api_key_env = "US_KEY"', 'api_key_file = "k"'))

    assert found == 5


LOCATED: list[tuple[str, str, int]] = [
    (
        "a multi-line string that looks like keys",
        '''
        [accounts.acme-hl]
        provider = "highlevel"
        description = """\\
          Acme \\""" [accounts.acme-hl] \\
        timezone = "nowhere" \\
          Dental"""
        api_key_env = "ACME_HL_KEY"
        location_id = "loc-acme"
        timezone = "Mars/Olympus"
        ''',
        9,
    ),
    (
        "a literal multi-line string with quotes at its end",
        """
        [accounts.a]
        provider = 'cometly'
        description = '''Acme ''Dental'''''
        api_key_env = 'UNSET_KEY'
        """,
        4,
    ),
    (
        "dotted keys under [accounts]",
        """
        [accounts]
        # one account, in dotted keys
        a.provider = "cometly"
        a . description = "x"
        a.api_key_env = "US_KEY"
        a.  "timezone" = "Mars/Olympus"
        """,
        6,
    ),
    (
        "fully dotted keys at the top",
        """
        accounts.a.provider = "cometly"
        accounts.a.description = "x"

        accounts.a.api_key_env = "US_KEY"
        accounts.a.rate_limits.list_contacts = "1/0"
        """,
        5,
    ),
    (
        "an inline table across a file",
        """
        [accounts]
        first = { provider = "cometly", description = "x", api_key_env = "US_KEY" }
        second = { provider = "cometly", description = "y", api_key_env = "K", rate_limits = { get_contact = "x" } }
        """,
        3,
    ),
    (
        "a missing key of a quoted name, its header line",
        """
        [accounts.first]
        provider = "cometly"
        description = "x"
        api_key_env = "US_KEY"

        [accounts."sec\\u006fnd"]   # the escape spells "second"
        provider = "cometly"
        api_key_env = "US_KEY"
        """,
        6,
    ),
    (
        "a sub-table before its account's header",
        """
        [accounts.a.rate_limits]
        list_contacts = "1/1"

        [accounts.a]
        provider = "cometly"
        api_key_env = "US_KEY"
        """,
        4,
    ),
    (
        "arrays over lines and comments with brackets",
        """
        [accounts.a]  # [accounts.b]
        provider = "cometly" # description = "no"
        description = "x"
        api_key_env = "US_KEY"
        rate_limits = { list_contacts = [
            "1/1", # "x",
            "2/2",
        ], get_contact = [ "3/x" ] }
        """,
        8,
    ),
]


@pytest.mark.parametrize(("text", "line"), [case[1:] for case in LOCATED], ids=[case[0] for case in LOCATED])
def test_the_line_is_found_through_quoted_names_dotted_keys_inline_tables_and_strings(
    tmp_path: Path, text: str, line: int
) -> None:
    found, message = refusal(tmp_path, text)

    assert found == line, message


def test_lines_are_counted_the_same_with_windows_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_bytes(cometly("a", "", 'timezone = "Mars/Olympus"').replace("\n", "\r\n").encode())

    with pytest.raises(ConfigurationError, match=rf"{path.name}:6: "):
        load_accounts(path, ENVIRON)


def test_an_account_is_a_frozen_value(tmp_path: Path) -> None:
    [account] = load_accounts(write(tmp_path, cometly("a", 'rate_limits = { list_contacts = "1/1" }')), ENVIRON)

    with pytest.raises(AttributeError):
        account.name = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        account.rate_limits["cometly.get_contact"] = (Rate(1, 1.0),)  # type: ignore[index]
    assert account == Account(**{field: getattr(account, field) for field in account.__dataclass_fields__})
