"""POSTs to integrators' `callback_url`s: never to the helpdesk's own network.

The address is checked at connect time, on the socket actually connected (after DNS, so a
name that resolves, or later re-resolves, to 127.0.0.1 is refused too): private, loopback,
link-local, multicast, reserved and unspecified addresses are refused in production unless
the operator allows them (`HELPDESK_ALLOW_PRIVATE_CALLBACKS=1`, e.g. an integrator on the
same LAN). In development they are allowed unless `HELPDESK_ALLOW_PRIVATE_CALLBACKS=0` (a
local stand-in of the integrator's server). Redirects are not followed, and no proxy from
the environment is used.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from helpdesk.senders.base import TIMEOUT, SendError


class PrivateAddress(Exception):
    """The callback resolved to an address inside a private network."""


# IPv6 prefixes that carry an IPv4 address, which Python (3.11) may call global: NAT64
# (well-known and local-use), 6to4, Teredo and the deprecated IPv4-compatible form. Through
# a NAT64 gateway `64:ff9b::a9fe:a9fe` is 169.254.169.254.
_CARRIES_IPV4 = tuple(ipaddress.ip_network(prefix) for prefix in (
    "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::/96"))


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        elif any(ip in network for network in _CARRIES_IPV4):
            return False  # (whatever IPv4 address it carries: a callback needs none of these)
    return ip.is_global and not ip.is_multicast


def _checked(sock):
    address = sock.getpeername()[0]
    if not _public(address):
        sock.close()
        raise PrivateAddress(address)
    return sock


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self):
        return _checked(super()._new_conn())


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self):
        return _checked(super()._new_conn())


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool,
                                                   "https": _GuardedHTTPSPool}


def post(url: str, *, allow_private: bool, **kwargs: Any) -> requests.Response:
    """POST to a callback URL; a refused destination is a permanent SendError, an
    unreachable one a retryable SendError, a redirect is answered as it is (not followed)."""
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment between us and the check
        if not allow_private:
            session.mount("http://", _GuardedAdapter())
            session.mount("https://", _GuardedAdapter())
        try:
            return session.post(url, timeout=TIMEOUT, allow_redirects=False, **kwargs)
        except PrivateAddress as exc:
            error = SendError(f"callback_url refused: {exc} is not a public address "
                              "(HELPDESK_ALLOW_PRIVATE_CALLBACKS=1 allows it)", retryable=False)
        except requests.RequestException as exc:
            error = SendError(f"callback unreachable: {type(exc).__name__}")
    raise error from None
