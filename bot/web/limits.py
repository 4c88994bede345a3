"""Who the client is, and a per-client budget of misses (the invite-code guessing limit).

Invite codes are 8 characters from 32 letters (about 1.1 × 10¹² codes), so guessing works only at volume:
/i/{code} and /qr/{code}.png each tell a known code from an unknown one. `MissBudget` lets each client make
`burst` misses (a lookup of a well-formed code nobody owns) and then one every `refill_seconds`; a client out
of budget is answered 429 with Retry-After *before* any lookup, known codes included (otherwise the 429s
themselves would tell the codes apart). Only misses spend the budget, so a client that opens real codes is
never refused: LINE fetches each QR the bot sends, always of a real code.

Kept in this process, not in Redis: a refusal then costs no Redis round trip and no write (an attacker cannot
load Redis through it), and the table is bounded (`max_clients`, least recently missed dropped first). With
several web processes behind a load balancer each keeps its own budget, so a client gets at most that many
times the budget: still ~10⁵ guesses a day per address against 10¹² codes.
"""
from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web

UNKNOWN = "unknown"


def client_address(request: web.Request, trusted_proxy_hops: int) -> str:
    """The client's address, as far as we can trust it.

    0 hops: the socket's peer. N hops: the N-th address from the right of X-Forwarded-For, the one the
    outermost of our own N proxies appended (a client can put anything to the left of it, but not that). A
    request with fewer entries did not come through the proxies: its peer. IPv6 addresses count by /64, the
    block one subscriber gets, so one client cannot step through its addresses to get fresh budgets.
    """
    address = request.remote or UNKNOWN
    if trusted_proxy_hops:
        forwarded = [part.strip() for part in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= trusted_proxy_hops:
            address = forwarded[-trusted_proxy_hops]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if not ip.is_loopback:
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class MissBudget:
    """A token bucket per client: `burst` misses, then one more every `refill_seconds`."""

    def __init__(self, burst: int = 20, refill_seconds: float = 3.0, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.refill_seconds, self.max_clients = burst, refill_seconds, max_clients
        self.clock = clock
        # client -> (tokens, when, whether it ran out since its bucket was last full)
        self._buckets: OrderedDict[str, tuple[float, float, bool]] = OrderedDict()

    def _state(self, client: str, now: float) -> tuple[float, bool]:
        tokens, at, ran_out = self._buckets.get(client, (float(self.burst), now, False))
        tokens = tokens + (now - at) / self.refill_seconds
        return (float(self.burst), False) if tokens >= self.burst else (tokens, ran_out)

    def retry_after(self, client: str) -> int:
        """0 when the client may look a code up; otherwise whole seconds until it may."""
        if client not in self._buckets:
            return 0
        tokens, _ = self._state(client, self.clock())
        return 0 if tokens >= 1 else max(1, math.ceil((1 - tokens) * self.refill_seconds))

    def missed(self, client: str) -> bool:
        """Spend one miss; True when this one used the budget up for the first time since it was last full
        (so a client that keeps guessing is reported once, not at every refill)."""
        now = self.clock()
        tokens, ran_out = self._state(client, now)
        tokens -= 1
        newly = tokens < 1 and not ran_out
        self._buckets[client] = (tokens, now, ran_out or tokens < 1)
        self._buckets.move_to_end(client)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return newly


def too_many(retry_after: int, body: str, content_type: str = "text/plain") -> web.Response:
    return web.Response(status=429, text=body, content_type=content_type,
                        headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"})
