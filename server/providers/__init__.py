"""The upstream contact APIs, one module each, behind `server.providers.base.Provider`."""

from server.providers.base import Provider
from server.providers.clemta import Clemta
from server.providers.cometly import Cometly
from server.providers.highlevel import HighLevel

PROVIDERS: dict[str, type[Provider]] = {provider.name: provider for provider in (Cometly, HighLevel, Clemta)}
"""Every provider the server knows, in the order tools list them and the default is chosen."""

__all__ = ["PROVIDERS", "Provider"]
