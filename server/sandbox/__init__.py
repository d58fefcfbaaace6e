"""The embedded sandbox: a local, SQLite-backed stand-in for the Cometly, HighLevel and Clemta contact APIs.

```python
app = create_app(contacts=500, seed=1)  # an ASGI app; serve it with uvicorn or call it via httpx.ASGITransport
sandbox_of(app).faults.set(Faults(kinds=("503", "reset")))  # and now it fails, as a vendor's infrastructure can
app = create_app(accounts=extra_accounts(1))  # a second Space, location and company, each with its own key
sandbox_accounts(app)  # who it serves: name, provider, key, location or company, timezone
```
"""

from .app import (
    ACCOUNT_ID_SPACING,
    DEFAULT_ACCOUNT,
    SANDBOX_KEYS,
    SandboxAccount,
    ServedAccount,
    create_app,
    extra_accounts,
    sandbox_accounts,
    sandbox_environment,
    sandbox_of,
    sandbox_settings,
)
from .clemta import COMPANY_ID as CLEMTA_COMPANY_ID
from .cometly import INACTIVE_KEY as COMETLY_INACTIVE_KEY
from .faults import FAULT_KINDS, FaultKind, FaultPlan, Faults
from .highlevel import LOCATION_ID as HIGHLEVEL_LOCATION_ID
from .ratelimit import DEFAULT_RATE_LIMITS

__all__ = [
    "ACCOUNT_ID_SPACING",
    "CLEMTA_COMPANY_ID",
    "COMETLY_INACTIVE_KEY",
    "DEFAULT_ACCOUNT",
    "DEFAULT_RATE_LIMITS",
    "FAULT_KINDS",
    "HIGHLEVEL_LOCATION_ID",
    "SANDBOX_KEYS",
    "FaultKind",
    "FaultPlan",
    "Faults",
    "SandboxAccount",
    "ServedAccount",
    "create_app",
    "extra_accounts",
    "sandbox_accounts",
    "sandbox_environment",
    "sandbox_of",
    "sandbox_settings",
]
