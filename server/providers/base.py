"""The provider interface: what a contact API can do, and typed calls that return the tools' models.

A provider turns tool arguments into upstream requests through its `Upstream` client and turns the
answers into `Contact` / `ContactPage`. Adding a provider is one module implementing this class,
its entry in `server.providers.PROVIDERS`, and its tests; no tool changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal, cast
from zoneinfo import ZoneInfo

import httpx
from pydantic import JsonValue

from ...tools.models import (
    Contact,
    ContactMatches,
    ContactPage,
    CustomFields,
    GetContactQuery,
    ListContactsQuery,
    Lookup,
    NewContact,
)
from ...tools.updates import ContactChanges, ContactUpdate
from ..budgets import Budgets
from ..errors import Conflict, NotFound, NotSupported, UpstreamUnavailable, ValidationFailed
from ..http import ErrorReader, Upstream
from ..results import Redactor, secrets_of
from ..settings import ProviderSettings, Rate, Settings

Capability = Literal[
    "get_contact", "list_contacts", "filter_by_custom_field", "create_contact", "find_contact", "update_contact"
]
UTC_ZONE = ZoneInfo("UTC")
ID_SOURCES = "ids come from find_contact, list_contacts, filter_by_custom_field, create_contact or update_contact"
"""Where a contact id comes from, for argument descriptions and not-found messages: every tool that returns one."""
Clock = Callable[[], datetime]
"""The current moment, aware."""


class Provider(ABC):
    """One upstream contact API behind the server's tools."""

    name: ClassVar[str]
    """The value of the tools' `provider` argument."""
    label: ClassVar[str]
    """The vendor's name as people write it, for messages."""
    capabilities: ClassVar[frozenset[Capability]]
    """The tools this provider serves; the others answer `[not_supported]`."""
    default_budgets: ClassVar[Mapping[str, tuple[Rate, ...]]]
    """Rate budgets by name (`provider.tool`), as the vendor documents its limits."""
    create_takes: ClassVar[frozenset[str]] = frozenset()
    """The create_contact arguments this provider has a place for (`address.city`, `fields.source`, ...)."""
    update_takes: ClassVar[frozenset[str]] = frozenset()
    """The update_contact arguments this provider has a place for (`add_emails`, `fields.source`, ...)."""
    instead: ClassVar[Mapping[str, str]] = {}
    """For a tool this provider does not serve: what to do instead, said in its `[not_supported]` error."""

    @classmethod
    @abstractmethod
    def configured(cls, settings: Settings) -> bool:
        """Whether `settings` hold what this provider needs to run."""

    @classmethod
    @abstractmethod
    def account(cls, settings: Settings) -> str:
        """Whom the upstream counts its limits against: the key, and the scope it counts per if finer.

        Secret: budgets keep only its fingerprint.
        """

    @classmethod
    @abstractmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        budgets: Budgets,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> Provider:
        """Build the provider and its HTTP client; `transport` replaces the network (sandbox, tests).

        `clock` gives the current moment (aware) where the provider needs one; default: the system clock.
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Close the provider's HTTP client."""

    @classmethod
    def _open_upstream(
        cls,
        settings: Settings,
        provider: ProviderSettings,
        *,
        headers: Mapping[str, str],
        read_error: ErrorReader,
        budgets: Budgets,
        transport: httpx.AsyncBaseTransport | None,
    ) -> Upstream:
        """This provider's HTTP client, with the server-wide wait and timeout settings and every secret to redact."""
        return Upstream(
            label=cls.label,
            base_url=provider.base_url,
            headers=headers,
            budgets=budgets,
            max_wait_seconds=settings.max_wait_seconds,
            timeout_seconds=settings.timeout_seconds,
            max_response_bytes=settings.max_response_bytes,
            read_error=read_error,
            redactor=Redactor(secrets_of(settings)),
            transport=transport,
        )

    def _unsupported(self, tool: str) -> NotSupported:
        return NotSupported(f"{self.label} does not support {tool}; {self.instead_of(tool)}.")

    @classmethod
    def instead_of(cls, tool: str) -> str:
        """What to do instead of `tool` on this provider, as a clause for an error message."""
        return cls.instead.get(tool, "call server_info to see which tools each provider serves")

    def _refuse_what_it_cannot_hold(self, contact: NewContact) -> None:
        """Refuse a create that names arguments this provider has no place for, saying who takes them.

        Raises:
            ValidationFailed: Naming each such argument and the providers that take it.
        """
        refused = [argument for argument in given_arguments(contact) if argument not in self.create_takes]
        if not refused:
            return
        providers = [cls for cls in Provider.__subclasses__() if cls is not type(self)]
        hints: list[str] = []
        for argument in refused:
            takers = sorted(cls.label for cls in providers if argument in cls.create_takes)
            hints.append(f"{argument} ({' and '.join(takers)} only)" if takers else argument)
        instead = [
            hint
            for argument, (alternative, hint) in _ALTERNATIVES.items()
            if alternative in self.create_takes and any(r.partition(".")[0] == argument for r in refused)
        ]
        raise ValidationFailed(
            f"{self.label} has no place for {', '.join(hints)}; leave {'it' if len(refused) == 1 else 'them'} out"
            f"{''.join(f' and {hint}' for hint in instead)}. Nothing was sent."
        )

    def _refuse_what_it_cannot_update(self, changes: ContactChanges) -> None:
        """Refuse an update that names nothing, or arguments this provider has no place for, saying who takes them.

        Raises:
            ValidationFailed: An empty update, or naming each such argument and the providers that take it.
        """
        if changes.empty:
            raise ValidationFailed(
                "The update names nothing to change: give custom_fields, add_*/remove_* lists or fields. "
                "Nothing was sent."
            )
        refused = [argument for argument in changes.given() if argument not in self.update_takes]
        if not refused:
            return
        providers = [cls for cls in Provider.__subclasses__() if cls is not type(self)]
        hints: list[str] = []
        for argument in refused:
            takers = sorted(cls.label for cls in providers if argument in cls.update_takes)
            hints.append(f"{argument} ({' and '.join(takers)} only)" if takers else argument)
        raise ValidationFailed(
            f"{self.label} has no place for {', '.join(hints)}; leave {'it' if len(refused) == 1 else 'them'} out. "
            "Nothing was sent."
        )

    @property
    def zone(self) -> ZoneInfo:
        """The timezone date ranges and date words are read in for this provider."""
        return UTC_ZONE

    async def custom_fields(self, *, refresh: bool = False) -> CustomFields:
        """The account's custom fields: which can be filtered, under which labels.

        Args:
            refresh: Read them from the upstream again instead of using what is cached.

        Raises:
            ContactsError: Classified failures of the upstream requests this takes.
        """
        return CustomFields(
            provider=self.name, filterable=False, note=f"{self.label} custom fields cannot be filtered on this server."
        )

    async def get_contact(self, query: GetContactQuery) -> Contact:
        """Fetch one contact by id.

        Raises:
            ContactsError: Classified failures (`NotFound` for an unknown id, ...).
        """
        raise self._unsupported("get_contact")

    async def list_contacts(self, query: ListContactsQuery) -> ContactPage:
        """List contacts created in a date range, one page at a time, optionally filtered.

        Raises:
            ContactsError: Classified failures.
        """
        raise self._unsupported("list_contacts")

    async def find_contacts(self, lookup: Lookup, *, limit: int) -> ContactMatches:
        """The contacts matching `lookup`: at most `limit`, best first, with how many matched in all.

        Raises:
            ContactsError: Classified failures (`NotFound` when an exact email or phone matches none).
        """
        raise self._unsupported("find_contact")

    async def create(self, contact: NewContact) -> Contact:
        """create_contact's whole job: refuse a duplicate of an existing contact's email, else create it.

        Raises:
            Conflict: A contact with the first email exists (and `allow_duplicate` is not set); the
                message names it.
            ContactsError: Classified failures of the lookup or the create.
        """
        self.check_create(contact)  # a create that could never be sent is refused before the lookup is
        if not contact.allow_duplicate:
            existing = await self.duplicate_of(contact.emails[0])
            if existing is not None:
                raise Conflict(
                    f"{self.label} already has a contact with email {contact.emails[0]}: {describe(existing)}. "
                    f"Nothing was created. Use it (get_contact(contact_id={existing.id!r}, provider={self.name!r})), "
                    "or call create_contact again with allow_duplicate=true to create another contact anyway."
                )
        return await self.create_contact(contact)

    async def duplicate_of(self, email: str) -> Contact | None:
        """The existing contact with this email, by the provider's own lookup; None when there is none.

        Raises:
            ContactsError: Classified failures of the lookup.
        """
        if "find_contact" not in self.capabilities:
            return None
        try:
            found = await self.find_contacts(Lookup(email=email), limit=1)
        except NotFound:
            return None
        return found.contacts[0] if found.contacts else None

    def check_create(self, contact: NewContact) -> None:
        """Refuse, before any request, a create this provider could not send as given.

        Raises:
            ValidationFailed: An argument it has no place for, too many values, a missing setting.
        """
        self._refuse_what_it_cannot_hold(contact)

    async def create_contact(self, contact: NewContact) -> Contact:
        """Create one contact; never sent twice.

        Raises:
            ContactsError: Classified failures.
        """
        raise self._unsupported("create_contact")

    async def update(self, changes: ContactChanges) -> ContactUpdate:
        """update_contact's whole job: read the contact, apply only the named changes, write what differs, read back.

        Nothing the call does not name may change; a write is sent only when a value differs.

        Raises:
            ValidationFailed: An empty update, an argument the provider has no place for, a bad value;
                nothing is sent.
            NotFound: No such contact.
            Conflict: The read-back shows the contact changed by someone else meanwhile.
            ContactsError: Other classified failures.
        """
        raise self._unsupported("update_contact")


