"""The referral and rewards program, applied atomically in Redis.

Every write that decides something runs as one Lua script over one member's keys (one cluster slot).
Work that spans two members — a referral pays both sides — is a sequence of idempotent single-member
steps driven by the friend's referral record, so it finishes after a crash and never pays twice.
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewards import codes, engine, keys, ledger_codec
from rewards.engine import Award
from rewards.errors import ProgramError
from rewards.rules import Milestone, Rules, Tier
from rewards.segments import MemberFacts

_LUA = Path(__file__).resolve().parent / "lua"
log = logging.getLogger(__name__)

# Refusal reasons for a code message, in the order they are checked.
SELF_REFERRAL = "SELF_REFERRAL"
ALREADY_REFERRED = "ALREADY_REFERRED"
EXISTING_CUSTOMER = "EXISTING_CUSTOMER"
EXISTING_MEMBER = "EXISTING_MEMBER"
UNKNOWN_CODE = "UNKNOWN_CODE"
EXPIRED = "EXPIRED"
RATE_LIMITED = "RATE_LIMITED"


@dataclass(frozen=True)
class Attribution:
    ok: bool
    reason: str | None = None  # a refusal reason code when not ok
    referrer: str | None = None
    replay: bool = False  # the same event again: already recorded, nothing new happened


@dataclass(frozen=True)
class Referrals:
    invited: int
    pending: int
    completed: int


@dataclass(frozen=True)
class MemberView:
    user_id: str
    points: int  # spendable now (below zero while a debt is open)
    pending_points: int  # on hold
    lifetime_points: int
    tier: str
    next_tier: str | None
    to_next_tier: int | None  # points (or yen, by the rules' basis) still needed for the next tier
    referrals: Referrals
    code: str | None
    blocked: bool
    lang: str | None
    debt: int = 0
    birthday: str | None = None  # MM-DD
    gift: bool = False  # gives their referral reward to the friend
    nickname: str | None = None  # shown on the leaderboard only with nickname_consent
    nickname_consent: bool = False
    language_chosen: bool = False  # the member picked `lang` themselves (it then wins over LINE's)

    @property
    def language(self) -> str | None:
        """The language to speak to the member in: their own choice, else their LINE app's."""
        return self.lang


@dataclass(frozen=True)
class LedgerLine:
    delta: int
    kind: str
    rule: str
    at_ms: int
    balance: int
    state: str = "available"


@dataclass(frozen=True)
class FriendReferral:
    code_hint: str | None  # the first characters of the friend's own invite code, if they have one
    status: str  # pending | completed | voided
    needs: str | None  # what a pending referral still waits for: FIRST_PURCHASE | HOLD
    minimum_order: int  # with FIRST_PURCHASE: the yen the first order must reach (0: any)
    at_ms: int  # when the friend sent the code


@dataclass(frozen=True)
class ReferralStatus:
    referrals: Referrals
    friends: list[FriendReferral]  # newest first
    next_milestone: Milestone | None
    to_next_milestone: int | None  # completed referrals still needed for it


@dataclass(frozen=True)
class Ranked:
    user_id: str
    completed: int
    nickname: str | None  # only when the member consented to show it
    code: str | None  # the member's invite code, for an anonymous label


@dataclass(frozen=True)
class Purchase:
    answer: dict[str, Any]  # exactly what the first call answered
    new: bool
    completed_referral_of: str | None  # the referrer, when this order completed a referral


def _load(name: str, with_ledger: bool = False) -> str:
    source = (_LUA / f"{name}.lua").read_text()
    return ((_LUA / "ledger.lua").read_text() + "\n" + source) if with_ledger else source


REFERRAL_STATUSES = ("pending", "review", "completed", "voided")


def _friends_of(made: dict) -> dict[str, str]:
    """friend -> status from a referrer's referrals hash (its other fields are "friend|what")."""
    pairs = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
             for k, v in made.items()}
    return {friend: status for friend, status in pairs.items() if "|" not in friend and status in REFERRAL_STATUSES}


def _newer_status(made_status: str, own: bytes | str | None) -> str:
    """The friend's own status when it is a known one, else what the referrer's record says."""
    status = own.decode() if isinstance(own, bytes) else own
    return status if status in REFERRAL_STATUSES else made_status


def _referral_counts(statuses: dict[str, str]) -> Referrals:
    """The counts members see: invited (every referral), pending (waiting for an order or for review), done."""
    counts = list(statuses.values())
    return Referrals(invited=len(counts), pending=counts.count("pending") + counts.count("review"),
                     completed=counts.count("completed"))


