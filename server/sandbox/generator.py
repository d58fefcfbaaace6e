"""Deterministic seed data: a Space of contacts that looks like a small business's.

`generate(count=..., seed=..., now=...)` always returns the same contacts for the same arguments:
creation times spread over the 90 days before `now`, realistic names, emails, E.164 phones and
cities, labelled custom fields (some unset, a few carrying literal `_` and `\\`), merged profiles,
comet tokens, event journeys and browsing hits for a share of them, and one heavy contact that
overflows every cap (more than 25 emails, 5 comet tokens and 1000 browsing hits).
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .model import (
    COUNTRIES,
    Attribution,
    BrowsingHit,
    CustomValue,
    Event,
    NewContact,
    Profile,
    Stamped,
    unix,
    utc_text,
)

FIRST_ID = 10001
"""Cometly ids of generated contacts start here, so they never look like page sizes or counts."""

LABELS: dict[int, str] = {
    1: "Company",
    2: "Lead Source",
    3: "Job Title",
    5: "Customer Plan",
    6: "Referral Code",
    16: "Seats",
    17: "Lifetime Value",
    26: "Trial Ends",
    27: "Renewal Date",
}
"""The sandbox Space's labelled slots; slots 4 and 18 hold values but have no label."""

SITE = "https://northpeak.example"
"""The Space's own website, where touchpoints land and browsing hits happen."""

_DAY = 86_400
_SPAN = 90 * _DAY

_FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen",
    "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark", "Ashley", "Priya", "Emily",
    "José", "Zoë", "Renée", "Björn", "Amélie", "François", "Aoife", "Siobhan", "Liam", "Noah",
    "Olivia", "Emma", "Ava", "Sofia", "Mateo", "Lucas", "Hannah", "Lena", "Arjun", "Ananya",
    "Wei", "Mei", "Kenji", "Yuki", "Fatima", "Omar", "Chloe", "Ethan", "Isabella", "Jack",
)  # fmt: skip
_LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Young", "Allen",
    "García", "Müller", "O'Brien", "Nguyen", "Schmidt", "Dubois", "Rossi", "Kowalski", "Murphy", "Kelly",
    "Patel", "Sharma", "Chen", "Wang", "Kim", "Tanaka", "Silva", "Santos", "Novak", "Fischer",
)  # fmt: skip
_NICKNAMES = {"James": "Jim", "Robert": "Bob", "William": "Bill", "Richard": "Rick", "Michael": "Mike",
              "Elizabeth": "Liz", "Jennifer": "Jen", "Joseph": "Joe", "Thomas": "Tom", "Daniel": "Dan"}  # fmt: skip

_PERSONAL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "hotmail.com", "proton.me")

_COMPANIES = (
    ("Acme Corp", "acme.example"),
    ("Northwind Traders", "northwind.example"),
    ("Globex", "globex.example"),
    ("Initech", "initech.example"),
    ("Umbrella Health", "umbrella-health.example"),
    ("Stark Logistics", "stark-logistics.example"),
    ("Wayne Analytics", "wayne-analytics.example"),
    ("Café Olé Roasters", "cafeole.example"),
    ("Blue_Harbor Labs", "blueharbor.example"),
    ("BlueXHarbor Media", "bluexharbor.example"),
    ("Back\\Slash Studio", "backslash.example"),
    ("Pied Piper", "piedpiper.example"),
    ("Hooli", "hooli.example"),
    ("Vandelay Industries", "vandelay.example"),
    ("Tyrell Systems", "tyrell.example"),
    ("Cyberdyne Robotics", "cyberdyne.example"),
    ("Oceanic Airlines", "oceanic.example"),
    ("Sterling Cooper", "sterlingcooper.example"),
    ("Dunder Mifflin", "dundermifflin.example"),
    ("Wonka Industries", "wonka.example"),
    ("Massive Dynamic", "massivedynamic.example"),
    ("Aperture Science", "aperture.example"),
    ("Nakatomi Trading", "nakatomi.example"),
    ("Los Pollos Hermanos", "lospollos.example"),
    ("Weyland-Yutani", "weyland.example"),
    ("Spacely Sprockets", "spacely.example"),
    ("Soylent Foods", "soylent.example"),
    ("Gringotts Finance", "gringotts.example"),
)
_JOB_TITLES = (
    "Product Manager",
    "Senior Product Designer",
    "Head of Production",
    "Production Assistant",
    "Software Engineer",
    "VP Marketing",
    "Marketing Manager",
    "Founder & CEO",
    "CTO",
    "Sales Director",
    "Account Executive",
    "Operations Lead",
    "Data Analyst",
    "Growth Marketer",
    "Customer Success Manager",
)
_LEAD_SOURCES = (
    "Facebook Ads",
    "Google Ads",
    "Organic Search",
    "Referral",
    "Webinar",
    "LinkedIn",
    "TikTok Ads",
    "Newsletter",
)
_PLANS = ("Free", "Basic", "Premium", "Enterprise")
_REFERRAL_CODES = (
    "SPRING_2025",
    "FRIEND10",
    "partner_north",
    "partner\\north",
    "vip_launch",
    "VIPXLAUNCH",
    "ref\\_odd",
    "WELCOME",
)


