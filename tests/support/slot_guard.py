"""Cluster-readiness, checked on every Lua script call of every test, even on a single server.

Redis Cluster runs a script on the node that owns its keys: every key a script touches must be passed in
KEYS (declared) and all of them must hash to one slot. `guard()` wraps the clients' `register_script`, so
each call the bot makes is checked: the KEYS share one slot (CRC16, hash tags honoured, as the cluster
computes it), and every `redis.call(cmd, key, …)` inside the script names a declared key — the source is
rewritten to call a checking function first (the `redis` table itself is read-only in Lua).
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

# Every command the project's scripts use takes its (only) key first; a script that ever calls a command
# without a key (TIME, PING…) would need a list here.
PRELUDE = """
local __declared = {}
for _, k in ipairs(KEYS) do __declared[k] = true end
local function __guarded_call(cmd, key, ...)
  if not __declared[key] then error('UNDECLARED_KEY ' .. tostring(key) .. ' in ' .. cmd) end
  return redis.call(cmd, key, ...)
end
"""


class CrossSlot(AssertionError):
    pass


def slot_of(key: str | bytes) -> int:
    return int(key_slot(key.encode() if isinstance(key, str) else key))


def one_slot(name: str, keys: Sequence[str | bytes]) -> None:
    slots = {slot_of(k) for k in keys}
    if len(slots) > 1:
        raise CrossSlot(f"script {name!r} called with keys in {len(slots)} slots: {list(keys)}")


def script_name(source: str) -> str:
    """The first line after ledger.lua's prelude names the script well enough for a message."""
    comments = [line for line in source.splitlines() if line.startswith("-- KEYS")]
    return comments[-1][:80] if comments else source.splitlines()[0][:80]


def instrument(source: str) -> str:
    return PRELUDE + re.sub(r"\bredis\.call\(", "__guarded_call(", source)


class GuardedScript:
    def __init__(self, register: Any, client: Any, source: str, calls: list[str]):
        self.name = script_name(source)
        self._script = register(client, instrument(source))
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        """Everything else (the `sha` a pipeline's EVALSHA uses) is the wrapped script's."""
        return getattr(self._script, name)

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
        one_slot(self.name, keys)
        self._calls.append(self.name)
        return await self._script(keys=keys, args=args, client=client)


@contextmanager
def guard() -> Iterator[list[str]]:
    """While open, scripts registered on any asyncio client are checked; yields the names of scripts called."""
    calls: list[str] = []
    originals = {cls: cls.register_script for cls in (aioredis.Redis, RedisCluster)}

    def patched(cls: type) -> Any:
        def register_script(self: Any, script: str) -> GuardedScript:
            return GuardedScript(originals[cls], self, script, calls)
        return register_script

    for cls in originals:
        cls.register_script = patched(cls)  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        for cls, original in originals.items():
            cls.register_script = original  # type: ignore[method-assign]
