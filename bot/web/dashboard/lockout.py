"""Failed sign-ins, limited per account and per address: past the limit within the window, sign-in is refused
for a while, whatever the password, with the time to try again.

Counted for unknown emails too, so the answers never tell which emails have an account. Times come from the
program's clock (tests move it). A right password clears the account's counter, not the address's.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewards import scripts
from rewards.keys import PREFIX

MINUTE_MS = 60_000


@dataclass(frozen=True)
class Limit:
    failures: int  # this many failures within window_ms lock the counter
    window_ms: int
    lock_ms: int


PER_ACCOUNT = Limit(failures=5, window_ms=15 * MINUTE_MS, lock_ms=15 * MINUTE_MS)
# an office or a shop's Wi-Fi shares one address: more room, so one person's typos do not lock the others
PER_ADDRESS = Limit(failures=20, window_ms=15 * MINUTE_MS, lock_ms=15 * MINUTE_MS)

_SCRIPT = Path(__file__).parent / "lua" / "signin_failed.lua"


def _key(kind: str, who: str) -> str:
    return f"{PREFIX}:dash:signin:{kind}:{hashlib.sha256(who.encode()).hexdigest()[:32]}"


class Lockout:
    def __init__(self, redis: Any, now_ms: Callable[[], int], per_account: Limit | None = None,
                 per_address: Limit | None = None):
        self.redis, self.now_ms = redis, now_ms
        self.limits = {"account": per_account or PER_ACCOUNT, "address": per_address or PER_ADDRESS}
        self._failed = scripts.register(redis, _SCRIPT)

    def _keys(self, email: str, address: str) -> dict[str, str]:
        return {"account": _key("account", email), "address": _key("address", address)}

    async def locked_until(self, email: str, address: str) -> int:
        """Epoch ms until which sign-in is refused for this email or from this address; 0 when it is not."""
        now = int(self.now_ms())
        until = 0
        for key in self._keys(email, address).values():
            raw = await self.redis.hget(key, "until")
            if raw is not None and int(raw) > now:
                until = max(until, int(raw))
        return until

    async def failed(self, email: str, address: str) -> int:
        """Count one failure against both; the time until which sign-in is now refused (0: not locked)."""
        now = int(self.now_ms())
        until = 0
        for kind, key in self._keys(email, address).items():
            limit = self.limits[kind]
            _, locked = await self._failed(keys=[key], args=[now, limit.window_ms, limit.failures, limit.lock_ms])
            until = max(until, int(locked))
        return until

    async def succeeded(self, email: str) -> None:
        await self.redis.delete(_key("account", email))
