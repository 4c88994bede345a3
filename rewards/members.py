"""Members: sightings, the member record and profile, tiers, the points a member earns by being one
(sign-up, profile, birthday, the shop's events, staff adjustments), and the views handlers and broadcasts read.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rewards import buckets, engine, keys, ledger_codec
from rewards.counters import Counters
from rewards.errors import ProgramError
from rewards.ledger import Ledger
from rewards.part import Part
from rewards.referrals import ReferralCounts, Referrals, referral_counts
from rewards.rules import Rules, Tier
from rewards.segments import MemberFacts

REJOINED = "rejoined"  # first_seen_via of a person seen again after their data was erased (rewards/privacy.py)


@dataclass(frozen=True)
class MemberView:
    user_id: str
    points: int  # spendable now (below zero while a debt is open)
    pending_points: int  # on hold
    lifetime_points: int
    tier: str
    next_tier: str | None
    to_next_tier: int | None  # points (or yen, by the rules' basis) still needed for the next tier
    referrals: ReferralCounts
    code: str | None
    blocked: bool
    lang: str | None
    debt: int = 0
    birthday: str | None = None  # MM-DD
    gift: bool = False  # gives their referral reward to the friend
    nickname: str | None = None  # shown on the leaderboard only with nickname_consent
    nickname_consent: bool = False
    language_chosen: bool = False  # the member picked `lang` themselves (it then wins over LINE's)
    member_token: str | None = None  # their counter QR's token, once minted (Invites.member_token mints it)

    @property
    def language(self) -> str | None:
        """The language to speak to the member in: their own choice, else their LINE app's."""
        return self.lang


