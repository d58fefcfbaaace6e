"""An upstream that promises no key order: JSON answers re-serialised with every object's keys shuffled.

Cometly's docs never say in which order an object's keys come, so code that reads meaning into the
order is wrong on some day nobody sees. `ShuffledKeys` wraps an ASGI app (the sandbox) and `shuffled`
does the same to a decoded body, for respx side effects.
"""

from __future__ import annotations

import json
import random
from typing import Any, cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def shuffled(value: Any, rng: random.Random) -> Any:
    """`value` with the keys of every object in it, at every nesting level, in a random order; lists keep theirs."""
    if isinstance(value, dict):
        items = list(cast(dict[Any, Any], value).items())
        rng.shuffle(items)
        return {key: shuffled(inner, rng) for key, inner in items}
    if isinstance(value, list):
        return [shuffled(inner, rng) for inner in cast(list[Any], value)]
    return value


class ShuffledKeys:
    """Answers as `app` does, but every JSON body is re-serialised with its keys shuffled at every level.

    Each answer gets its own order (from `seed`, so a failure can be replayed); `answers` counts the
    JSON bodies shuffled, so a test can tell the wrapper was in the way.
    """

    def __init__(self, app: ASGIApp, *, seed: int) -> None:
        self.app = app
        self.rng = random.Random(seed)
        self.answers = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def reshuffle(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(cast(bytes, message.get("body", b"")))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = [(name, value) for name, value in cast(list[tuple[bytes, bytes]], start["headers"])]
            kind = next((value for name, value in headers if name.lower() == b"content-type"), b"")
            if kind.startswith(b"application/json") and body:
                body = json.dumps(shuffled(json.loads(body), self.rng)).encode()
                headers = [(name, value) for name, value in headers if name.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                self.answers += 1
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, reshuffle)