@dataclass(frozen=True)
class _City:
    name: str
    state: str | None
    province: str | None
    country: str
    timezone: str
    postal_code: str
    district: str
    area_codes: tuple[str, ...]
    national_length: int


_CITIES = (
    _City("New York", "NY", "New York", "US", "America/New_York", "10001", "Midtown", ("212", "646"), 10),
    _City("Austin", "TX", "Texas", "US", "America/Chicago", "78701", "Downtown", ("512", "737"), 10),
    _City("San Francisco", "CA", "California", "US", "America/Los_Angeles", "94103", "SoMa", ("415", "628"), 10),
    _City("Chicago", "IL", "Illinois", "US", "America/Chicago", "60601", "The Loop", ("312", "773"), 10),
    _City("Denver", "CO", "Colorado", "US", "America/Denver", "80202", "LoDo", ("303", "720"), 10),
    _City("Seattle", "WA", "Washington", "US", "America/Los_Angeles", "98101", "Belltown", ("206",), 10),
    _City("Miami", "FL", "Florida", "US", "America/New_York", "33131", "Brickell", ("305", "786"), 10),
    _City("Boston", "MA", "Massachusetts", "US", "America/New_York", "02108", "Back Bay", ("617",), 10),
    _City("Phoenix", "AZ", "Arizona", "US", "America/Phoenix", "85004", "Roosevelt Row", ("602",), 10),
    _City("Toronto", "ON", "Ontario", "CA", "America/Toronto", "M5H 2N2", "Financial District", ("416",), 10),
    _City("Vancouver", "BC", "British Columbia", "CA", "America/Vancouver", "V6B 1A1", "Gastown", ("604",), 10),
    _City("London", None, "England", "GB", "Europe/London", "EC1A 1BB", "Clerkenwell", ("20",), 10),
    _City("Manchester", None, "England", "GB", "Europe/London", "M1 1AE", "Northern Quarter", ("161",), 10),
    _City("Dublin", None, "Leinster", "IE", "Europe/Dublin", "D02 X285", "Temple Bar", ("1",), 9),
    _City("Berlin", None, "Berlin", "DE", "Europe/Berlin", "10115", "Mitte", ("30",), 10),
    _City("Munich", None, "Bavaria", "DE", "Europe/Berlin", "80331", "Altstadt", ("89",), 10),
    _City("Paris", None, "Île-de-France", "FR", "Europe/Paris", "75001", "Le Marais", ("1",), 9),
    _City("Madrid", None, "Community of Madrid", "ES", "Europe/Madrid", "28013", "Centro", ("91",), 9),
    _City("Amsterdam", None, "North Holland", "NL", "Europe/Amsterdam", "1012 JS", "Jordaan", ("20",), 9),
    _City("Sydney", "NSW", "New South Wales", "AU", "Australia/Sydney", "2000", "Surry Hills", ("2",), 9),
    _City("Melbourne", "VIC", "Victoria", "AU", "Australia/Melbourne", "3000", "Fitzroy", ("3",), 9),
    _City("São Paulo", "SP", "São Paulo", "BR", "America/Sao_Paulo", "01310-100", "Pinheiros", ("11",), 11),
    _City("Bengaluru", "KA", "Karnataka", "IN", "Asia/Kolkata", "560001", "Indiranagar", ("80",), 10),
)
# A US-heavy audience, as for a US-based business, with enough abroad to exercise other calling codes.
_CITY_WEIGHTS = tuple(5 if city.country == "US" else 2 for city in _CITIES)
_STREETS = ("Main St", "Oak Ave", "Market St", "High Street", "Elm St", "Park Road", "King Street", "Maple Dr")