class Members(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int], *, counters: Counters, ledger: Ledger,
                 referrals: Referrals):
        super().__init__(redis, rules, now_ms)
        self.counters = counters
        self.ledger = ledger
        self.referrals = referrals
        self._seen = self.script("member_seen")
        self._audit_once = self.script("audit_once")
        # whether a user id was erased before (rewards/privacy.py sets it): such a person comes back as a member
        # who is neither referable nor paid the sign-up points again
        self.was_erased: Callable[[str], Awaitable[bool]] | None = None

    # ---- sightings -------------------------------------------------------------------
    async def see(self, uid: str, via: str, at_ms: int, lang: str = "") -> bool:
        """Record a sighting (follow, unblock, unfollow, message, postback); True when the member is new."""
        created, _ = await self.sighting(uid, via, at_ms, lang)
        return created

    async def sighting(self, uid: str, via: str, at_ms: int, lang: str = "") -> tuple[bool, str | None]:
        """`see`, and the member's language as `language` gives it, in the same script call (one round trip
        fewer on every event)."""
        created, language, _ = await self.sighting_and_step(uid, via, at_ms, lang)
        return created, language

    async def sighting_and_step(self, uid: str, via: str, at_ms: int, lang: str = "",
                                step_key: str | None = None) -> tuple[bool, str | None, str | None]:
        """`sighting`, and the `step` field of the hash `step_key` (a key in the member's slot that the caller
        owns: the bot's pending conversation step), read in the same script call."""
        extra = [step_key] if step_key else []
        created, language, step = await self._seen(keys=[keys.member(uid), *extra], args=[uid, via, at_ms, lang])
        if created:
            await buckets.add_member(self.redis, uid)
            if self.was_erased is not None and await self.was_erased(uid):
                # attribute.lua refuses anyone not first seen by a follow (EXISTING_MEMBER): erase-and-re-refer
                await self.redis.hset(keys.member(uid), keys.field("first_seen_via"), REJOINED)
        if via == "unfollow":
            await self.referrals.friend_blocked(uid, at_ms)
        return bool(created), language.decode() if language else None, step.decode() if step else None

    async def exists(self, uid: str) -> bool:
        return bool(await self.redis.exists(keys.member(uid)))

    # ---- profile ---------------------------------------------------------------------
    async def language(self, uid: str) -> str | None:
        """The member's own choice of language, else the one their LINE app reported."""
        chosen, line = await self.redis.hmget(keys.member(uid), [keys.field("lang_pref"), keys.field("lang")])
        lang = chosen or line
        return lang.decode() if lang else None

    async def set_line_language(self, uid: str, lang: str) -> None:
        """The LINE app's language (read from the profile on follow): a default, not the member's choice."""
        await self.redis.hset(keys.member(uid), keys.field("lang"), lang)

    async def set_language(self, uid: str, lang: str) -> int:
        """The member's own choice of language; it wins over the LINE app's. Returns profile points paid now."""
        await self.redis.hset(keys.member(uid), keys.field("lang_pref"), lang)
        return await self._profile_completed(uid)

    async def set_nickname(self, uid: str, nickname: str | None, consent: bool) -> None:
        """The leaderboard nickname (None keeps the current one) and whether it may be shown.

        The nickname arrives already checked (bot side); consent without a nickname is refused."""
        if consent and nickname is None and not await self.redis.hexists(keys.member(uid), keys.field("nickname")):
            raise ProgramError("NO_NICKNAME", "set a nickname before agreeing to show it")
        fields: dict[str, str | int] = {keys.field("nickname_consent"): 1 if consent else 0}
        if nickname is not None:
            fields[keys.field("nickname")] = nickname
        await self.redis.hset(keys.member(uid), mapping=fields)

    async def set_birthday(self, uid: str, month: int, day: int) -> bool:
        """Once: the birthday can be set but not changed (so it cannot be moved to earn twice). True when this
        call set it.

        The same date again (a double tap, or a retry after a failure half-way) finishes what follows the
        setting: a first try that stopped after saving the date would otherwise leave the member out of the
        month's birthday list and without their profile and birthday points, as the retry finds it set."""
        value = f"{month:02d}-{day:02d}"
        if await self.redis.hsetnx(keys.member(uid), keys.field("birthday"), value):
            await self._birthday_set(uid, month)
            return True
        if await self.redis.hget(keys.member(uid), keys.field("birthday")) == value.encode():
            await self._birthday_set(uid, month)
        return False

    async def _birthday_set(self, uid: str, month: int) -> None:
        """What follows a birthday being set; each step is idempotent (a set, op ids), so it can run again."""
        await self.redis.sadd(keys.birthdays(month), uid)
        await self._profile_completed(uid)
        now = self.now_ms()
        if engine.shop_time(self.rules, now).month == month:  # set during the birthday month: pay this year
            await self.birthday_points(uid, now)

    async def set_gift(self, uid: str, gift: bool) -> None:
        """相手に譲る: the member's future referral rewards go to the friend they invited."""
        if gift and not self.rules.allow_gift:
            raise ProgramError("GIFT_NOT_ALLOWED", "this shop's rules do not let referrers give their reward away")
        await self.redis.hset(keys.member(uid), keys.field("gift"), 1 if gift else 0)

    # ---- points for being a member -----------------------------------------------------
    async def welcome_points(self, uid: str, at_ms: int, event_id: str = "") -> int:
        """Signup points, once per member whatever happens later (op id `signup`).

        Returns what this event earned: the same answer when the event is handled again after a crash
        (the entry remembers the event), 0 for any other follow.
        """
        if self.rules.signup_points <= 0:
            return 0
        if await self.redis.hget(keys.member(uid), keys.field("first_seen_via")) in (b"import", REJOINED.encode()):
            return 0  # a member the shop imported was one before: their opening balance stands for their past;
            # one who had their data erased was paid once already
        award = self.ledger.award("signup", self.rules.signup_points, at_ms, "signup", "signup", note=event_id)
        written, _ = await self.ledger.earn(uid, award)
        if written == 1:
            return award.amount
        entry = await self.ledger.entry(uid, "signup")
        return int(entry["delta"]) if event_id and entry and entry.get("note") == event_id else 0

    async def profile_points_paid(self, uid: str) -> int:
        """The profile-completion points this member got (0 before completion, or with the rule off)."""
        entry = await self.ledger.entry(uid, "profile")
        return int(entry["delta"]) if entry else 0

    async def _profile_completed(self, uid: str) -> int:
        """Profile completion = a birthday and a language the member chose (LINE's own does not count);
        pays once (op `profile`). Returns the points paid by this call."""
        fields = await self.redis.hmget(keys.member(uid), [keys.field("birthday"), keys.field("lang_pref")])
        rule = self.rules.earn.get("profile")
        if rule and rule.points and all(fields):
            award = self.ledger.award("profile", rule.points, self.now_ms(), "profile", "profile")
            written, _ = await self.ledger.earn(uid, award)
            return award.amount if written == 1 else 0
        return 0

    async def birthday_points(self, uid: str, at_ms: int) -> int:
        rule = self.rules.earn.get("birthday")
        if not rule or not rule.points:
            return 0
        year = engine.shop_time(self.rules, at_ms).year
        award = self.ledger.award("birthday", rule.points, at_ms, f"birthday:{year}", "birthday",
                                  tier=await self.tier_of(uid))
        written, _ = await self.ledger.earn(uid, award)
        return award.amount if written == 1 else 0

    async def custom_event(self, uid: str, name: str, event_id: str, at_ms: int | None = None) -> tuple[bool, int]:
        """An event the shop reports (review, share…): (written now, points) — once per event id."""
        rule = self.rules.earn.get(f"events.{name}")
        if rule is None:
            raise ProgramError("UNKNOWN_EVENT", f"the rules name no event {name!r}")
        if not await self.exists(uid):
            raise ProgramError("UNKNOWN_MEMBER", "no member with that user id")
        award = self.ledger.award(rule.name, rule.points, at_ms or self.now_ms(), f"event:{name}:{event_id}",
                                  "event", tier=await self.tier_of(uid))
        written, _ = await self.ledger.earn(uid, award)
        entry = await self.ledger.entry(uid, award.op)
        return written == 1, int(entry["delta"]) if entry else 0

    async def adjust(self, uid: str, points: int, reason: str, staff: str, op: str) -> tuple[bool, int]:
        """A manual adjustment by staff; may take the balance below zero (a correction is a correction)."""
        if not await self.exists(uid):
            raise ProgramError("UNKNOWN_MEMBER", "no member with that user id")
        written, balance = await self.ledger.apply(uid, op, points, "adjustment", f"staff:{staff}", self.now_ms(),
                                                   note=reason, allow_negative=True)
        return written == 1, balance

    # ---- tiers -----------------------------------------------------------------------
    async def tier_of(self, uid: str) -> Tier:
        return self.tier(await self.record(uid))[0]

    async def record(self, uid: str) -> dict[str, str]:
        """The member's fields by their long names (keys.FIELDS), with the months the tier is judged on; {} for
        no member."""
        return await keys.read_member(self.redis, uid, *self._tier_months())

    def _tier_months(self) -> list[str]:
        """The monthly fields the tier adds up (none when judged over the member's lifetime)."""
        if self.rules.tier_window == "lifetime":
            return []
        prefix = "earned:" if self.rules.tier_basis == "points" else "spent:"
        now = engine.shop_time(self.rules, self.now_ms())
        return [prefix + engine.add_months(now.replace(day=1), -i).strftime("%Y-%m") for i in range(12)]

    def tier(self, m: dict[str, str]) -> tuple[Tier, int]:
        """The member's tier and the measure it is judged on (points earned or yen spent, per the rules)."""
        prefix = "earned:" if self.rules.tier_basis == "points" else "spent:"
        if self.rules.tier_window == "lifetime":
            measure = int(m.get("lifetime" if prefix == "earned:" else "spent", 0))
        else:
            measure = sum(int(m.get(month, 0)) for month in self._tier_months())
        tier = self.rules.tier_for(measure)
        if self.rules.tier_downgrade == "never":
            peak = m.get("tier_peak")
            ranks = [t.name for t in self.rules.tiers]
            if peak in ranks and ranks.index(peak) > ranks.index(tier.name):
                tier = self.rules.tiers[ranks.index(peak)]
        return tier, measure

    async def tier_rise(self, uid: str) -> str | None:
        """The tier the member has risen to since the last rise was marked told, or None.

        A fall (tiers that follow a window down) is marked silently, so the next rise is news again."""
        m = await self.record(uid)
        if not m:
            return None
        tier, _ = self.tier(m)
        ranks = [t.name for t in self.rules.tiers]
        told = m.get("tier_told")
        told_rank = ranks.index(told) if told in ranks else 0
        if ranks.index(tier.name) > told_rank:
            return tier.name
        if ranks.index(tier.name) < told_rank:
            await self.redis.hset(keys.member(uid), keys.field("tier_told"), tier.name)
        return None

    async def mark_tier_told(self, uid: str, tier: str) -> None:
        await self.redis.hset(keys.member(uid), keys.field("tier_told"), tier)

    # ---- what others read ------------------------------------------------------------
    async def member(self, uid: str) -> MemberView | None:
        # both in the member's slot, asked together: one round trip (auto-pipelined, bot/infra/redis_conn.py)
        m, made_raw = await asyncio.gather(self.record(uid), self.redis.hgetall(keys.referrals_made(uid)))
        if not m:
            return None
        [made] = await self.referrals.statuses([made_raw])
        tier, measure = self.tier(m)
        if self.rules.tier_downgrade == "never" and m.get("tier_peak") != tier.name:
            await self.redis.hset(keys.member(uid), keys.field("tier_peak"), tier.name)
        higher = [t for t in self.rules.tiers if t.threshold > max(measure, tier.threshold)]
        return MemberView(
            user_id=uid, points=int(m.get("points", 0)), pending_points=int(m.get("pending_points", 0)),
            lifetime_points=int(m.get("lifetime", 0)), tier=tier.name,
            next_tier=higher[0].name if higher else None,
            to_next_tier=higher[0].threshold - measure if higher else None,
            referrals=referral_counts(made),
            code=m.get("code"), blocked=m.get("blocked") == "1", lang=m.get("lang_pref") or m.get("lang"),
            debt=int(m.get("debt", 0)), birthday=m.get("birthday"), gift=m.get("gift") == "1",
            nickname=m.get("nickname"), nickname_consent=m.get("nickname_consent") == "1",
            language_chosen="lang_pref" in m, member_token=m.get("member_token"))

    async def active_members(self) -> list[str]:
        """Every member who has not blocked the account."""
        members = await buckets.member_ids(self.redis)
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in members:
                pipe.hget(keys.member(uid), keys.field("blocked"))
            blocked = await pipe.execute()
        return sorted(uid for uid, b in zip(members, blocked, strict=True) if b != b"1")

    async def member_ids(self) -> list[str]:
        """Every member ever seen, blocked or not, in a stable order."""
        return sorted(await buckets.member_ids(self.redis))

    async def member_facts(self, uids: list[str]) -> list[MemberFacts]:
        """What broadcast segments look at, for many members in a few round trips (read-only)."""
        names = [*keys.FIELDS, *self._tier_months()]
        stored = [keys.field(n) for n in names] + [ledger_codec.QUEUE]  # the record, and the lot queue beside it
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in uids:
                pipe.hmget(keys.member(uid), stored)
                pipe.hgetall(keys.referrals_made(uid))
            raw = await pipe.execute()
        next_expiry = await self.ledger.next_expiries(uids, [raw[2 * i][-1] for i in range(len(uids))])
        made_all = await self.referrals.statuses([raw[2 * i + 1] for i in range(len(uids))])
        facts = []
        for i, uid in enumerate(uids):
            m = {n: v.decode() for n, v in zip(names, raw[2 * i], strict=False) if v is not None}
            if not m:
                continue  # not a member (an id from a user_ids segment we never saw)
            counts = referral_counts(made_all[i])
            joined = int(m.get("first_seen_at", 0))
            facts.append(MemberFacts(
                user_id=uid, blocked=m.get("blocked") == "1", tier=self.tier(m)[0].name,
                points=int(m.get("points", 0)), referrals_invited=counts.invited,
                referrals_pending=counts.pending, referrals_completed=counts.completed,
                lang=m.get("lang_pref") or m.get("lang"), birthday=m.get("birthday"), joined_at_ms=joined,
                last_active_ms=max(joined, int(m.get("last_seen_at", 0)), int(m.get("last_activity", 0))),
                next_expiry_ms=next_expiry[i]))
        return facts

    async def audit(self, who: str, what: str, member: str, *, op: str | None = None, **details: Any) -> bool:
        """Append-only record of a staff action: who, what, when, before/after.

        With `op` (an id the action keeps however often it is tried) the entry is written once per op, in one
        step with the op, so a retry of a half-done action writes it if and only if the first try did not.
        True when written now."""
        entry = {"who": who, "what": what, "member": member, "at": self.now_ms(), **details}
        if op is None:
            await self.redis.xadd(keys.AUDIT, {k: str(v) for k, v in entry.items()})
            return True
        fields = [part for k, v in (entry | {"op": op}).items() for part in (k, str(v))]
        written, _ = await self._audit_once(keys=[keys.AUDIT, keys.AUDIT_OPS], args=[op, *fields])
        return int(written) == 1

    async def audit_adjustment(self, who: str, uid: str, op: str, points: int) -> bool:
        """The audit entry of the adjustment `op` (adjust()), once, whichever try of it calls this. Before,
        after and reason come from the ledger entry the op wrote, so a retry records what the first try did."""
        entry = await self.ledger.entry(uid, op)
        if entry is None:
            return False  # the op changed nothing: nothing to audit
        after = int(entry["balance"])
        return await self.audit(who, "adjust_points", uid, op=f"{uid}:{op}", before=after - int(entry["avail"]),
                                after=after, points=points, reason=entry["note"])
