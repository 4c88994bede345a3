"""Who a code or token names: the member's invite code and the token their counter QR carries, each minted
on first use, and the way back from either to the member.

Apart from members.py so that referrals (which look up a code's owner) and members (which void a blocked
friend's referral) do not need each other.
"""
from __future__ import annotations

import secrets
from typing import Any

from rewards import codes, keys


class Invites:
    def __init__(self, redis: Any):
        self.redis = redis

    async def invite_code(self, uid: str) -> str:
        """The member's invite code, minted on first use."""
        current = await self.redis.hget(keys.member(uid), keys.field("code"))
        if current:
            return str(current.decode())
        while True:
            candidate = codes.new_code()
            if await self.redis.hsetnx(keys.codes(candidate), candidate, uid):
                break
        # Two racing calls may both mint a code; the first to land wins and the loser's code
        # still points at the same member, so a link already sent never breaks.
        if await self.redis.hsetnx(keys.member(uid), keys.field("code"), candidate):
            return candidate
        return str((await self.redis.hget(keys.member(uid), keys.field("code"))).decode())

    async def owner_of(self, code: str) -> str | None:
        normal = codes.normalise(code)
        owner = await self.redis.hget(keys.codes(normal), normal) if normal else None
        return owner.decode() if owner else None

    async def member_token(self, uid: str) -> str:
        """The unguessable token the member's counter QR carries (never the user id), minted on first use."""
        current = await self.redis.hget(keys.member(uid), keys.field("member_token"))
        if current:
            return str(current.decode())
        candidate = secrets.token_urlsafe(16)
        await self.redis.set(keys.member_token(candidate), uid, nx=True)
        if await self.redis.hsetnx(keys.member(uid), keys.field("member_token"), candidate):
            return candidate
        return str((await self.redis.hget(keys.member(uid), keys.field("member_token"))).decode())

    async def member_by_token(self, token: str) -> str | None:
        """Who a scanned member QR belongs to (for staff tools); None for an unknown token."""
        if not token or len(token) > 64:
            return None
        owner = await self.redis.get(keys.member_token(token))
        return owner.decode() if owner else None
