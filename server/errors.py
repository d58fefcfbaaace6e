"""The errors of contacts-mcp, split by who reads them.

```
Exception
├── ConfigurationError        the person running the server: a setting is missing or wrong; exit 2 at start
└── ContactsError             the model: a tool call failed; rendered as "[kind] message"
    ├── ValidationFailed        [validation_error]      bad arguments, or the upstream's 422
    ├── AuthenticationFailed    [authentication_error]  the upstream rejected the key (401)
    ├── PermissionDenied        [permission_error]      the key may not do this (403)
    ├── NotFound                [not_found]             no such contact (404)
    ├── Conflict                [conflict]              a contact with that email exists already
    ├── RateLimited             [rate_limited]          a 429, or the local budget would wait too long
    ├── UpstreamUnavailable     [upstream_unavailable]  5xx, timeout, connection error, unreadable body
    │   └── IndexUnavailable                              the contact index's file or database failed
    ├── NotSupported            [not_supported]         the provider or server cannot do this
    └── InternalError           [internal_error]        a bug of ours; details go to the log only
```

Messages of `ContactsError` are shown to the model, so each one says what to do next and never
carries an API key. Upstream errors keep the HTTP method, path and status for the log.
"""

from __future__ import annotations

import math


class ConfigurationError(Exception):
    """A setting is missing or invalid; the message names the environment variable to fix."""


class ContactsError(Exception):
    """A tool call failed in a way the model can read and act on."""

    kind: str = "internal_error"

    def __init__(self, message: str, *, status: int | None = None, request: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.request = request

    def render(self) -> str:
        """The text the model sees: the class in brackets, then what happened and what to do."""
        return f"[{self.kind}] {self.message}"


class ValidationFailed(ContactsError):
    """The arguments are wrong (checked locally or rejected by the upstream with a 422)."""

    kind = "validation_error"


class AuthenticationFailed(ContactsError):
    """The upstream rejected the API key (401)."""

    kind = "authentication_error"


class PermissionDenied(ContactsError):
    """The API key lacks permission or the subscription is inactive (403)."""

    kind = "permission_error"


class NotFound(ContactsError):
    """The upstream has no such contact (404)."""

    kind = "not_found"


class Conflict(ContactsError):
    """The change would duplicate or overwrite what exists (a contact with the same email, a concurrent edit)."""

    kind = "conflict"


class RateLimited(ContactsError):
    """The upstream answered 429, or the local budget cannot send within the allowed wait."""

    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, status: int | None = None, request: str | None = None):
        super().__init__(message, status=status, request=request)
        self.retry_after = retry_after

    def render(self) -> str:
        seconds = max(1, math.ceil(self.retry_after))
        return f"[{self.kind}] {self.message} Retry after {seconds} s."


class UpstreamUnavailable(ContactsError):
    """The upstream failed or could not be reached (5xx, timeout, connection error, unreadable body)."""

    kind = "upstream_unavailable"


class IndexUnavailable(UpstreamUnavailable):
    """The contact index could not be read or written (its file or database failed)."""


class NotSupported(ContactsError):
    """The chosen provider or this server's configuration does not offer the operation."""

    kind = "not_supported"


class InternalError(ContactsError):
    """An unexpected failure inside the server; the details are in the server's log only."""

    kind = "internal_error"
