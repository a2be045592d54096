"""Who is connecting: the peer, or what a trusted proxy says in X-Forwarded-For.

Anyone can write an X-Forwarded-For header, so it is read only when the TCP
peer is one of TRUSTED_PROXIES, and then from the right: each trusted hop
appended the address it saw, so the right-most address that is not itself a
trusted proxy is the client. Everything left of it was written by the client
(or by its own proxies) and is never believed: a spoofed header from an
untrusted peer changes nothing, and one sent through a trusted proxy only
adds entries to the left of the real address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """`"10.0.0.0/8, 127.0.0.1"` → networks; a bad entry raises ValueError (at start)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in text.split(",") if part.strip())


class ClientAddress:
    def __init__(self, trusted: Iterable[Network]) -> None:
        self._trusted = tuple(trusted)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._trusted)

    def resolve(self, peer: str, forwarded_for: Iterable[str]) -> str:
        """The client's address: `peer` unless it is a trusted proxy, then the right-most
        untrusted X-Forwarded-For entry (`forwarded_for`: every such header, in order)."""
        if not self._trusted or not self._is_trusted(peer):
            return peer
        hops = [h.strip() for value in forwarded_for for h in value.split(",")]
        client = peer
        for hop in reversed(hops):
            try:
                hop = str(ipaddress.ip_address(hop))
            except ValueError:
                return client  # garbage: the last hop we could trust handed it over
            client = hop
            if not self._is_trusted(hop):
                return hop
        return client
