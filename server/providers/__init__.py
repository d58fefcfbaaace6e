"""The upstream contact APIs, one module each, behind `server.providers.base.Provider`."""

from .base import Provider
from .clemta import Clemta
from .cometly import Cometly
from .highlevel import HighLevel

PROVIDERS: dict[str, type[Provider]] = {provider.name: provider for provider in (Cometly, HighLevel, Clemta)}
"""Every provider the server knows, in the order tools list them and the default is chosen."""

__all__ = ["PROVIDERS", "Provider"]