_ASSIGNEES = ("Ua7fK2pQx9Lm3Rt8Wz1B", "Hq4Nn8Vd2Sx6Jk0Pe5Cc", "Tt9Yb3Gm7Rw1Zp4Kd8Ls")
_TAGS = ("newsletter", "webinar", "vip", "trial", "churn-risk", "partner")


@dataclass(frozen=True)
class _Ad:
    source: str
    medium: str
    session_source: str
    account: tuple[str, str]
    campaign: tuple[str, str]
    adset: tuple[str, str]
    ad: tuple[str, str]


def _ads() -> tuple[_Ad, ...]:
    platforms = (
        ("facebook", "paid_social", "Paid Social", ("1029384756", "Northpeak - Meta"), "1202100000000"),
        ("google", "cpc", "Paid Search", ("4817263950", "Northpeak - Google Ads"), "2174900000"),
        ("tiktok", "paid_social", "Paid Social", ("7261538490", "Northpeak - TikTok"), "1789000000000"),
    )
    campaigns = ("Spring Sale - Prospecting", "Retargeting - Cart Abandoners")
    adsets = ("Lookalike 1%", "Interests - SaaS Founders")
    ads = ("Video - Founder Story", "Carousel - Pricing")
    made: list[_Ad] = []
    for source, medium, session, account, base in platforms:
        for c, campaign in enumerate(campaigns):
            for s, adset in enumerate(adsets):
                for a, ad in enumerate(ads):
                    made.append(
                        _Ad(
                            source=source,
                            medium=medium,
                            session_source=session,
                            account=account,
                            campaign=(f"{base}{c + 1:02d}", campaign),
                            adset=(f"{base}{c + 1:02d}{s + 1:02d}", adset),
                            ad=(f"{base}{c + 1:02d}{s + 1:02d}{a + 1:02d}", ad),
                        )
                    )
    return tuple(made)


_ADS = _ads()
_PAGES = ("/", "/pricing", "/features", "/blog/attribution-101", "/demo", "/signup", "/checkout", "/docs")


