"""Where the vendors' contracts are silent, and what the product and the sandbox do there.

Everything else the product sends and reads, and everything the sandbox answers, follows the
vendor's own contract: HighLevel's and Clemta's OpenAPI files (`../shared/reference/`) and the
JSON Schema written from Cometly's API pages (`tests/contracts/cometly/`). The contract tests
check that, over the whole test suite, and allow a departure only where it is listed in
`SILENCES` below. The rule in each silent place: the product accepts every plausible shape and
never turns an unexpected one into a wrong answer; the sandbox picks one plausible shape.

Cometly
- Elements of `emails`, `phones`, `names`, `locations` and `comet_tokens` are typed only `array`
  (placeholder `[{}]`). The sandbox sends objects `{"email": ..., "created_at": ...}`; the product
  reads strings, or objects by their `email`/`phone`/`name`/`location`/`value` key.
- No creation time of a contact is documented anywhere. The product shows a `created_at` only if
  one ever arrives, or when its contact index has proved the second; otherwise `created_between`,
  the narrowest list range the contact was returned in (`server.index`). The sandbox sends none
  on a contact (its elements carry the element's own time).
- Whether the list's `start_date`/`end_date` bounds are inclusive, and which moment a wall time a
  DST change shows twice means: undocumented. The product takes both bounds as inclusive (a range
  ends at :59), and its index never starts or ends a window on such a wall time, so each window's
  UTC bounds hold whichever moment Cometly picks; the sandbox takes both bounds inclusive and can
  be told either moment (`create_app(ambiguous=...)`).
- That ids grow with creation time is not documented (the list is only said to be ordered by id
  descending): the index never dates a contact by its id, only by the ranges it was listed in; it
  uses id order only to stop reading pages early while dating one contact.
- The get-contact limit is 30 a minute on the API page and 15 on the MCP page: the product starts at
  15 and follows `X-RateLimit-Limit` up to what Cometly advertises; the sandbox allows 30.
- The 429 body is undocumented, and `X-RateLimit-Reset` is documented only for the hosted MCP
  endpoint: the sandbox sends `{"message": "Too Many Attempts."}`, `Retry-After` and
  `X-RateLimit-Reset`; the product follows whichever it finds.
- A 422's Laravel `errors` object is undocumented: the sandbox sends it, the product reads it when
  present and falls back to `message`.
- The format of a date slot's value is undocumented: the sandbox stores and shows
  `YYYY-MM-DD HH:MM:SS`; the product passes whatever Cometly sends.
- A label equal to a reserved key (`email`, ...) or to another slot's raw name: undocumented. The
  product pairs labels with slots by their values, never by key order, and refuses a label it
  cannot pin to one slot (`[upstream_unavailable]`) rather than filter another slot.
- The get page writes its flags as `1`/`0` but once as `include_comet_tokens=true`: the contract
  accepts either, the product sends `1`/`0`. Its create example sends a number slot as a string
  (`"500"`): the contract accepts a number or a numeric string, the product sends numbers.
- The update endpoint's statuses and limit are not established, nor whether its answer's
  `custom_fields` holds all 30 slots.
  The product budgets the PUT at the create's 60 a minute (`cometly.update_contact`) and follows
  `X-RateLimit-Limit`; the sandbox allows 60 a minute, answers an unknown id 404 `{"message"}`,
  a bad body 422 with Laravel's `errors`, and echoes `custom_fields` with all 30 slots.
- The update's input types no slot as taking null, so the product clears a slot by leaving it out of
  the `custom_fields` it sends (a slot not sent becomes null) and sends every other slot that has a
  value. Elements beyond the 25 a get shows cannot be read, so an update that must send back a
  collection showing 25 is refused rather than cutting the rest.
- Whether labels work as `custom_fields` keys on create or update: undocumented. The product
  resolves labels to slots itself (`describe_custom_fields`' labels) and sends slots only.
- The format of an event's `event_time_utc`, the type of a conversion's `amount`, and its currency:
  undocumented. The sandbox sends `YYYY-MM-DD HH:MM:SS` and a number or null. The journey summary
  (`tools/journey.py`) reads ISO 8601 (UTC without an offset) or Unix seconds/milliseconds, and
  leaves an event whose time it cannot read unranked (said in its `note`); it sums amounts that are
  numbers or numeric text, counts any other as `amount_missing`, and names no currency.
- Sorting the list tools by a custom field (`sort_by`) is the server's, since the list takes no sort:
  a date slot's value is read as ISO 8601 (`YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS`, or with an offset,
  compared in the Space's timezone) and a number slot's as a number or numeric text; a value that
  is neither sorts after those that are (compared as text), before contacts with no value.

HighLevel
- `GET /contacts/{contactId}` documents no 404: the sandbox answers an unknown id with 404
  `{"statusCode", "message"}`; the product reads 404, and a 400 or 422 whose message says the
  contact was not found, as `[not_found]`.
- `GET /contacts/search/duplicate` documents its 200 without a schema: the sandbox answers
  `{"contact": {...}}` or `{"contact": null}`; the product also reads a `contacts` array.
- `POST /contacts/search` documents its body as an object without properties (the fields are on a
  linked doc HighLevel's file does not hold) and its 200 and 400 without a schema. The contract
  checks use `tests/contracts/highlevel/search-contacts.json`, written from the fields a HighLevel
  white-label copy documents (`locationId`, `pageLimit` <= 500, `page`, `searchAfter`, `filters`,
  `sort`, `query` <= 75 characters). The product sends `locationId`, `page`, `pageLimit` and
  `query`. The answer's shape is undocumented: the sandbox answers `{"contacts": [...GET shape],
  "total"}` (a 400 as `BadRequestDTO`, a 401 as `UnauthorizedDTO`); the product reads the contacts
  from `contacts` (each must have an id) and the total from `total`, `count` or `meta.total`, the
  first present; a total that is not a whole number, or is smaller than the contacts returned, or
  more contacts than `pageLimit`, is `[upstream_unavailable]`, not an answer. With no total, the
  product counts what came back and says the total is a lower bound, unless fewer came back than it
  asked for. Which fields `query` searches ("searchable" ones in Custom Field Settings), how it
  matches (partial, case, accents) and how it ranks are undocumented: the product sends the text as
  given, and the accent-folded text too when folding changes it, keeps HighLevel's order, and puts
  the folded search's new matches after; the sandbox matches any case, accents as written, over
  name, email, company and phone digits, newest first. Results may lag writes by a few seconds.
- A duplicate refused on create: the sandbox adds `meta: {contactId, matchingField}` to the 400
  (BadRequestDTO has only `statusCode` and `message`), as HighLevel is seen to; the product names
  the existing contact when `meta` is there.
- 429 documents neither a body nor `Retry-After`: the sandbox answers `{"statusCode": 429,
  "message"}` without `Retry-After`; the product waits what `X-RateLimit-Interval-Milliseconds`
  says (a daily limit used up fails at once).
- A token used on another sub-account's `locationId`: undocumented status; the sandbox answers 403.
- `customFields[].value` is typed string; other field types' values are undocumented. The sandbox
  sends strings; the product passes any JSON value through.
- `PUT /contacts/{contactId}` and the tag endpoints document no 404: the sandbox answers an unknown id
  with 404 `{"statusCode", "message"}`; the product reads it, and a 400/422 saying not found, as
  `[not_found]` (it reads the contact before any write). Whether PUT is a partial update is not said
  in words, but no key is required: the product sends only the keys whose value changes; the sandbox
  changes only the keys sent. Whether the tag endpoints answer the full tag set: the sandbox does;
  the product reads the contact back instead.
- A numeric custom field's `field_value` is typed `object` in the spec (example 100): the product
  sends numbers as their text (every field type's schema takes a string), the sandbox reads a
  number or a numeric string. A clear is sent as `""`.
- Tag case: the sandbox keeps tags lower-cased, as HighLevel is seen to; the product compares tags
  and emails ignoring case, and phones as E.164, when it checks what an update left.

Clemta
- 429 and 403 are not listed on the contact paths: the sandbox answers them with the
  `RateLimitError` / `ForbiddenError` envelopes of the same file.
- Contact not found is `NOT_FOUND` in the OpenAPI and `CONTACT_NOT_FOUND` on the docs pages: the
  sandbox sends `NOT_FOUND`; the product reads both.
- How `end_date` combines with `created_at`/`created_at_value`, and what `search` matches
  (exactly, by prefix or anywhere; case): undocumented. The sandbox keeps contacts created at or
  before `end_date` and matches `search` anywhere in the name or email, ignoring case; the
  product still drops contacts created after the range's end, and `find_contacts` keeps only
  exact (case-insensitive) email matches and, for a name or query, contacts whose name or email
  contains it folded (any case, accents ignored); it uses Clemta's `total` only when every
  contact it read passed that check. Whether `search` looks at phones is undocumented (it says
  "name or email"): a phone alone is refused as `[not_supported]` rather than searched.
- The list's `data.skip` and `data.limit` appear on the docs page's example only: the sandbox
  leaves them out; the product does not need them.
- No rate-limit numbers are published ("100 requests per minute" appears in examples), nor which
  endpoints count per key and which per resource: the product keeps one 100/min budget per key,
  follows `X-RateLimit-Limit`, and lets a `X-RateLimit-Type: resource` header only lower it.
- `status` values are undocumented ("may vary"): the sandbox uses `active`; the product passes any.
- Whether `status` may be empty: undocumented. The sandbox puts `active` in place of an empty one;
  the product sends a clear as "" and, whatever the read-back shows (empty, a default, the old
  value), reports it as read with a note rather than as someone else's change (`compared`).
- Whether PATCH clears the optional keys it is not sent, or keeps them: undocumented. The product
  sends the whole contact it read with the change applied (a cleared text as "", a cleared list as
  []), so either reading keeps every value not named; the sandbox keeps what is left out, and
  clears what is sent empty.
- How the list's `sort` compares `full_name` and `email` (case, accents) and where it puts a missing
  value: undocumented. The product asks Clemta to sort only by `created_at` (whole seconds); a
  sort by name or email is the server's, over the contacts read newest first. With `end_date`
  alone (no `start_date`) it sends `created_at=lt` with the end's second plus one, whose meaning
  the docs give, rather than `end_date` on its own; with neither, no creation filter at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Vendor = Literal["cometly", "highlevel", "clemta"]


@dataclass(frozen=True)
class Silence:
    """One answer the vendor's contract does not describe, which the sandbox gives anyway."""

    vendor: Vendor
    method: str
    """Upper case, e.g. `GET`; `*` for every method."""
    path: str
    """The contract's path template, e.g. `/contacts/{contactId}`; `*` for every path."""
    status: int
    """The HTTP status of the answer."""
    why: str
    """What the contract leaves open, in a few words."""
    schema: str | None = None
    """A component schema of the same contract the body is checked against instead; None: not checked."""
    extra_keys: tuple[str, ...] = ()
    """Top-level body keys allowed beyond the documented ones."""


