"""Where callbacks may go: http(s) only, optionally restricted to an allow-list.

An allow-list entry is a host name (`hooks.example.com`), a domain wildcard (`*.example.com`,
which matches sub-domains only) or an IP network / address (`10.0.0.0/8`, `127.0.0.1`, `::1`).
A URL is allowed when its host matches a name entry, or its host is an IP address inside a
network entry, or its host name resolves only to addresses inside network entries.

In the last case the check is repeated at every delivery and the connection goes to the address
that was checked (with the original `Host` header and TLS server name), so a DNS answer that
changes between the check and the connection (DNS rebinding) cannot steer a callback elsewhere.
Redirects are never followed (the delivery client does not follow them at all).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["CallbackTargets", "Destination", "TargetRefused", "origin"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]


class TargetRefused(ValueError):
    """A callback URL that may not be used; the message says why (it never holds the URL)."""


def origin(url: str) -> str:
    """`scheme://host[:port]` of a URL: what logs and audit data may show of a callback URL
    (paths and query strings can hold secrets, e.g. signed resume URLs)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid url>"
    host = parsed.raw_host.decode("ascii")
    host = f"[{host}]" if ":" in host else host
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{host}{port}"


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Destination:
    """How to send one callback: the URL to connect to, and what pins it to the checked host."""

    url: str
    headers: dict[str, str] = field(default_factory=dict[str, str])
    extensions: dict[str, Any] = field(default_factory=dict[str, Any])


class CallbackTargets:
    """Checks callback URLs against the allow-list (empty: any http(s) URL is allowed)."""

    def __init__(self, allow: Iterable[str] = (), *, resolver: Resolver | None = None) -> None:
        self.names: set[str] = set()
        self.suffixes: list[str] = []
        self.networks: list[IPNetwork] = []
        for raw in allow:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if entry.startswith("*."):
                suffix = entry[1:]
                if not _valid_name(suffix[1:]):
                    raise ValueError(f"callback allow-list entry {raw!r} is not a domain wildcard")
                self.suffixes.append(suffix)
            elif _valid_name(entry):
                self.names.add(entry)
            else:
                raise ValueError(
                    f"callback allow-list entry {raw!r} is neither a host name, '*.domain', "
                    "nor an IP network"
                )
        self._resolve = resolver or _system_resolver

    @property
    def restricted(self) -> bool:
        """True when an allow-list is configured."""
        return bool(self.names or self.suffixes or self.networks)

    def check(self, url: str) -> None:
        """Raise TargetRefused unless `url` may receive callbacks."""
        self.destination(url)

    def destination(self, url: str) -> Destination:
        """Check `url` and say how to connect to it (pinned to the checked address if the
        allow-list let it through by network)."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise TargetRefused("is not a valid URL") from None
        if parsed.scheme not in ("http", "https"):
            raise TargetRefused(f"must be an http or https URL, not {parsed.scheme or 'none'}")
        host = parsed.raw_host.decode("ascii").lower().rstrip(".")
        if not host:
            raise TargetRefused("has no host")
        if not self.restricted or self._name_allowed(host):
            return Destination(url)
        literal = _ip(host)
        if literal is not None:
            if self._address_allowed(literal):
                return Destination(url)
            raise TargetRefused(f"host {host} is not in the callback allow-list")
        if not self.networks:
            raise TargetRefused(f"host {host} is not in the callback allow-list")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            resolved = self._resolve(host, port)
        except OSError:
            resolved = []
        addresses = [a for a in (_ip(text) for text in resolved) if a is not None]
        if not addresses:
            raise TargetRefused(
                f"host {host} is not in the callback allow-list (and does not resolve)"
            )
        outside = [str(a) for a in addresses if not self._address_allowed(a)]
        if outside:
            raise TargetRefused(
                f"host {host} resolves to {outside[0]}, outside the callback allow-list"
            )
        return Destination(
            url=str(parsed.copy_with(host=str(addresses[0]))),
            headers={"host": parsed.netloc.decode("ascii")},
            extensions={"sni_hostname": host},
        )

    def _name_allowed(self, host: str) -> bool:
        return host in self.names or any(host.endswith(suffix) for suffix in self.suffixes)

    def _address_allowed(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


def _valid_name(name: str) -> bool:
    labels = name.split(".")
    return (
        bool(name)
        and len(name) <= 253
        and all(
            0 < len(label) <= 63
            and label.replace("-", "").isalnum()
            and label.isascii()
            and not label.startswith("-")
            and not label.endswith("-")
            for label in labels
        )
    )