def generate(
    *, count: int, seed: int, now: datetime, span_days: int = 90, first_id: int = FIRST_ID
) -> list[NewContact]:
    """Make `count` contacts, the same ones for the same (count, seed, now, span_days, first_id).

    Args:
        count: How many contacts (merged profiles come on top, as gaps in the ids).
        seed: Seeds the pseudo-random choices.
        now: The aware "today"; creation times fall in the `span_days` days before it.
        span_days: How far back creation times go (at least 1).
        first_id: The first contact's id (`FIRST_ID`; another account of a multi-account sandbox
            starts elsewhere, so its ids are not another account's).

    Returns:
        The contacts, ids ascending with creation time.

    Raises:
        ValueError: `now` is naive, `count` negative or `span_days` below 1.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if count < 0:
        raise ValueError("count must be 0 or more")
    if span_days < 1:
        raise ValueError("span_days must be 1 or more")
    generator = _Generator(random.Random(seed), unix(now.astimezone(UTC)), span=span_days * _DAY)
    return generator.run(count, first_id=first_id)


class _Generator:
    def __init__(self, rng: random.Random, now: int, *, span: int = _SPAN) -> None:
        self.rng = rng
        self.now = now
        self.span = span
        self.next_event_id = 1

    def run(self, count: int, *, first_id: int = FIRST_ID) -> list[NewContact]:
        rng = self.rng
        # At least a minute old, so a list ending at `now` holds every generated contact and
        # contacts created afterwards are the only ones after it.
        times = sorted(self.now - rng.randint(60, max(60, self.span)) for _ in range(count))
        contacts: list[NewContact] = []
        next_id = first_id
        for index, created_at in enumerate(times):
            if contacts and rng.random() < 0.03:
                # A duplicate profile that was later merged into an earlier contact: its id is a gap
                # in the list, its email now belongs to the survivor.
                survivor = rng.choice(contacts)
                survivor.merged_ids.append(next_id)
                survivor.emails.append(Stamped(self._personal_email(survivor), created_at))
                next_id += 1
            contacts.append(self._contact(next_id, created_at, heavy=index == count // 2))
            next_id += 1
        return contacts

    def _later(self, after: int) -> int:
        return self.rng.randint(after, max(after, self.now - 1))

    def _contact(self, contact_id: int, created_at: int, *, heavy: bool) -> NewContact:
        rng = self.rng
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        city = rng.choices(_CITIES, weights=_CITY_WEIGHTS)[0]
        company = rng.choice(_COMPANIES) if rng.random() < 0.65 else None
        work = company is not None and rng.random() < 0.5
        primary_email = self._email(first, last, company[1] if work and company else None)
        contact = NewContact(id=contact_id, created_at=created_at, emails=[Stamped(primary_email, created_at)])
        contact.names.append(Stamped(f"{first} {last}", created_at))
        if rng.random() < 0.85:
            contact.phones.append(Stamped(self._phone(city), created_at))
        if rng.random() < 0.8:
            contact.locations.append(Stamped(_location(city), created_at))
        self._secondaries(contact, first, last, company)
        contact.custom_fields = self._custom_fields(created_at, company)
        contact.events = self._events(created_at)
        contact.profile = self._profile(first, last, city, company, contact)
        if rng.random() < 0.4:
            contact.comet_tokens = [Stamped(self._token(), self._later(created_at)) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.2:
            contact.browsing_hits = [self._hit(created_at, city) for _ in range(rng.randint(3, 40))]
        if heavy:
            contact.emails.extend(
                Stamped(f"{_ascii(first)}.{_ascii(last)}+{n}@{rng.choice(_PERSONAL_DOMAINS)}", self._later(created_at))
                for n in range(1, 30)
            )
            contact.comet_tokens = [Stamped(self._token(), self._later(created_at)) for _ in range(8)]
            contact.browsing_hits = [self._hit(created_at, city) for _ in range(1100)]
        return contact

    def _email(self, first: str, last: str, domain: str | None) -> str:
        rng = self.rng
        given, family = _ascii(first), _ascii(last)
        local = rng.choice(
            (
                f"{given}.{family}",
                f"{given[0]}{family}",
                f"{given}{family}{rng.randint(1, 99)}",
                f"{given}_{family}",
                f"{family}.{given}",
            )
        )
        email = f"{local}@{domain or rng.choice(_PERSONAL_DOMAINS)}"
        # Some people type their address with capitals; HighLevel's emailLowerCase exists for them.
        return email.title() if rng.random() < 0.05 else email

    def _personal_email(self, contact: NewContact) -> str:
        first, _, last = contact.names[0].value.partition(" ")
        return f"{_ascii(first)}.{_ascii(last)}{self.rng.randint(100, 999)}@{self.rng.choice(_PERSONAL_DOMAINS)}"

    def _phone(self, city: _City) -> str:
        area = self.rng.choice(city.area_codes)
        rest = "".join(str(self.rng.randint(0, 9)) for _ in range(city.national_length - len(area)))
        if city.country in {"US", "CA"}:
            rest = str(self.rng.randint(2, 9)) + rest[1:]  # NANP exchanges never start with 0 or 1
        return f"+{COUNTRIES[city.country].calling_code}{area}{rest}"

    def _secondaries(self, contact: NewContact, first: str, last: str, company: tuple[str, str] | None) -> None:
        rng, created_at = self.rng, contact.created_at
        if rng.random() < 0.1:
            domain = company[1] if company else None
            contact.emails.append(Stamped(self._email(first, last, domain), self._later(created_at)))
        if rng.random() < 0.05:
            contact.phones.append(Stamped(self._phone(rng.choice(_CITIES)), self._later(created_at)))
        if first in _NICKNAMES and rng.random() < 0.3:
            contact.names.append(Stamped(f"{_NICKNAMES[first]} {last}", self._later(created_at)))
        if rng.random() < 0.04:
            contact.locations.append(Stamped(_location(rng.choice(_CITIES)), self._later(created_at)))

    def _custom_fields(self, created_at: int, company: tuple[str, str] | None) -> dict[int, CustomValue]:
        rng = self.rng
        values: dict[int, CustomValue] = {}
        if company:
            values[1] = company[0]
            if rng.random() < 0.85:
                values[3] = rng.choice(_JOB_TITLES)
        roll = rng.random()
        if roll < 0.85:
            values[2] = rng.choice(_LEAD_SOURCES)
        elif roll < 0.9:
            values[2] = ""  # cleared in the app: empty, not unset
        if rng.random() < 0.1:
            values[4] = "legacy-import"
        if rng.random() < 0.8:
            plan = rng.choices(_PLANS, weights=(40, 25, 20, 15))[0]
            values[5] = plan
            seats = {"Free": (0, 1), "Basic": (1, 5), "Premium": (5, 50), "Enterprise": (50, 500)}[plan]
            if rng.random() < 0.9:
                values[16] = float(rng.randint(*seats))
            if plan == "Free":
                values[17] = 0.0
            elif rng.random() < 0.9:
                values[17] = round(rng.uniform(20, 25_000), 2)
            if plan != "Free" and rng.random() < 0.7:
                renewal = datetime.fromtimestamp(self.now, UTC).date() + timedelta(days=rng.randint(-180, 365))
                values[27] = f"{renewal.isoformat()} 00:00:00"
        if rng.random() < 0.2:
            values[6] = rng.choice(_REFERRAL_CODES)
        if rng.random() < 0.1:
            values[18] = float(rng.randint(1, 100))
        if rng.random() < 0.6:
            values[26] = utc_text(created_at + 14 * _DAY)
        return values

    def _events(self, created_at: int) -> list[Event]:
        rng = self.rng
        if rng.random() >= 0.6:
            return []
        start = max(created_at - 7 * _DAY, self.now - self.span - 7 * _DAY)
        events = [self._touchpoint(rng.randint(start, self.now - 1)) for _ in range(rng.randint(1, 5))]
        events.extend(self._conversion(self._later(created_at)) for _ in range(rng.randint(0, 3)))
        return events

    def _touchpoint(self, at: int) -> Event:
        rng = self.rng
        kind = rng.choices(("paid", "organic", "direct", "email", "referral"), weights=(50, 20, 15, 10, 5))[0]
        page = rng.choice(_PAGES)
        if kind == "paid":
            ad = rng.choice(_ADS)
            return Event(
                kind="touchpoint",
                event_time=at,
                source=ad.source,
                touchpoint_url=f"{SITE}{page}?utm_source={ad.source}&utm_medium={ad.medium}&utm_campaign={ad.campaign[0]}",
                referrer_url={"facebook": "https://l.facebook.com/", "google": "https://www.google.com/"}.get(
                    ad.source, "https://www.tiktok.com/"
                ),
                ad_id=ad.ad[0],
                ad_name=ad.ad[1],
                adset_id=ad.adset[0],
                adset_name=ad.adset[1],
                campaign_id=ad.campaign[0],
                campaign_name=ad.campaign[1],
                account_id=ad.account[0],
                account_name=ad.account[1],
            )
        source, referrer = {
            "organic": ("google", "https://www.google.com/"),
            "direct": ("direct", None),
            "email": ("email", None),
            "referral": ("referral", "https://news.ycombinator.com/"),
        }[kind]
        return Event(
            kind="touchpoint",
            event_time=at,
            source=source,
            touchpoint_url=f"{SITE}{page}",
            referrer_url=referrer,
            is_direct=kind == "direct",
        )

    def _conversion(self, at: int) -> Event:
        rng = self.rng
        event_id, self.next_event_id = self.next_event_id, self.next_event_id + 1
        name = rng.choices(("Purchase", "Lead", "Subscription Started", "Demo Booked"), weights=(45, 25, 20, 10))[0]
        server = rng.random() < 0.4
        order = 10_000 + event_id
        paid = name in {"Purchase", "Subscription Started"}
        return Event(
            kind="conversion",
            event_time=at,
            event_name=name,
            amount=round(rng.uniform(19, 999), 2) if paid else None,
            event_url=f"{SITE}/checkout/thank-you" if paid else f"{SITE}/demo/booked",
            order_id=f"NP-{order}" if paid else None,
            order_name=f"#{order}" if paid else None,
            channel="server" if server else "browser",
            integration=rng.choice(("Shopify", "Stripe", "WooCommerce")) if server else None,
        )

    def _hit(self, created_at: int, city: _City) -> BrowsingHit:
        rng = self.rng
        source, referrer = rng.choice(
            (("google", "www.google.com"), ("facebook", "l.facebook.com"), ("direct", None), ("email", None))
        )
        query = rng.choice(("", "?plan=pro", "?utm_source=newsletter", "?ref=nav"))
        return BrowsingHit(
            event_time=rng.randint(max(created_at - 7 * _DAY, 0), self.now - 1),
            event_url=f"{SITE.removeprefix('https://')}{rng.choice(_PAGES)}{query}",
            referrer_host=referrer,
            source=source,
            country=city.country,
            device_type=rng.choice(("desktop", "mobile", "tablet")),
            browser=rng.choice(("Chrome", "Safari", "Firefox", "Edge")),
            os=rng.choice(("macOS", "Windows", "iOS", "Android")),
            event_name="page_view",
        )

    def _token(self) -> str:
        hexed = f"{self.rng.getrandbits(128):032x}"
        return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"

    def _profile(
        self, first: str, last: str, city: _City, company: tuple[str, str] | None, contact: NewContact
    ) -> Profile:
        rng = self.rng
        plan = contact.custom_fields.get(5)
        customer = plan in {"Basic", "Premium", "Enterprise"}
        lead_source = contact.custom_fields.get(2)
        touchpoints = sorted((e for e in contact.events if e.kind == "touchpoint"), key=lambda e: e.event_time)
        birth = date(1955, 1, 1) + timedelta(days=rng.randint(0, 48 * 365))
        tags = sorted(set(rng.sample(_TAGS, rng.randint(0, 2))) | ({"customer"} if customer else set[str]()))
        return Profile(
            first_name=first,
            last_name=last,
            address1=f"{rng.randint(1, 999)} {rng.choice(_STREETS)}",
            address2=f"Suite {rng.randint(1, 30) * 100}" if rng.random() < 0.2 else None,
            district=city.district,
            city=city.name,
            state=city.state,
            province=city.province,
            postal_code=city.postal_code,
            country=city.country,
            timezone=city.timezone,
            date_of_birth=birth.isoformat() if rng.random() < 0.5 else None,
            website=f"https://www.{company[1]}" if company else None,
            dnd=rng.random() < 0.08,
            lead_type="customer" if customer else "lead",
            source=lead_source.lower() if isinstance(lead_source, str) and lead_source else None,
            assigned_to=rng.choice(_ASSIGNEES) if rng.random() < 0.7 else None,
            tags=tuple(tags),
            attributions=tuple(_attribution(touchpoint) for touchpoint in touchpoints[:1]),
            clemta_type="vendor" if rng.random() < 0.1 else "customer",
            clemta_status="inactive" if rng.random() < 0.1 else "active",
            description=f"{plan} plan customer" if customer else None,
            bcc_emails=(f"accounts@{company[1]}",) if company and rng.random() < 0.1 else (),
            tax_id=self._tax_id(city.country) if company else None,
        )

    def _tax_id(self, country: str) -> str | None:
        digits = "".join(str(self.rng.randint(0, 9)) for _ in range(9))
        if country == "US":
            return f"{digits[:2]}-{digits[2:]}"
        if country in {"GB", "DE", "FR", "ES", "NL", "IE"}:
            return f"{country}{digits}"
        return None


def _attribution(touchpoint: Event) -> Attribution:
    medium = {"google": "organic", "direct": None, "email": "email", "referral": "referral"}
    session = {"google": "Organic Search", "direct": "Direct traffic", "email": "Email", "referral": "Referral"}
    if touchpoint.ad_id is not None:
        ad = next(ad for ad in _ADS if ad.ad[0] == touchpoint.ad_id)
        return Attribution(touchpoint.touchpoint_url, ad.campaign[1], ad.source, ad.medium, ad.session_source)
    source = touchpoint.source or "direct"
    return Attribution(touchpoint.touchpoint_url, None, source, medium.get(source), session.get(source))


def _location(city: _City) -> str:
    if city.state and city.country in {"US", "CA", "AU"}:
        return f"{city.name}, {city.state}"
    return f"{city.name}, {COUNTRIES[city.country].name}"


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if char.isascii() and char.isalnum()).lower()
