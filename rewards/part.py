"""What every part of the program (members, ledger, referrals, orders…) and of the catalog starts from: the
Redis client, the rules in force and the program's clock, and its Lua scripts in rewards/lua/."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rewards import keys
from rewards.rules import Rules
from rewards.scripts import register

LUA = Path(__file__).resolve().parent / "lua"
LEDGER_PRELUDE = LUA / "ledger.lua"  # the prelude of every script that moves points


class Part:
    facts: Any = None  # the program's fact record (rewards/facts.py), given to every part by Program

    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int]):
        self.redis = redis
        self.rules = rules
        self.now_ms = now_ms  # the program's clock: tests move it, and every part follows

    async def fact(self, key: str, kind: str, **fields: Any) -> None:
        """Keep a fact the program just accepted, for the what-if replay (rewards/facts.py): once per `key`."""
        if self.facts is not None:
            await self.facts.record(key, kind, **fields)

    def script(self, name: str, moves_points: bool = False) -> Any:
        """rewards/lua/<name>.lua registered on this client, after the ledger prelude when it moves points, and
        after the member fields' stored names (keys.lua_fields: F.points…)."""
        return register(self.redis, LUA / f"{name}.lua", prelude=LEDGER_PRELUDE if moves_points else None,
                        header=keys.lua_fields())
