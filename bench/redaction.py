"""What taking secrets out costs on a big result: the hot path (no piece of a secret anywhere) and the rare one.

    uv run python -m bench.redaction [--contacts 20000] [--repeat 5] [--json PATH]

Everything runs in this process. A sandbox (`create_app`, fixed seed and `NOW`, every rate limit
raised) answers the server's Cometly provider through its ASGI app; one `list_contacts` call with
`max_results` = `--contacts` and the ceiling at its maximum gives the result a model would read
(about 1.6 million characters for 20,000 contacts), and a transport records the raw upstream pages
it was read from. On those, each step is timed (best of `--repeat`, milliseconds):

- `shape + as_text`: what `ContactsServer.call_tool` spends on a result anyway, for scale;
- `text`: `Redactor.text` over the result's text, the scan `call_tool` makes on the way out;
- `value`: `Redactor.value` over the structured result, and over each raw upstream page as
  `server.http.Upstream` parses it (`json.loads` of the pages shown beside it, for scale);

for no secret configured, the sandbox's three keys, and five secrets (the keys, an HTTP token and a
Redis password). The rare path puts a key into one contact of the 20,000 and times the same steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client

from bench.result_size import RecordingTransport
from bench.tables import print_table
from contacts_mcp.server.app import build_server
from contacts_mcp.server.results import Redactor, as_text, shape
from contacts_mcp.server.sandbox import DEFAULT_RATE_LIMITS, SANDBOX_KEYS, create_app, sandbox_settings
from contacts_mcp.server.settings import Settings, parse_rate_limits

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
UNLIMITED = "1000000/1"
EXTRA_SECRETS = ("http-token-Zq8wPn3vKxRt0123", "redis-password-Hq7Lm2Vx")


async def read_result(contacts: int) -> tuple[dict[str, Any], list[bytes]]:
    """The structured result of one list_contacts over every contact, and the upstream bodies it was read from."""
    app = create_app(contacts=contacts, now=NOW, rate_limits=dict.fromkeys(DEFAULT_RATE_LIMITS, (1_000_000, 1.0)))
    limits = parse_rate_limits(f"cometly.list_contacts={UNLIMITED},cometly.get_contact={UNLIMITED}")
    settings = Settings.model_validate(
        {**sandbox_settings("http://sandbox"), "max_result_tokens": 1_000_000, "rate_limits": limits}
    )
    bodies: list[bytes] = []
    server = build_server(
        settings,
        transport=lambda: RecordingTransport(httpx.ASGITransport(app=app), lambda _r, _s, body: bodies.append(body)),
        sandbox=True,
        clock=lambda: NOW,
    )
    arguments = {"start_date": "2000-01-01", "end_date": NOW.date().isoformat(), "max_results": contacts}
    async with app.router.lifespan_context(app), Client(server) as client:
        result = await client.call_tool("list_contacts", {**arguments, "provider": "cometly"})
    if result.is_error or result.structured_content is None:
        raise SystemExit(f"the bench could not read the contacts: {result.content}")
    return result.structured_content, bodies


def best_ms(step: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)

    structured, bodies = anyio.run(read_result, args.contacts)
    text = as_text(structured)
    pages = [json.loads(body) for body in bodies]
    raw_chars = sum(len(body) for body in bodies)
    leaking = json.loads(json.dumps(structured))
    leaking["contacts"][len(leaking["contacts"]) // 2]["names"] = [f"pasted {SANDBOX_KEYS['cometly']} here"]
    leaking_text = as_text(leaking)
    print(
        f"result: {len(structured['contacts']):,} contacts, {len(text):,} characters of text; "
        f"upstream: {len(bodies)} pages, {raw_chars:,} bytes",
        file=sys.stderr,
    )

    configurations = {
        "none": Redactor([]),
        "3 keys": Redactor(SANDBOX_KEYS.values()),
        "5 secrets": Redactor([*SANDBOX_KEYS.values(), *EXTRA_SECRETS]),
    }
    rows: list[dict[str, Any]] = [
        {"case": "shape + as_text (for scale)", "ms": best_ms(lambda: as_text(shape(structured)), args.repeat)},
        {"case": "json.loads of the pages (for scale)", "ms": best_ms(lambda: [json.loads(b) for b in bodies], 3)},
    ]
    for name, redactor in configurations.items():
        rows += [
            {"case": f"{name}: text of the result", "ms": best_ms(lambda r=redactor: r.text(text), args.repeat)},
            {
                "case": f"{name}: value of the result",
                "ms": best_ms(lambda r=redactor: r.value(structured), args.repeat),
            },
            {
                "case": f"{name}: value of every upstream page",
                "ms": best_ms(lambda r=redactor: [r.value(page) for page in pages], args.repeat),
            },
        ]
    redactor = configurations["5 secrets"]
    assert redactor.value(structured) is structured  # nothing found: nothing copied
    assert redactor.text(text) is text
    rows += [
        {"case": "5 secrets, one contact holds a key: text", "ms": best_ms(lambda: redactor.text(leaking_text), 3)},
        {"case": "5 secrets, one contact holds a key: value", "ms": best_ms(lambda: redactor.value(leaking), 3)},
    ]
    assert "[redacted]" in redactor.text(leaking_text)
    print_table(["case", "ms"], [[row["case"], f"{row['ms']:,.1f}"] for row in rows])
    if args.json:
        args.json.write_text(json.dumps({"text_chars": len(text), "raw_bytes": raw_chars, "rows": rows}), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