@dataclass(frozen=True)
class Dropped:
    """A key a vendor returns that results leave out on purpose, and why."""

    why: str


Destination = str | tuple[str, ...] | Dropped
"""Where a vendor's key goes in a `Contact`: a field (dotted for a section's key), several, or `Dropped`."""


def unmapped(raw: Mapping[str, Any], table: Mapping[str, Destination]) -> dict[str, JsonValue]:
    """The keys of `raw` the table does not name: they go to the provider's section as sent, empty ones aside."""
    return {
        key: cast(JsonValue, value)
        for key, value in raw.items()
        if key not in table and value not in (None, "", [], {})
    }


_ALTERNATIVES = {
    "locations": ("address.line1", "give the address in parts with `address` instead"),
    "address": ("locations", "give it as free text in `locations` instead"),
}
"""For an argument a provider refuses: what it may take instead, and how to say so."""


def given_arguments(contact: NewContact) -> list[str]:
    """The create_contact arguments a call gave (beyond `emails`), as `create_takes` names them."""
    given = [key for key in ("phones", "names", "locations", "custom_fields", "tags") if getattr(contact, key)]
    if contact.address is not None:
        given += [f"address.{part}" for part in contact.address.given()]
    given += [f"fields.{name}" for name in contact.fields.given()]
    return given


