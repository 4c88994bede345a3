"""Leases: one owner at a time for a partition, the clock work, a broadcast job or a worker's name. Taken or
renewed with lease.lua, renewed only with renew.lua, given back with release.lua; a lease its owner stops
renewing lapses on its own."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rewards.scripts import register

_LUA = Path(__file__).resolve().parent / "lua"


class Leases:
    def __init__(self, redis: Any):
        self._take = register(redis, _LUA / "lease.lua")
        self._give_back = register(redis, _LUA / "release.lua")
        self._renew = register(redis, _LUA / "renew.lua")
        self._replace = register(redis, _LUA / "replace.lua")

    async def hold(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take the lease if free, or renew it if `owner` holds it; True while `owner` holds it."""
        return bool(await self._take(keys=[key], args=[owner, ttl_ms]))

    async def renew(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Renew the lease if `owner` holds it; never takes a free one (one given back meanwhile stays free)."""
        return bool(await self._renew(keys=[key], args=[owner, ttl_ms]))

    async def replace(self, key: str, seen: str, owner: str, ttl_ms: int) -> bool:
        """Take the lease from `seen`, a holder known to be gone, unless someone else took it meanwhile."""
        return bool(await self._replace(keys=[key], args=[seen, owner, ttl_ms]))

    async def release(self, key: str, owner: str) -> None:
        """Give the lease back if `owner` holds it (someone else's is left alone)."""
        await self._give_back(keys=[key], args=[owner])
