"""Leases: one owner at a time for a partition, the clock work or a broadcast job. Taken or renewed with
lease.lua, given back with release.lua; a lease its owner stops renewing lapses on its own."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rewards.scripts import register

_LUA = Path(__file__).resolve().parent / "lua"


class Leases:
    def __init__(self, redis: Any):
        self._take = register(redis, _LUA / "lease.lua")
        self._give_back = register(redis, _LUA / "release.lua")

    async def hold(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take the lease if free, or renew it if `owner` holds it; True while `owner` holds it."""
        return bool(await self._take(keys=[key], args=[owner, ttl_ms]))

    async def release(self, key: str, owner: str) -> None:
        """Give the lease back if `owner` holds it (someone else's is left alone)."""
        await self._give_back(keys=[key], args=[owner])
