"""Attribution before the follow (invites through LIFF): a person LINE vouches for opened an invite in the LIFF
page but is not a friend yet. What can be judged now is judged now (UNKNOWN_CODE, SELF_REFERRAL, RATE_LIMITED,
with the same counters and guess budget as a code message); the rest waits for their follow, which attributes
them exactly as a code message would (program.attribute, every rule of today).

The waiting is one string in the person's own slot, written with SET NX PX: the first code wins (a shop expects
the friend who sent the first invite to be the referrer; another code meanwhile is refused as ALREADY_REFERRED)
and it expires with the referral window, so a person who never follows leaves nothing behind.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rewards import keys
from rewards.counters import Counters
from rewards.invites import Invites
from rewards.part import Part
from rewards.referrals import ALREADY_REFERRED, RATE_LIMITED, SELF_REFERRAL, UNKNOWN_CODE
from rewards.rules import Rules


@dataclass(frozen=True)
class Awaiting:
    code: str
    referrer: str
    at_ms: int


@dataclass(frozen=True)
class PreFollowOutcome:
    status: str  # awaiting_follow | refused
    reason: str | None = None
    code: str | None = None  # the code the person awaits their follow with (the first one)


def liff_op(friend: str, code: str) -> str:
    """The attribution's operation id: from the person and the code, so the same request again (or the follow
    after it) is a replay of one attribution, never a second one."""
    return f"liff:{friend}:{code}"


class PreFollow(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int], *, counters: Counters, invites: Invites):
        super().__init__(redis, rules, now_ms)
        self.counters = counters
        self.invites = invites

    async def awaiting(self, uid: str) -> Awaiting | None:
        raw = await self.redis.get(keys.pre_follow(uid))
        if raw is None:
            return None
        code, referrer, at = raw.decode().split("|")
        return Awaiting(code=code, referrer=referrer, at_ms=int(at))

    async def hold(self, uid: str, code: str) -> PreFollowOutcome:
        """A person not known to the bot yet asks to be attributed to `code`: refuse what can be refused now,
        else keep the code until their follow. The same code again answers the same, and changes nothing."""
        current = await self.awaiting(uid)
        if current is not None:
            if current.code == code:
                return PreFollowOutcome("awaiting_follow", code=code)
            return await self._refused(ALREADY_REFERRED)
        guess_key = keys.guesses(uid)
        if int(await self.redis.get(guess_key) or 0) >= self.rules.guess_max_failures:
            return await self._refused(RATE_LIMITED)
        referrer = await self.invites.owner_of(code)
        if referrer is None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(guess_key)
                pipe.ttl(guess_key)
                _, ttl = await pipe.execute()
            if ttl < 0:  # the same budget as a code message's (rewards/referrals.py attribute)
                await self.redis.expire(guess_key, self.rules.guess_per_minutes * 60)
            return await self._refused(UNKNOWN_CODE)
        if referrer == uid:
            return await self._refused(SELF_REFERRAL)
        record = f"{code}|{referrer}|{self.now_ms()}"
        if await self.redis.set(keys.pre_follow(uid), record, nx=True, px=self.rules.referral_window_ms):
            await self.counters.count("awaiting_follow")
            return PreFollowOutcome("awaiting_follow", code=code)
        return await self.hold(uid, code)  # a concurrent request stored its code first: answer by it

    async def forget(self, uid: str) -> None:
        """The follow came and the attribution was decided: the waiting is over."""
        await self.redis.delete(keys.pre_follow(uid))

    async def attributed_by(self, uid: str) -> tuple[str | None, str | None]:
        """(the op that attributed this member, its status) from their referral record, or (None, None)."""
        op, status = await self.redis.hmget(keys.referral(uid), ["op", "status"])
        return (op.decode() if op else None), (status.decode() if status else None)

    async def _refused(self, reason: str) -> PreFollowOutcome:
        await self.counters.count(f"refused:{reason}")
        return PreFollowOutcome("refused", reason=reason)
