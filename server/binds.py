"""What an address to bind means for who can reach it: this machine only (loopback), or every address.

Both servers that listen ask here before they bind: the MCP server over HTTP (`server.web`) and the
sandbox (`contacts-mcp sandbox`). Only the standard library is imported, so the sandbox command can
ask without loading the MCP SDK or the HTTP transports.
"""

from __future__ import annotations

import ipaddress
import socket

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def bind_host(host: str) -> str:
    """`host` as the socket layer takes it (an IPv6 address without its brackets)."""
    host = host.strip()
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _numeric_addresses(host: str) -> list[Address] | None:
    """The addresses `host` means when it is written as one (in any form the OS reads: `0`, `0x0`, `0000::`)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        return None
    return [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server on this machine (a name other than localhost does not count)."""
    bound = bind_host(host)
    if bound.lower() == "localhost":
        return True
    addresses = _numeric_addresses(bound) if bound else None
    return bool(addresses) and all(address.is_loopback for address in addresses or ())


def _is_any(address: Address) -> bool:
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return address.is_unspecified or (mapped is not None and mapped.is_unspecified)


def binds_every_address(host: str) -> bool:
    """Whether binding `host` listens on every address: INADDR_ANY or in6addr_any, however it is written.

    An empty host is every address to asyncio. A number is read as the OS reads it (`0`, `0.0`, `0x0`,
    `[::]`, `0000::`, `::ffff:0.0.0.0`); a name is resolved as the bind would resolve it.
    """
    bound = bind_host(host)
    if not bound:
        return True
    addresses = _numeric_addresses(bound)
    if addresses is None:
        try:
            infos = socket.getaddrinfo(bound, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except (OSError, UnicodeError):
            return False  # nothing to bind: the server will say so
        addresses = [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]
    return any(_is_any(address) for address in addresses)
