"""Where a webhook may be sent: ``https`` (``http`` only to loopback when allowed), and at
delivery time never to a private, loopback, link-local or otherwise non-public address
unless ``COPOOL_WEBHOOK_ALLOW_PRIVATE`` says so. Every address the name resolves to is
checked (a name with one public and one private address is refused)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit


class RefusedAddress(Exception):
    """The URL's host resolves to an address webhooks are not sent to, or not at all."""


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str, *, allow_http_loopback: bool) -> str | None:
    """What is wrong with a webhook URL as typed (None: nothing)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a valid URL"
    del port
    if not parts.hostname:
        return "the URL needs a host"
    if parts.username or parts.password:
        return "the URL may not carry a user or password"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and allow_http_loopback and _is_loopback_host(parts.hostname):
        return None
    return "the URL must use https"


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_destination(url: str, *, allow_private: bool) -> list[str]:
    """Resolve the URL's host, refuse it unless every address is public (or allowed), and
    return the addresses to connect to (the caller connects to them, so a second lookup
    cannot answer otherwise)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RefusedAddress(f"{host} does not resolve: {exc}") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not allow_private:
        for address in addresses:
            if not _public(address):
                raise RefusedAddress(f"{host} resolves to {address}, not a public address")
    if not addresses:
        raise RefusedAddress(f"{host} has no address")
    return list(dict.fromkeys(addresses))


def pinned(url: str, address: str) -> tuple[str, str, str]:
    """The URL with its host replaced by ``address``, the ``Host`` header and the TLS server
    name that keep the request (and certificate check) about the original host."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc)), parts.netloc, parts.hostname or ""