class Program:
    def __init__(self, redis: Any, rules: Rules, clock: Callable[[], float] = time.time):
        self.redis = redis
        self.rules = rules
        self.clock = clock
        self._seen = redis.register_script(_load("member_seen"))
        self._apply = redis.register_script(_load("apply_points", with_ledger=True))
        self._attribute = redis.register_script(_load("attribute", with_ledger=True))
        self._purchase = redis.register_script(_load("purchase", with_ledger=True))
        self._refund = redis.register_script(_load("refund", with_ledger=True))
        self._referrer_step_script = redis.register_script(_load("referrer_step", with_ledger=True))
        self._void_referral = redis.register_script(_load("void_referral", with_ledger=True))
        self._review_decide = redis.register_script(_load("review_decide", with_ledger=True))
        self._maintain = redis.register_script(_load("maintain", with_ledger=True))

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    @property
    def _write_off(self) -> bool:
        """What a refund cannot take back is forgiven (no debt) unless the rules block claims in debt."""
        return not self.rules.block_claims_in_debt

    @property
    def _inactivity_ms(self) -> int:
        return self.rules.expire_after_months * 30 * 86_400_000

    def _award(self, rule: str, base: int, at_ms: int, op: str, kind: str, *, tier: Tier | None = None,
               hold_days: int = 0, note: str = "") -> Award:
        earn_rule = self.rules.earn.get(rule)
        caps = self.rules.purchase_caps if rule == "purchase" else (earn_rule.caps if earn_rule else None)
        return engine.award(self.rules, rule, base, at_ms, op, kind, tier=tier, hold_days=hold_days, caps=caps,
                            note=note)

    async def earn(self, uid: str, award: Award) -> tuple[int, int]:
        """Write an award to the ledger: (1 written | 0 already done, balance)."""
        spec = award.spec(self.rules)
        written, balance = await self._apply(keys=keys.ledger_keys(uid), args=[json.dumps({"mode": "earn", **spec})])
        await self._schedule(uid, spec)
        if int(written) == 1:
            await self.count("points_issued", award.amount)
        return int(written), int(balance)

    async def _schedule(self, uid: str, *specs: dict[str, Any]) -> None:
        """Remember when this member's points next change by themselves (expiry, end of a hold).

        Early is harmless: maintain() looks and schedules the real next time."""
        due = [t for spec in specs for t in (spec["expires"], spec["hold_until"]) if t]
        if self.rules.expiry == "inactivity":
            due += [spec["at"] + self._inactivity_ms for spec in specs]
        if due:
            await self.redis.zadd(keys.DUE, {uid: min(due)}, lt=True)

    # ---- members ---------------------------------------------------------------------
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
            await self.redis.sadd(keys.MEMBERS, uid)
        if via == "unfollow":
            await self._friend_blocked(uid, at_ms)
        return bool(created), language.decode() if language else None, step.decode() if step else None

    async def welcome_points(self, uid: str, at_ms: int, event_id: str = "") -> int:
        """Signup points, once per member whatever happens later (op id `signup`).

        Returns what this event earned: the same answer when the event is handled again after a crash
        (the entry remembers the event), 0 for any other follow.
        """
        if self.rules.signup_points <= 0:
            return 0
        award = self._award("signup", self.rules.signup_points, at_ms, "signup", "signup", note=event_id)
        written, _ = await self.earn(uid, award)
        if written == 1:
            return award.amount
        entry = await self._entry(uid, "signup")
        return int(entry["delta"]) if event_id and entry and entry.get("note") == event_id else 0

    async def apply(self, uid: str, op: str, delta: int, kind: str, rule: str, at_ms: int,
                    note: str = "", allow_negative: bool = False) -> tuple[int, int]:
        """One ledger entry with its operation id: (1 written | 0 already done | -1 refused, balance).

        Positive: an earning (a new lot). Negative: a spend (refused without enough spendable points),
        or with allow_negative a deduction that may leave a debt.
        """
        mode = "earn" if delta > 0 else ("deduct" if allow_negative else "spend")
        if mode == "earn":
            expires = engine.expires_ms(self.rules, engine.shop_time(self.rules, at_ms))
            return await self.earn(uid, engine.Award(op=op, rule=rule, kind=kind, amount=delta, at_ms=at_ms,
                                                     note=note, expires_ms=expires))
        spec = {"mode": mode, "op": op, "amount": -delta, "kind": kind, "rule": rule, "at": at_ms, "note": note,
                "write_off": self._write_off}
        written, balance = await self._apply(keys=keys.ledger_keys(uid), args=[json.dumps(spec)])
        return int(written), int(balance)

    async def spend(self, uid: str, op: str, points: int, rule: str, note: str = "") -> tuple[int, int]:
        """Spend points (a claim): (1 spent | 0 already done | -1 not enough spendable points, balance)."""
        written, balance = await self.apply(uid, op, -points, "claim", rule, self._now_ms(), note)
        if written == 1:
            await self.count("points_spent", points)
        return written, balance

    async def exists(self, uid: str) -> bool:
        return bool(await self.redis.exists(keys.member(uid)))

    async def language(self, uid: str) -> str | None:
        """The member's own choice of language, else the one their LINE app reported."""
        chosen, line = await self.redis.hmget(keys.member(uid), ["lang_pref", "lang"])
        lang = chosen or line
        return lang.decode() if lang else None

    async def set_line_language(self, uid: str, lang: str) -> None:
        """The LINE app's language (read from the profile on follow): a default, not the member's choice."""
        await self.redis.hset(keys.member(uid), "lang", lang)

    async def set_language(self, uid: str, lang: str) -> int:
        """The member's own choice of language; it wins over the LINE app's. Returns profile points paid now."""
        await self.redis.hset(keys.member(uid), "lang_pref", lang)
        return await self._profile_completed(uid)

    async def set_nickname(self, uid: str, nickname: str | None, consent: bool) -> None:
        """The leaderboard nickname (None keeps the current one) and whether it may be shown.

        The nickname arrives already checked (bot side); consent without a nickname is refused."""
        if consent and nickname is None and not await self.redis.hexists(keys.member(uid), "nickname"):
            raise ProgramError("NO_NICKNAME", "set a nickname before agreeing to show it")
        fields: dict[str, str | int] = {"nickname_consent": 1 if consent else 0}
        if nickname is not None:
            fields["nickname"] = nickname
        await self.redis.hset(keys.member(uid), mapping=fields)

    async def profile_points_paid(self, uid: str) -> int:
        """The profile-completion points this member got (0 before completion, or with the rule off)."""
        entry = await self._entry(uid, "profile")
        return int(entry["delta"]) if entry else 0

    async def set_birthday(self, uid: str, month: int, day: int) -> bool:
        """Once: the birthday can be set but not changed (so it cannot be moved to earn twice)."""
        if not await self.redis.hsetnx(keys.member(uid), "birthday", f"{month:02d}-{day:02d}"):
            return False
        await self.redis.sadd(keys.birthdays(month), uid)
        await self._profile_completed(uid)
        now = self._now_ms()
        if engine.shop_time(self.rules, now).month == month:  # set during the birthday month: pay this year
            await self.birthday_points(uid, now)
        return True

    async def set_gift(self, uid: str, gift: bool) -> None:
        """相手に譲る: the member's future referral rewards go to the friend they invited."""
        if gift and not self.rules.allow_gift:
            raise ProgramError("GIFT_NOT_ALLOWED", "this shop's rules do not let referrers give their reward away")
        await self.redis.hset(keys.member(uid), "gift", 1 if gift else 0)

    async def _profile_completed(self, uid: str) -> int:
        """Profile completion = a birthday and a language the member chose (LINE's own does not count);
        pays once (op `profile`). Returns the points paid by this call."""
        fields = await self.redis.hmget(keys.member(uid), ["birthday", "lang_pref"])
        rule = self.rules.earn.get("profile")
        if rule and rule.points and all(fields):
            award = self._award("profile", rule.points, self._now_ms(), "profile", "profile")
            written, _ = await self.earn(uid, award)
            return award.amount if written == 1 else 0
        return 0

    async def birthday_points(self, uid: str, at_ms: int) -> int:
        rule = self.rules.earn.get("birthday")
        if not rule or not rule.points:
            return 0
        year = engine.shop_time(self.rules, at_ms).year
        award = self._award("birthday", rule.points, at_ms, f"birthday:{year}", "birthday",
                            tier=await self._tier_of(uid))
        written, _ = await self.earn(uid, award)
        return award.amount if written == 1 else 0

    async def custom_event(self, uid: str, name: str, event_id: str, at_ms: int | None = None) -> tuple[bool, int]:
        """An event the shop reports (review, share…): (written now, points) — once per event id."""
        rule = self.rules.earn.get(f"events.{name}")
        if rule is None:
            raise ProgramError("UNKNOWN_EVENT", f"the rules name no event {name!r}")
        if not await self.exists(uid):
            raise ProgramError("UNKNOWN_MEMBER", "no member with that user id")
        award = self._award(rule.name, rule.points, at_ms or self._now_ms(), f"event:{name}:{event_id}", "event",
                            tier=await self._tier_of(uid))
        written, _ = await self.earn(uid, award)
        entry = await self._entry(uid, award.op)
        return written == 1, int(entry["delta"]) if entry else 0

    async def _entry(self, uid: str, op: str) -> dict | None:
        entry_id = await self.redis.hget(keys.ops(uid), ledger_codec.op_field(op))
        if entry_id is None:
            return None
        return ledger_codec.decode(int(entry_id), await self.redis.lindex(keys.ledger(uid), int(entry_id) - 1), op)

    async def _tier_of(self, uid: str) -> Tier:
        fields = await self.redis.hgetall(keys.member(uid))
        return self._tier({k.decode(): v.decode() for k, v in fields.items()})[0]

    def _tier(self, m: dict[str, str]) -> tuple[Tier, int]:
        """The member's tier and the measure it is judged on (points earned or yen spent, per the rules)."""
        prefix = "earned:" if self.rules.tier_basis == "points" else "spent:"
        if self.rules.tier_window == "lifetime":
            measure = int(m.get("lifetime" if prefix == "earned:" else "spent", 0))
        else:
            now = engine.shop_time(self.rules, self._now_ms())
            months = {engine.add_months(now.replace(day=1), -i).strftime("%Y-%m") for i in range(12)}
            measure = sum(int(m.get(prefix + month, 0)) for month in months)
        tier = self.rules.tier_for(measure)
        if self.rules.tier_downgrade == "never":
            peak = m.get("tier_peak")
            ranks = [t.name for t in self.rules.tiers]
            if peak in ranks and ranks.index(peak) > ranks.index(tier.name):
                tier = self.rules.tiers[ranks.index(peak)]
        return tier, measure

    async def _referral_statuses(self, made_hashes: list[dict]) -> list[dict[str, str]]:
        """Each member's referrals (friend -> status) from their referrals hashes, with the friend's own
        status where the referrer's record lags: it says "pending" while the friend's is in review (or
        already decided, before settle catches up). Only those are read: one pipelined round trip."""
        made_all = [_friends_of(made) for made in made_hashes]
        lagging = [(i, friend) for i, made in enumerate(made_all) for friend, st in made.items() if st == "pending"]
        if lagging:
            async with self.redis.pipeline(transaction=False) as pipe:
                for _, friend in lagging:
                    pipe.hget(keys.referral(friend), "status")
                own = await pipe.execute()
            for (i, friend), status in zip(lagging, own, strict=True):
                made_all[i][friend] = _newer_status("pending", status)
        return made_all

    async def member(self, uid: str) -> MemberView | None:
        fields = await self.redis.hgetall(keys.member(uid))
        if not fields:
            return None
        m = {k.decode(): v.decode() for k, v in fields.items()}
        [made] = await self._referral_statuses([await self.redis.hgetall(keys.referrals_made(uid))])
        tier, measure = self._tier(m)
        if self.rules.tier_downgrade == "never" and m.get("tier_peak") != tier.name:
            await self.redis.hset(keys.member(uid), "tier_peak", tier.name)
        higher = [t for t in self.rules.tiers if t.threshold > max(measure, tier.threshold)]
        return MemberView(
            user_id=uid, points=int(m.get("points", 0)), pending_points=int(m.get("pending_points", 0)),
            lifetime_points=int(m.get("lifetime", 0)), tier=tier.name,
            next_tier=higher[0].name if higher else None,
            to_next_tier=higher[0].threshold - measure if higher else None,
            referrals=_referral_counts(made),
            code=m.get("code"), blocked=m.get("blocked") == "1", lang=m.get("lang_pref") or m.get("lang"),
            debt=int(m.get("debt", 0)), birthday=m.get("birthday"), gift=m.get("gift") == "1",
            nickname=m.get("nickname"), nickname_consent=m.get("nickname_consent") == "1",
            language_chosen="lang_pref" in m)

    async def tier_rise(self, uid: str) -> str | None:
        """The tier the member has risen to since the last rise was marked told, or None.

        A fall (tiers that follow a window down) is marked silently, so the next rise is news again."""
        fields = await self.redis.hgetall(keys.member(uid))
        if not fields:
            return None
        m = {k.decode(): v.decode() for k, v in fields.items()}
        tier, _ = self._tier(m)
        ranks = [t.name for t in self.rules.tiers]
        told = m.get("tier_told")
        told_rank = ranks.index(told) if told in ranks else 0
        if ranks.index(tier.name) > told_rank:
            return tier.name
        if ranks.index(tier.name) < told_rank:
            await self.redis.hset(keys.member(uid), "tier_told", tier.name)
        return None

    async def mark_tier_told(self, uid: str, tier: str) -> None:
        await self.redis.hset(keys.member(uid), "tier_told", tier)

    async def milestone_reached(self, referrer: str, friend: str) -> int | None:
        """The milestone count this friend's completed referral reached for the referrer, if it reached one."""
        op = await self.redis.hget(keys.referrals_made(referrer), f"{friend}|milestone")
        if not op or await self.redis.hget(keys.referrals_made(referrer), friend) != b"completed":
            return None
        return int(op.decode().split(":")[1])

    async def recent_ledger(self, uid: str, count: int = 5) -> list[LedgerLine]:
        async with self.redis.pipeline(transaction=False) as pipe:  # one slot: cluster-safe
            pipe.llen(keys.ledger(uid))
            pipe.lrange(keys.ledger(uid), -count * 2, -1)
            length, raw = await pipe.execute()
        first_id = int(length) - len(raw) + 1
        lines = [ledger_codec.decode(first_id + i, r) for i, r in enumerate(raw)][::-1]
        shown = [e for e in lines if e["kind"] != "release"][:count]  # a release moves points, it earns none
        return [LedgerLine(e["delta"], e["kind"], e["rule"], e["at"], e["balance"], e.get("state", "done"))
                for e in shown]

    async def ledger(self, uid: str) -> list[dict[str, Any]]:
        """Every entry, oldest first: what the member's balance is rebuilt from."""
        async with self.redis.pipeline(transaction=False) as pipe:  # one slot: cluster-safe
            pipe.lrange(keys.ledger(uid), 0, -1)
            pipe.hgetall(keys.ops(uid))  # the op ids and the lots
            raw, ops = await pipe.execute()
        op_of, lots = ledger_codec.split_ops(ops)
        entries = [ledger_codec.decode(i + 1, r, op_of.get(i + 1)) for i, r in enumerate(raw)]
        for e in entries:  # an earning's expiry is stored once, in its lot (lot id = entry id)
            lot = lots.get(e["id"])
            if lot is not None:
                e["expires_at"] = ledger_codec.parse_lot(lot).expires_at
        return entries

    async def adjust(self, uid: str, points: int, reason: str, staff: str, op: str) -> tuple[bool, int]:
        """A manual adjustment by staff; may take the balance below zero (a correction is a correction)."""
        if not await self.exists(uid):
            raise ProgramError("UNKNOWN_MEMBER", "no member with that user id")
        written, balance = await self.apply(uid, op, points, "adjustment", f"staff:{staff}", self._now_ms(),
                                            note=reason, allow_negative=True)
        return written == 1, balance

    async def maintain(self, uid: str, now_ms: int | None = None) -> tuple[int, int]:
        """Release held points whose time came and expire old ones: (released, expired). Idempotent."""
        now = now_ms if now_ms is not None else self._now_ms()
        inactivity_ms = self._inactivity_ms
        released, expired, due = await self._maintain(keys=keys.ledger_keys(uid),
                                                      args=[now, self.rules.expiry, inactivity_ms])
        if self.rules.expiry == "inactivity" and int((await self.redis.hget(keys.member(uid), "points")) or 0) > 0:
            last = int((await self.redis.hget(keys.member(uid), "last_activity")) or now)
            due = min(int(due) or 2**62, last + inactivity_ms)
        if int(due):
            await self.redis.zadd(keys.DUE, {uid: int(due)})
        else:
            await self.redis.zrem(keys.DUE, uid)
        if expired:
            await self.count("points_expired", int(expired))
        return int(released), int(expired)

    async def maintain_due(self, now_ms: int | None = None, limit: int = 1000) -> int:
        """The clock job: every member with something due by now. Returns how many were looked at."""
        now = now_ms if now_ms is not None else self._now_ms()
        due = [u.decode() for u in await self.redis.zrangebyscore(keys.DUE, "-inf", now, start=0, num=limit)]
        for uid in due:
            await self.maintain(uid, now)
        return len(due)

    async def expiring_soon(self, now_ms: int | None = None) -> list[tuple[str, int, int]]:
        """Members to warn: (member, points expiring, when), once per expiry date."""
        if not self.rules.warning_days or self.rules.expiry == "never":
            return []
        now = now_ms if now_ms is not None else self._now_ms()
        horizon = now + self.rules.warning_days * 86_400_000
        out = []
        for raw in await self.redis.zrangebyscore(keys.DUE, now, horizon):
            uid = raw.decode()
            lots = await self._queued_lots(uid)
            if not lots or lots[0].expires_at > horizon:
                continue
            when = lots[0].expires_at
            if int(await self.redis.hget(keys.WARNED, uid) or 0) == when:
                continue
            out.append((uid, sum(lot.remaining for lot in lots if lot.expires_at <= when), when))
        return out

    async def _queued_lots(self, uid: str) -> list[ledger_codec.Lot]:
        """The member's spendable lots with points left, soonest expiry first (ledger.lua's lot queue)."""
        ids = ledger_codec.queued(await self.redis.hget(keys.ops(uid), ledger_codec.QUEUE))
        if not ids:
            return []
        raw = await self.redis.hmget(keys.ops(uid), [ledger_codec.lot_field(i) for i in ids])
        return [ledger_codec.parse_lot(lot) for lot in raw if lot is not None]

    async def expiring(self, uid: str) -> tuple[int, int] | None:
        """Read only: (points, when) of the member's soonest expiry within the warning window, or None."""
        if self.rules.expiry == "never":
            return None
        horizon = self._now_ms() + max(self.rules.warning_days, 30) * 86_400_000
        lots = await self._queued_lots(uid)
        if not lots or lots[0].expires_at > horizon:
            return None
        when = lots[0].expires_at
        points = sum(lot.remaining for lot in lots if lot.expires_at <= when)
        return (points, when) if points > 0 else None

    async def mark_warned(self, uid: str, when_ms: int) -> None:
        await self.redis.hset(keys.WARNED, uid, when_ms)

    async def birthdays_due(self, now_ms: int | None = None) -> int:
        """The yearly birthday points for everyone whose birthday month it is (op `birthday:{year}`)."""
        now = now_ms if now_ms is not None else self._now_ms()
        month = engine.shop_time(self.rules, now).month
        paid = 0
        for raw in await self.redis.smembers(keys.birthdays(month)):
            paid += 1 if await self.birthday_points(raw.decode(), now) else 0
        return paid

    # ---- invite codes ----------------------------------------------------------------
    async def invite_code(self, uid: str) -> str:
        """The member's invite code, minted on first use."""
        current = await self.redis.hget(keys.member(uid), "code")
        if current:
            return str(current.decode())
        while True:
            candidate = codes.new_code()
            if await self.redis.hsetnx(keys.codes(candidate), candidate, uid):
                break
        # Two racing calls may both mint a code; the first to land wins and the loser's code
        # still points at the same member, so a link already sent never breaks.
        if await self.redis.hsetnx(keys.member(uid), "code", candidate):
            return candidate
        return str((await self.redis.hget(keys.member(uid), "code")).decode())

    async def member_token(self, uid: str) -> str:
        """The unguessable token the member's counter QR carries (never the user id), minted on first use."""
        current = await self.redis.hget(keys.member(uid), "member_token")
        if current:
            return str(current.decode())
        candidate = secrets.token_urlsafe(16)
        await self.redis.set(keys.member_token(candidate), uid, nx=True)
        if await self.redis.hsetnx(keys.member(uid), "member_token", candidate):
            return candidate
        return str((await self.redis.hget(keys.member(uid), "member_token")).decode())

    async def nickname(self, uid: str) -> str | None:
        """The nickname the member gave (their own card shows it; others see it only with consent)."""
        raw = await self.redis.hget(keys.member(uid), "nickname")
        return raw.decode() if raw else None

    async def member_by_token(self, token: str) -> str | None:
        """Who a scanned member QR belongs to (for staff tools); None for an unknown token."""
        if not token or len(token) > 64:
            return None
        owner = await self.redis.get(keys.member_token(token))
        return owner.decode() if owner else None

    async def owner_of(self, code: str) -> str | None:
        normal = codes.normalise(code)
        owner = await self.redis.hget(keys.codes(normal), normal) if normal else None
        return owner.decode() if owner else None

    # ---- referrals -------------------------------------------------------------------
    def _friend_award(self, at_ms: int, note: str) -> dict[str, Any]:
        return self._award("referral.friend", self.rules.friend_points, at_ms, "referral:friend", "referral",
                           hold_days=self.rules.referral_hold_days, note=note).spec(self.rules)

    async def attribute(self, friend: str, code: str, op: str) -> Attribution:
        """A code message from `friend`: attribute them to the code's owner, or say why not."""
        await self.count("codes_sent")
        guess_key = keys.guesses(friend)
        failures = int(await self.redis.get(guess_key) or 0)
        if failures >= self.rules.guess_max_failures:
            return await self._refused(RATE_LIMITED)
        referrer = await self.owner_of(code)
        if referrer is None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(guess_key)
                pipe.ttl(guess_key)
                _, ttl = await pipe.execute()
            if ttl < 0:  # the window starts with the first failure (EXPIRE NX needs Redis 7)
                await self.redis.expire(guess_key, self.rules.guess_per_minutes * 60)
            return await self._refused(UNKNOWN_CODE)
        if referrer == friend:
            return await self._refused(SELF_REFERRAL)
        now = self._now_ms()
        on_join = self.rules.referral_trigger == "join"
        if on_join:
            await self.redis.sadd(keys.SETTLE, friend)  # the intent, written before the step it guards
        outcome, recorded_referrer, replay = await self._attribute(
            keys=[*keys.ledger_keys(friend), keys.referral(friend)],
            args=[json.dumps({"referrer": referrer, "code": code, "op": op, "now": now,
                              "window": self.rules.referral_window_ms, "complete_on_join": on_join,
                              "friend_award": self._friend_award(now, "join")})])
        outcome = outcome.decode()
        if outcome != "OK":
            return await self._refused(outcome)
        # The referrer's half; on a replay it is simply written again.
        await self._referrer_step(referrer, friend, "pending")
        if on_join:
            await self.settle(friend)
        if not replay:
            await self.count("referrals_pending")
            if on_join:
                await self.count("points_issued", self.rules.friend_points)
        return Attribution(ok=True, referrer=recorded_referrer.decode(), replay=bool(replay))

    async def decide_referral(self, friend: str, decision: str, by: str) -> tuple[bool, str, str | None]:
        """Staff's decision ("approve" | "void") on a reviewed (or, to void, pending) referral: (changed now,
        the referral's status, the referrer when settle paid them just now). Taken again it changes nothing.

        Raises ProgramError UNKNOWN_REFERRAL, NOT_IN_REVIEW or NOT_VOIDABLE with nothing changed."""
        now = self._now_ms()
        spec = self._friend_award(now, "review")
        await self.redis.sadd(keys.SETTLE, friend)  # the intent, written before the step it guards
        outcome, status = await self._review_decide(keys=[*keys.ledger_keys(friend), keys.referral(friend)],
                                                    args=[json.dumps({"decision": decision, "at": now, "by": by,
                                                                      "friend_award": spec})])
        outcome, status = outcome.decode(), status.decode()
        if outcome not in ("OK", "ALREADY"):
            await self.redis.srem(keys.SETTLE, friend)
            messages = {"UNKNOWN_REFERRAL": "that member was never referred",
                        "NOT_IN_REVIEW": f"only a referral in review can be approved (this one is {status})",
                        "NOT_VOIDABLE": f"only a pending or reviewed referral can be voided (this one is {status})"}
            raise ProgramError(outcome, messages[outcome])
        if outcome == "OK" and decision == "approve":
            await self._schedule(friend, spec)  # the friend's points may be held: release them on time
            await self.count("points_issued", int(spec["amount"]))
            await self.count("referrals_approved")
        paid_referrer = await self.settle(friend)  # the referrer's side (or the void on it), once
        return outcome == "OK", status, paid_referrer

    async def _refused(self, reason: str) -> Attribution:
        await self.count(f"refused:{reason}")
        return Attribution(ok=False, reason=reason)

    async def _referrer_step(self, referrer: str, friend: str, status: str, award: dict | None = None,
                             at_ms: int = 0) -> tuple[int, int]:
        at = at_ms or self._now_ms()
        milestones = [{"count": m.count, "award": self._award("referral.milestone", m.points, at,
                                                              f"milestone:{m.count}", "milestone").spec(self.rules)}
                      for m in self.rules.milestones]
        month = engine.shop_time(self.rules, at).strftime("%Y-%m")
        written, milestone = await self._referrer_step_script(
            keys=[*keys.ledger_keys(referrer), keys.referrals_made(referrer)],
            args=[json.dumps({"friend": friend, "status": status, "award": award, "milestones": milestones,
                              "monthly_cap": self.rules.referral_monthly_cap, "month": month, "at": at,
                              "write_off": self._write_off})])
        if award:
            await self._schedule(referrer, award)
        if award and int(written) == 1:
            await self.count("points_issued", int(award["amount"]))
        if int(milestone):
            await self.count("points_issued", sum(m.points for m in self.rules.milestones if m.count == int(milestone)))
        if status in ("completed", "voided"):
            await self._rank(referrer, friend, only_up=status == "completed")
            await self._top(referrer, only_up=status == "completed")
        return int(written), int(milestone)

    async def _top(self, referrer: str, only_up: bool) -> None:
        """Copy the referrer's completed count (moved once, in referrer_step.lua) into the all-time board:
        a re-run or a sweep racing an order writes the same number, never one more. GT as in _rank."""
        count = int(await self.redis.hget(keys.member(referrer), "referrals_completed") or 0)
        if count > 0:
            await self.redis.zadd(keys.TOP_REFERRERS, {referrer: count}, gt=only_up)
        else:
            await self.redis.zrem(keys.TOP_REFERRERS, referrer)

    async def _rank(self, referrer: str, friend: str, only_up: bool) -> None:
        """Copy the referrer's count for the month the referral completed into that month's board.

        The count itself moved once, in referrer_step.lua; this only copies it, so a re-run writes the
        same number again and never counts twice. A completion only raises the score (GT), so two of the
        referrer's referrals completing side by side cannot leave the older, lower count last."""
        month = await self.redis.hget(keys.referrals_made(referrer), f"{friend}|month")
        if not month:
            return
        month = month.decode()
        count = int(await self.redis.hget(keys.member(referrer), f"ranked:{month}") or 0)
        if count > 0:
            await self.redis.zadd(keys.leaderboard(month), {referrer: count}, gt=only_up)
        else:
            await self.redis.zrem(keys.leaderboard(month), referrer)

    async def settle(self, friend: str) -> str | None:
        """Finish the referrer's side of the friend's referral; returns the referrer when it paid just now.

        Safe to call any number of times: each step is keyed by an operation id.
        """
        ref = {k.decode(): v.decode() for k, v in (await self.redis.hgetall(keys.referral(friend))).items()}
        status, referrer = ref.get("status"), ref.get("referrer")
        paid_now = None
        if referrer and status == "completed" and not ref.get("referrer_paid"):
            at = int(ref.get("completed_at") or self._now_ms())
            hold = self.rules.referral_hold_days
            gift = self.rules.allow_gift and (await self.redis.hget(keys.member(referrer), "gift")) == b"1"
            points = self.rules.referrer_points
            if gift:  # 相手に譲る: the friend gets the referrer's reward too
                await self.earn(friend, self._award("referral.referrer", points, at, "referral:gift", "referral",
                                                       hold_days=hold, note=referrer))
            award = None if gift else self._award("referral.referrer", points, at, f"referral:{friend}",
                                                  "referral", hold_days=hold, note=friend).spec(self.rules)
            written, _ = await self._referrer_step(referrer, friend, "completed", award, at)
            await self.redis.hset(keys.referral(friend), mapping={"referrer_paid": 1, "gift": int(gift)})
            if written == 1 or gift:
                await self.count("referrals_completed")
                await self._count_completed(referrer, at)
                paid_now = referrer
        elif referrer and status == "voided" and ref.get("referrer_paid") and not ref.get("referrer_reversed"):
            if ref.get("gift") == "1":
                await self._reverse(friend, "referral:gift", "void:referral:gift")
            await self._referrer_step(referrer, friend, "voided")
            await self.redis.hset(keys.referral(friend), mapping={"referrer_reversed": 1})
            await self.count("referrals_voided")
        elif referrer and status == "voided" and not ref.get("referrer_paid") and not ref.get("referrer_reversed"):
            # voided before it paid anyone (staff voided a pending or reviewed referral, or its order was
            # refunded while in review): the referrer's record says so, nothing to take back
            await self._referrer_step(referrer, friend, "voided")
            await self.redis.hset(keys.referral(friend), mapping={"referrer_reversed": 1})
            await self.count("referrals_voided")
        await self.redis.srem(keys.SETTLE, friend)
        return paid_now

    async def _count_completed(self, referrer: str, completed_at: int) -> None:
        """The referrer's first completed referral, for the viral cycle time (kept once)."""
        joined = await self.redis.hget(keys.member(referrer), "first_seen_at")
        if joined is not None:
            await self.redis.hsetnx(keys.CYCLES, referrer, f"{int(joined)}|{completed_at}")

    async def _reverse(self, uid: str, op: str, new_op: str) -> None:
        entry = await self._entry(uid, op)
        if entry and entry["delta"] > 0:
            await self._apply(keys=keys.ledger_keys(uid), args=[json.dumps(
                {"mode": "deduct", "op": new_op, "amount": entry["delta"], "kind": "void", "rule": entry["rule"],
                 "at": self._now_ms(), "write_off": self._write_off})])

    async def settle_all(self) -> int:
        """Finish every referral a crash left half done (run by the worker now and then)."""
        friends = [f.decode() for f in await self.redis.smembers(keys.SETTLE)]
        for friend in friends:
            await self.settle(friend)
        return len(friends)

    async def _friend_blocked(self, friend: str, at_ms: int) -> None:
        """A friend who blocks while their referral's points are on hold voids it, on both sides."""
        if not self.rules.referral_hold_days:
            return
        await self.redis.sadd(keys.SETTLE, friend)
        await self._void_referral(keys=[*keys.ledger_keys(friend), keys.referral(friend)],
                                  args=["BLOCKED", at_ms, int(self._write_off)])
        await self.settle(friend)

    async def referral_status(self, uid: str, shown: int = 5) -> ReferralStatus:
        """Read only: the member's referrals, the newest few in detail, and the next milestone."""
        statuses = _friends_of(await self.redis.hgetall(keys.referrals_made(uid)))
        friends = []
        now = self._now_ms()
        for friend, made_status in statuses.items():
            ref = await self.redis.hmget(keys.referral(friend), ["status", "created_at", "hold_until"])
            code = await self.redis.hget(keys.member(friend), "code")
            # the friend's own record leads (the referrer's says "pending" while staff review it)
            status = statuses[friend] = _newer_status(made_status, ref[0])
            created, hold_until = int(ref[1] or 0), int(ref[2] or 0)
            needs = None
            if status == "pending":
                needs = "FIRST_PURCHASE"
            elif status == "review":  # the shop checks the order first (rewards/review.py)
                needs = "REVIEW"
            elif status == "completed" and hold_until > now:
                needs = "HOLD"
            friends.append(FriendReferral(code_hint=code.decode()[:4] if code else None, status=status,
                                          needs=needs, minimum_order=self.rules.referral_minimum_order,
                                          at_ms=created))
        friends.sort(key=lambda f: f.at_ms, reverse=True)
        referrals = _referral_counts(statuses)
        ahead = [m for m in self.rules.milestones if m.count > referrals.completed]
        return ReferralStatus(referrals=referrals, friends=friends[:shown],
                              next_milestone=ahead[0] if ahead else None,
                              to_next_milestone=ahead[0].count - referrals.completed if ahead else None)

    def month_of(self, at_ms: int | None = None) -> str:
        """YYYY-MM in the shop's time zone."""
        return engine.shop_time(self.rules, at_ms if at_ms is not None else self._now_ms()).strftime("%Y-%m")

    async def leaderboard(self, month: str | None = None, top: int = 10) -> list[Ranked]:
        """Read only: the month's top referrers by completed referrals, with what may be shown of them."""
        board = await self.redis.zrevrange(keys.leaderboard(month or self.month_of()), 0, top - 1, withscores=True)
        out = []
        for raw, score in board:
            uid = raw.decode()
            nickname, consent, code = await self.redis.hmget(keys.member(uid), ["nickname", "nickname_consent", "code"])
            out.append(Ranked(user_id=uid, completed=int(score),
                              nickname=nickname.decode() if nickname and consent == b"1" else None,
                              code=code.decode() if code else None))
        return out

    # ---- orders ----------------------------------------------------------------------
    async def record_purchase(self, order_id: str, uid: str, amount: int, at_ms: int | None = None,
                              fingerprint: str | None = None) -> Purchase:
        """An order reported by the shop: purchase points, and a pending referral completes on the first.

        `fingerprint` (the shop's hash of e.g. the delivery address or payment token): when a referred
        friend's order carries one already seen on their referrer's orders, the referral waits for staff
        (status "review") instead of completing: likely the referrer buying for themselves."""
        owner_key = keys.order_owner(order_id)
        if not await self.redis.set(owner_key, uid, nx=True):
            owner = (await self.redis.get(owner_key)).decode()
            if owner != uid:
                raise ProgramError("ORDER_CONFLICT", "this order_id was already reported for another member")
        at = at_ms if at_ms is not None else self._now_ms()
        await self.see(uid, "purchase", at)
        tier = await self._tier_of(uid)
        awards = [self._award("purchase", self.rules.purchase_points(amount), at, f"order:{order_id}", "purchase",
                              tier=tier, note=order_id)]
        first = self.rules.earn.get("first_purchase")
        first_awards = [self._award("first_purchase", first.points, at, "first_purchase", "purchase", tier=tier,
                                    note=order_id)] if first and first.points else []
        specs = [a.spec(self.rules) for a in awards if a.amount > 0]
        first_specs = [a.spec(self.rules) for a in first_awards]
        friend_spec = self._friend_award(at, order_id)
        review = await self._looks_like_self_referral(uid, fingerprint) if fingerprint else False
        await self.redis.sadd(keys.SETTLE, uid)  # the intent, written before the step it guards
        new, raw = await self._purchase(
            keys=[*keys.ledger_keys(uid), keys.orders(uid), keys.referral(uid)],
            args=[json.dumps({"order": order_id, "amount": amount, "at": at,
                              "month": engine.shop_time(self.rules, at).strftime("%Y-%m"),
                              "awards": specs, "first_awards": first_specs,
                              "referral_min": self.rules.referral_minimum_order, "friend_award": friend_spec,
                              "review": review})])
        answer = json.loads(raw)
        if fingerprint:
            await self.redis.sadd(keys.fingerprints(uid), fingerprint)
        await self._schedule(uid, *specs, *first_specs, friend_spec)
        paid_referrer = await self.settle(uid)
        if new:
            await self.count("orders")
            await self.count("revenue_yen", amount)
            if answer.get("referral"):
                await self.count("referred_revenue_yen", amount)
            await self.count("points_issued", int(answer.get("points_awarded", 0)))
            if (answer.get("referral") or {}).get("status") == "review":
                log.warning("referral of %s held for review: order %s carries a fingerprint of the referrer", uid,
                            order_id)
                await self.count("referrals_review")
        return Purchase(answer=answer, new=bool(new), completed_referral_of=paid_referrer)

    async def _looks_like_self_referral(self, friend: str, fingerprint: str) -> bool:
        ref = await self.redis.hmget(keys.referral(friend), ["status", "referrer"])
        if ref[0] != b"pending" or not ref[1]:
            return False
        return bool(await self.redis.sismember(keys.fingerprints(ref[1].decode()), fingerprint))

    async def refund(self, order_id: str) -> tuple[str, int]:
        """Reverse what an order awarded, once: ("OK" | "ALREADY_REFUNDED", points reversed)."""
        owner = await self.redis.get(keys.order_owner(order_id))
        if owner is None:
            raise ProgramError("UNKNOWN_ORDER", "no order with that order_id was reported")
        uid = owner.decode()
        await self.redis.sadd(keys.SETTLE, uid)
        outcome, reversed_points = await self._refund(
            keys=[*keys.ledger_keys(uid), keys.orders(uid), keys.referral(uid)],
            args=[order_id, self._now_ms(), int(self._write_off)])
        await self.settle(uid)
        outcome = outcome.decode()
        if outcome == "UNKNOWN_ORDER":  # the owner key landed but the order never did: a crash mid-report
            raise ProgramError("UNKNOWN_ORDER", "no order with that order_id was recorded")
        return outcome, int(reversed_points)

    # ---- staff and numbers -----------------------------------------------------------
    async def audit(self, who: str, what: str, member: str, **details: Any) -> None:
        """Append-only record of a staff action: who, what, when, before/after."""
        entry = {"who": who, "what": what, "member": member, "at": self._now_ms(), **details}
        await self.redis.xadd(keys.AUDIT, {k: str(v) for k, v in entry.items()})

    async def active_members(self) -> list[str]:
        """Every member who has not blocked the account."""
        members = [m.decode() for m in await self.redis.smembers(keys.MEMBERS)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in members:
                pipe.hget(keys.member(uid), "blocked")
            blocked = await pipe.execute()
        return sorted(uid for uid, b in zip(members, blocked, strict=True) if b != b"1")

    async def member_facts(self, uids: list[str]) -> list[MemberFacts]:
        """What broadcast segments look at, for many members in a few round trips (read-only)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in uids:
                pipe.hgetall(keys.member(uid))
                pipe.hgetall(keys.referrals_made(uid))
                pipe.hget(keys.ops(uid), ledger_codec.QUEUE)
            raw = await pipe.execute()
        next_expiry = await self._next_expiries(uids, [raw[3 * i + 2] for i in range(len(uids))])
        made_all = await self._referral_statuses([raw[3 * i + 1] for i in range(len(uids))])
        facts = []
        for i, uid in enumerate(uids):
            fields = raw[3 * i]
            if not fields:
                continue  # not a member (an id from a user_ids segment we never saw)
            m = {k.decode(): v.decode() for k, v in fields.items()}
            counts = _referral_counts(made_all[i])
            joined = int(m.get("first_seen_at", 0))
            facts.append(MemberFacts(
                user_id=uid, blocked=m.get("blocked") == "1", tier=self._tier(m)[0].name,
                points=int(m.get("points", 0)), referrals_invited=counts.invited,
                referrals_pending=counts.pending, referrals_completed=counts.completed,
                lang=m.get("lang_pref") or m.get("lang"), birthday=m.get("birthday"), joined_at_ms=joined,
                last_active_ms=max(joined, int(m.get("last_seen_at", 0)), int(m.get("last_activity", 0))),
                next_expiry_ms=next_expiry[i]))
        return facts

    async def _next_expiries(self, uids: list[str], queues: list[bytes | None]) -> list[int | None]:
        """Each member's soonest lot expiry (its lot queue's first lot), one round trip for them all."""
        firsts = [ledger_codec.queued(q)[:1] for q in queues]
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid, first in zip(uids, firsts, strict=True):
                if first:
                    pipe.hget(keys.ops(uid), ledger_codec.lot_field(first[0]))
            lots = iter(await pipe.execute())
        out: list[int | None] = []
        for first in firsts:
            lot = next(lots) if first else None
            out.append(ledger_codec.parse_lot(lot).expires_at if lot else None)
        return out

    async def member_ids(self) -> list[str]:
        """Every member ever seen, blocked or not, in a stable order."""
        return sorted(m.decode() for m in await self.redis.smembers(keys.MEMBERS))

    async def count(self, name: str, by: int = 1) -> None:
        """A program counter: the running total and the shop-time day's (kept 400 days, for the stats)."""
        day = keys.stats_day(engine.shop_time(self.rules, self._now_ms()).strftime("%Y-%m-%d"))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(keys.STATS, name, by)
            pipe.hincrby(day, name, by)
            pipe.expire(day, 400 * 86_400)
            await pipe.execute()

    async def stats(self) -> dict[str, int]:
        raw = await self.redis.hgetall(keys.STATS)
        out = {k.decode(): int(v) for k, v in raw.items()}
        out["members"] = int(await self.redis.scard(keys.MEMBERS))
        return out