SILENCES: tuple[Silence, ...] = (
    Silence(
        "cometly", "*", "*", 422, "Laravel's field errors beside the message", schema="error", extra_keys=("errors",)
    ),
    Silence("highlevel", "GET", "/contacts/{contactId}", 404, "no 404 documented for an unknown contact"),
    Silence("highlevel", "GET", "/contacts/search/duplicate", 200, "the 200 has no schema"),
    Silence("highlevel", "GET", "/contacts/search/duplicate", 403, "another sub-account's locationId"),
    Silence(
        "highlevel",
        "POST",
        "/contacts/search",
        200,
        "the 200 has no schema: the sandbox answers {contacts, total}",
        schema="SearchContactsAnswer",
    ),
    Silence("highlevel", "POST", "/contacts/search", 400, "the 400 has no schema", schema="BadRequestDTO"),
    Silence("highlevel", "POST", "/contacts/search", 401, "the 401 has no schema", schema="UnauthorizedDTO"),
    Silence("highlevel", "POST", "/contacts/search", 403, "another sub-account's locationId"),
    Silence("highlevel", "POST", "/contacts/", 403, "another sub-account's locationId"),
    Silence("highlevel", "GET", "/locations/{locationId}/customFields", 403, "another sub-account's locationId"),
    Silence(
        "highlevel",
        "POST",
        "/contacts/",
        400,
        "a refused duplicate names the existing contact",
        schema="BadRequestDTO",
        extra_keys=("meta",),
    ),
    Silence("highlevel", "*", "*", 429, "no 429 documented"),
    Silence("cometly", "PUT", "/contacts/{id}", 404, "the update's statuses are not established", schema="error"),
    Silence("highlevel", "PUT", "/contacts/{contactId}", 404, "no 404 documented for an unknown contact"),
    Silence("highlevel", "POST", "/contacts/{contactId}/tags", 404, "no 404 documented for an unknown contact"),
    Silence("highlevel", "DELETE", "/contacts/{contactId}/tags", 404, "no 404 documented for an unknown contact"),
    Silence("clemta", "*", "*", 429, "429 not listed on the contact paths", schema="RateLimitError"),
    Silence("clemta", "*", "*", 403, "403 not listed on the contact paths", schema="ForbiddenError"),
)
"""Answers the sandbox may give that its vendor's contract does not document, with why."""