def describe(contact: Contact) -> str:
    """A contact in a few words for a message: its id and primary name, email and phone."""
    known = [value[0] for value in (contact.names, contact.emails, contact.phones) if value]
    return f"id {contact.id}" + (f" ({', '.join(known)})" if known else "")


def stripped(value: Any) -> str | None:
    """An upstream string field without surrounding blanks; None when it is blank or not a string."""
    return value.strip() or None if isinstance(value, str) else None


def upstream_id(value: Any) -> str | None:
    """A contact id from an upstream answer, as text: a non-blank string or a whole number; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return stripped(value)


def look_up_before_creating_again(email: str) -> str:
    """How to check whether a create that may have reached the upstream took effect, with no lookup by email."""
    return f"look for {email} with list_contacts over today before calling create_contact again"


_TRY_AGAIN = " Try again; if it persists, its API may have changed."


def unexpected_shape(label: str, what: str, detail: Any = None) -> UpstreamUnavailable:
    """The error for an upstream answer that does not have the documented shape."""
    extra = f" ({detail})" if detail else ""
    return UpstreamUnavailable(f"{label} sent {what} of an unexpected shape{extra}.{_TRY_AGAIN}")


@contextmanager
def created(unsure: str) -> Generator[None]:
    """Around reading a create's successful answer: one of an unexpected shape still means it took effect.

    Raises:
        UpstreamUnavailable: The answer's error, saying how to check instead of to try again.
    """
    try:
        yield
    except UpstreamUnavailable as exc:
        what = exc.message.removesuffix(_TRY_AGAIN)
        raise UpstreamUnavailable(f"{what} The create probably took effect: {unsure}.") from None
