"""A member's data on request (APPI): everything kept about one member (export), and their erasure.

Erasure, in short:
- the member's points are forfeited (one ledger entry, forfeit.lua), then their ledger moves to a pseudonym, a
  random id ("X" + 32 hex digits, never derived from the user id), with its amounts, kinds and times but no notes
  and none of the record's personal fields (nickname, birthday, language, code, token, customer…). The pseudonym
  stays in the member list, blocked, so every total (members, points issued, referrals per referrer, boards) adds
  up as before;
- every index that points at the user id goes (invite code, member QR token, coupons, welcome coupon code,
  birthday list, schedules, customer link both ways, the link's nonce, the Shopify customer's keys, shares,
  kept data requests); the few that must keep counting are renamed to the pseudonym (the referrers' boards, the
  top referrers, the other side of each referral, other members' ledger notes, the audit trail);
- its plan (the pseudonym and what to clean, read once while the member's keys are whole) is written first
  (PRIVACY_ERASING) and every step after is idempotent, so a crash is finished by running it again (the next
  DELETE, or the clock's finish_all);
- last, a keyed hash of the user id (never the id) is kept: the same LINE user seen again is a new member, but
  one who can neither be referred (EXISTING_MEMBER) nor earn the sign-up points again.

What the bot keeps beside the domain (the conversation step, notices held for quiet hours, staff sets) is handed
to the hooks the service registers (add_plumbing), so every way in (admin API, chat, Shopify, the clock) erases it.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rewards import engine, keys, ledger_codec
from rewards.counters import Counters
from rewards.friend_coupons import index_form
from rewards.ledger import Ledger
from rewards.members import Members
from rewards.part import Part
from rewards.referrals import Referrals
from rewards.rules import FRIEND_COUPON_POOL, Rules

log = logging.getLogger(__name__)

FORFEIT_OP = "erase:forfeit"
ERASED_OWNER = "x:erased"  # an erased member's orders: a repeat or a refund of one changes nothing (rewards/links.py)
# The record's fields a pseudonym keeps: amounts and counts that totals, tiers and boards add up. Everything else
# (nickname, birthday, language, code, token, customer, referrer, follow times, order ids…) goes.
KEPT_FIELDS = {keys.field(n) for n in ("points", "pending_points", "debt", "lifetime", "last_activity",
                                       "first_seen_at", "referrals_completed", "orders", "spent", "tier_peak")}
KEPT_PREFIXES = tuple(keys.FIELD_PREFIXES[p] for p in ("earned:", "spent:", "referrals:", "ranked:"))
REFERRAL_DROPPED = ("op", "coupon")  # the event or LIFF op that attributed them, the welcome coupon (forfeited)
SHARES_DAYS = 3  # shares_day sets live two days: today's, yesterday's and the day before's are all that can hold them
ExportHook = Callable[[str], Awaitable[dict[str, Any]]]
EraseHook = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Erasure:
    points_forfeited: int  # spendable and held points given up
    resumed: bool  # an erasure a crash had left half done, finished now


def _s(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def is_pseudonym(uid: str) -> bool:
    return len(uid) == 33 and uid[0] == "X"


def _kept(stored: str) -> bool:
    return stored in KEPT_FIELDS or (stored[:2] in KEPT_PREFIXES and stored[2:3].isdigit())


def _without_note(raw: bytes) -> bytes:
    """A ledger entry as stored, its note cut (a note names an order, an event, a friend, or is a staff's words)."""
    lot, entry = ledger_codec.split_entry(raw)
    if entry[:1] == b"[":  # the older positional JSON entry: its note is the 10th field
        row = json.loads(entry)
        if len(row) > 9:
            row[9] = ""
        entry = json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()
    else:
        note = ledger_codec.decode(0, entry)["note"].encode()
        entry = entry[:len(entry) - len(note)] if note else entry
    return entry if lot is None else lot + b";" + entry


class Privacy(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int], *, counters: Counters, ledger: Ledger,
                 members: Members, referrals: Referrals):
        super().__init__(redis, rules, now_ms)
        self.counters = counters
        self.ledger = ledger
        self.members = members
        self.referrals = referrals
        self._forfeit = self.script("forfeit", moves_points=True)
        self._rename = self.script("rename_in_hash")
        self._swap = self.script("link_swap")
        self._move_order = self.script("order_move")
        self._audit_once = self.script("audit_once")
        self._key: bytes | None = None
        self._export_hooks: list[ExportHook] = []
        self._erase_hooks: list[EraseHook] = []

    def add_plumbing(self, export: ExportHook, erase: EraseHook) -> None:
        """What the bot keeps about a user beside the domain: added to every export, erased with every erasure."""
        self._export_hooks.append(export)
        self._erase_hooks.append(erase)

    # ---- the keyed hash of an erased id -----------------------------------------------------------------------
    async def _hash_key(self) -> bytes:
        """A random key made once per database (SET NX): the erased ids' hashes stay comparable across restarts
        and channel secret changes, and a user id cannot be checked against them without it."""
        if self._key is None:
            await self.redis.set(keys.PRIVACY_KEY, secrets.token_hex(32), nx=True)
            self._key = bytes.fromhex(_s(await self.redis.get(keys.PRIVACY_KEY)))
        return self._key

    async def erased_hash(self, uid: str) -> str:
        return hmac.new(await self._hash_key(), b"erased\0" + uid.encode(), hashlib.sha256).hexdigest()

    async def was_erased(self, uid: str) -> bool:
        """Whether this user id was erased before (a returning person: not referable, no sign-up points)."""
        return bool(await self.redis.hexists(keys.PRIVACY_ERASED, await self.erased_hash(uid)))

    async def erasing(self, uid: str) -> bool:
        return bool(await self.redis.hexists(keys.PRIVACY_ERASING, uid))

    # ---- export -------------------------------------------------------------------------------------------------
    async def export(self, uid: str) -> dict[str, Any] | None:
        """Everything kept about the member, as JSON-ready data; None when there is no such member (or their
        erasure is under way). `keys` lists every Redis key read that holds something of theirs."""
        if not await self.members.exists(uid) or await self.erasing(uid):
            return None
        r = self.redis
        held: list[str] = []

        def note(key: str, value: Any) -> Any:
            if value not in (None, {}, [], set(), 0, b"", ""):
                held.append(key)
            return value

        record = await self._record(uid)
        held.append(keys.member(uid))
        entries = await self.ledger.entries(uid)
        hold = note(keys.hold_queue(uid), {_s(k): int(v) for k, v in await r.zrange(keys.hold_queue(uid), 0, -1,
                                                                                      withscores=True)})
        orders = note(keys.orders(uid), {_s(k): json.loads(v) for k, v in (await r.hgetall(keys.orders(uid))).items()})
        referral = note(keys.referral(uid), _strs(await r.hgetall(keys.referral(uid))))
        made = note(keys.referrals_made(uid), _strs(await r.hgetall(keys.referrals_made(uid))))
        coupons = note(keys.coupons(uid), {_s(k): json.loads(v) for k, v in (await r.hgetall(keys.coupons(uid))).items()})
        note(keys.coupon_order(uid), await r.zcard(keys.coupon_order(uid)))
        used = note(keys.coupons_used(uid), _strs(await r.hgetall(keys.coupons_used(uid))))
        claimed = note(keys.claimed(uid), _strs(await r.hgetall(keys.claimed(uid))))
        claims = {}
        for key in await self._member_keys(uid, "claim:*"):
            claims[key.rsplit(":", 1)[1]] = note(key, _strs(await r.hgetall(key)))
        reservations = {}
        for claim_id, claim in claims.items():  # a claim's hold on the reward's stock names its member
            reservation = keys.reward_reservation(claim.get("reward", ""), claim_id)
            if claim.get("reward") and await r.hget(reservation, "member") == uid.encode():
                reservations[claim_id] = note(reservation, _strs(await r.hgetall(reservation)))
        prompts = note(keys.prompts(uid), _strs(await r.hgetall(keys.prompts(uid))))
        fingerprints = note(keys.fingerprints(uid), sorted(_s(f) for f in await r.smembers(keys.fingerprints(uid))))
        guesses = note(keys.guesses(uid), int(await r.get(keys.guesses(uid)) or 0))
        pre_follow = note(keys.pre_follow(uid), _s(await r.get(keys.pre_follow(uid)) or b""))
        indexes: dict[str, Any] = {}
        code = record.get("code")
        if code and await r.hget(keys.codes(code), code) == uid.encode():
            indexes["invite_code"] = note(keys.codes(code), code)
        token = record.get("member_token")
        if token and await r.get(keys.member_token(token)) == uid.encode():
            indexes["member_token"] = note(keys.member_token(token), token)
        coupon_index = [t for t in coupons if await r.get(keys.coupon(t)) == uid.encode()]
        held += [keys.coupon(t) for t in coupon_index]
        welcome = [c["code"] for c in coupons.values() if c.get("reward") == FRIEND_COUPON_POOL and c.get("code")]
        taken = _s(await r.hget(keys.friend_coupon_taken(FRIEND_COUPON_POOL, uid), "code") or b"")
        welcome_codes = [c for c in {*welcome, *([taken] if taken else [])}
                         if await r.get(keys.friend_coupon_code(index_form(c))) == uid.encode()]
        held += [keys.friend_coupon_code(index_form(c)) for c in welcome_codes]
        if await r.exists(keys.friend_coupon_taken(FRIEND_COUPON_POOL, uid)):
            held.append(keys.friend_coupon_taken(FRIEND_COUPON_POOL, uid))
        schedules = {}
        for name, key, score in (("points_due", keys.due(uid), await r.zscore(keys.due(uid), uid)),
                                 ("reminder_due", keys.REMINDERS_DUE, await r.zscore(keys.REMINDERS_DUE, uid)),
                                 ("friend_coupon_owed", keys.FRIEND_COUPONS_OWED,
                                  await r.zscore(keys.FRIEND_COUPONS_OWED, uid)),
                                 # [budget]: their referral's completion waits for a month's budget (held at)
                                 ("referral_held_for_budget", keys.BUDGET_HELD,
                                  await r.zscore(keys.BUDGET_HELD, uid))):
            if score is not None:
                schedules[name] = note(key, int(score))
        warned = await r.hget(keys.WARNED, uid)
        if warned is not None:
            schedules["expiry_warned_for"] = note(keys.WARNED, int(warned))
        if await r.sismember(keys.SETTLE, uid):
            schedules["referral_to_settle"] = note(keys.SETTLE, True)
        held.append(keys.members(uid))
        birthday = record.get("birthday")
        if birthday and await r.sismember(keys.birthdays(int(birthday[:2])), uid):
            held.append(keys.birthdays(int(birthday[:2])))
        boards = {}
        for month in sorted(m.split(":", 1)[1] for m in record if m.startswith("ranked:")):
            score = await r.zscore(keys.leaderboard(month), uid)
            if score is not None:
                boards[month] = note(keys.leaderboard(month), int(score))
        top = await r.zscore(keys.TOP_REFERRERS, uid)
        cycle = await r.hget(keys.CYCLES, uid)
        numbers = {"top_referrers": note(keys.TOP_REFERRERS, int(top)) if top is not None else None,
                   "first_referral_cycle": note(keys.CYCLES, _s(cycle)) if cycle is not None else None}
        shares = []
        for key in self._share_days():
            mine = [_s(m).split("|", 1)[1] async for m in r.sscan_iter(key, match=f"{uid}|*")]
            shares += [{"day": key.rsplit(":", 1)[1], "code": c} for c in note(key, mine)]
        link = await self._customer_link(uid, record.get("customer_id"), note)
        for order_id in orders:  # each order's owner key names its buyer
            if await r.get(keys.order_owner(order_id)) == uid.encode():
                held.append(keys.order_owner(order_id))
        # the other side of each referral names them: the friends they invited, the member who invited them
        for friend in (f for f in made if "|" not in f):
            if await r.hget(keys.referral(friend), "referrer") == uid.encode():
                held.append(keys.referral(friend))
            if await r.hget(keys.member(friend), keys.field("referred_by")) == uid.encode():
                held.append(keys.member(friend))
        if referral.get("referrer"):  # their referrals hash, and their ledger's referral:<friend> entry
            held += [keys.referrals_made(referral["referrer"]), keys.ops(referral["referrer"])]
        nonce_token = (link or {}).get("link_token")
        if nonce_token and await r.get(keys.link_token(nonce_token)) == uid.encode():
            held.append(keys.link_token(nonce_token))
        audit = await self._audit_about(uid)
        if audit:
            held.append(keys.AUDIT)
        audit_ops = [_s(f) async for f, _ in r.hscan_iter(keys.AUDIT_OPS, match=f"*{uid}*")]
        note(keys.AUDIT_OPS, audit_ops)
        requests = [json.loads(v) for v in (await r.hgetall(keys.SHOPIFY_DATA_REQUESTS)).values() if uid.encode() in v]
        note(keys.SHOPIFY_DATA_REQUESTS, requests)
        pending_link = [json.loads(v) for v in (await r.hgetall(keys.LINKS_SETTLE)).values() if uid.encode() in v]
        note(keys.LINKS_SETTLE, pending_link)
        out: dict[str, Any] = {
            "user_id": uid, "exported_at": self.now_ms(),
            "member": record, "ledger": entries, "held_lots": hold, "orders": orders,
            "referral": referral or None, "referrals_made": made,
            "claims": claims, "stock_reservations": reservations, "rewards_claimed": claimed,
            "coupons": coupons, "coupons_used": used,
            "friend_coupon_codes": welcome_codes, "prompts": prompts, "schedules": schedules,
            "fingerprints": fingerprints, "unknown_codes_sent": guesses, "pre_follow": pre_follow or None,
            "indexes": indexes | {"coupon_tokens": coupon_index}, "boards": boards, "numbers": numbers,
            "shares": shares, "customer_link": link, "account_links_under_way": pending_link,
            "shopify_data_requests": requests, "audit": audit, "audit_operations": audit_ops,
        }
        for hook in self._export_hooks:
            extra = await hook(uid)
            held += extra.pop("keys", [])
            out |= extra
        out["keys"] = sorted(set(held))
        return out

    async def _record(self, uid: str) -> dict[str, str]:
        """The member record by long names, every month field included (read_member names only what it is told)."""
        longs = {v: k for k, v in keys.FIELDS.items()}
        prefixes = {v: k for k, v in keys.FIELD_PREFIXES.items()}
        record = {}
        for raw, value in (await self.redis.hgetall(keys.member(uid))).items():
            stored = _s(raw)
            if stored in longs:
                record[longs[stored]] = _s(value)
            elif stored[:2] in prefixes and stored[:1] == "#" and stored[1:2] != "#":
                record[prefixes[stored[:2]] + stored[2:]] = _s(value)
        return record

    async def _member_keys(self, uid: str, pattern: str) -> list[str]:
        """The member's keys matching `pattern` after their prefix (their claims: a shown claim keeps no other
        trace). A SCAN over the keyspace: only export and erasure, which are rare, ask."""
        prefix = f"{keys.PREFIX}:m:{{{uid}}}:"
        return sorted({_s(k) async for k in self.redis.scan_iter(match=prefix + pattern, count=1000)})

    def _share_days(self) -> list[str]:
        today = engine.shop_time(self.rules, self.now_ms())
        return [keys.shares_day((today - timedelta(days=back)).strftime("%Y-%m-%d")) for back in range(SHARES_DAYS)]

    async def _customer_link(self, uid: str, customer_id: str | None, note: Callable[[str, Any], Any]
                             ) -> dict[str, Any] | None:
        if not customer_id:
            return None
        r = self.redis
        record = _strs(await r.hgetall(keys.customer(customer_id)))
        if record.get("user") != uid:
            return {"customer_id": customer_id, "linked": False}
        note(keys.customer(customer_id), record)
        nonce = record.get("op")
        nonce_record = _strs(await r.hgetall(keys.link_nonce(nonce))) if nonce else {}
        note(keys.link_nonce(nonce or ""), nonce_record)
        kept = note(keys.customer_orders(customer_id),
                    {_s(k): json.loads(v) for k, v in (await r.hgetall(keys.customer_orders(customer_id))).items()})
        reported = note(keys.customer_order_ids(customer_id),
                        sorted(_s(o) for o in await r.smembers(keys.customer_order_ids(customer_id))))
        if await r.sismember(keys.SHOPIFY_CUSTOMERS, customer_id):
            note(keys.SHOPIFY_CUSTOMERS, True)
        return {"customer_id": customer_id, "linked": True, "linked_at": record.get("at"),
                "link_token": nonce_record.get("link_token"), "orders_reported": reported,
                "orders_kept_unlinked": kept}

    async def _audit_about(self, uid: str) -> list[dict[str, Any]]:
        """The audit entries that name the member (as the member acted on, or in any detail)."""
        found = []
        for entry_id, fields in await self.redis.xrange(keys.AUDIT):
            values = {_s(k): _s(v) for k, v in fields.items()}
            if any(uid in v for v in values.values()):
                found.append({"id": _s(entry_id), **values})
        return found

    # ---- erasure ------------------------------------------------------------------------------------------------
    async def erase(self, uid: str, by: str) -> Erasure | None:
        """Erase the member (see the module's docstring); None when there is nothing to erase (no member, or
        erased already). Any number of calls, and a crash anywhere, end in the same state."""
        resumed = await self.erasing(uid)
        if not resumed and not await self.members.exists(uid):
            return None
        plan = await self._plan(uid, by)
        forfeited = await self._steps(uid, plan)
        return Erasure(points_forfeited=forfeited, resumed=resumed)

    async def finish_all(self) -> int:
        """Finish every erasure a crash left half done (the worker's clock)."""
        pending = await self.redis.hgetall(keys.PRIVACY_ERASING)
        for uid, raw in pending.items():
            await self._steps(_s(uid), json.loads(raw))
        return len(pending)

    async def _plan(self, uid: str, by: str) -> dict[str, Any]:
        """The erasure's plan, written once before any step: its pseudonym and every index to clean, read while the
        member's keys are whole (the steps delete them, so a re-run reads the plan, never the keys)."""
        raw = await self.redis.hget(keys.PRIVACY_ERASING, uid)
        if raw is not None:
            return dict(json.loads(raw))
        r = self.redis
        record = await self._record(uid)
        coupons = {_s(k): json.loads(v) for k, v in (await r.hgetall(keys.coupons(uid))).items()}
        ops = ledger_codec.split_ops(await r.hgetall(keys.ops(uid))).op_of.values()
        claim_keys = await self._member_keys(uid, "claim:*")
        claims = {key.rsplit(":", 1)[1]: _s(await r.hget(key, "reward") or b"") for key in claim_keys}
        for op in ops:
            if op.startswith("claim:"):
                claims.setdefault(op.split(":", 1)[1], "")
        for c in coupons.values():
            claims[c.get("claim", "")] = c.get("reward", "")
        taken = _s(await r.hget(keys.friend_coupon_taken(FRIEND_COUPON_POOL, uid), "code") or b"")
        welcome = {c["code"] for c in coupons.values() if c.get("reward") == FRIEND_COUPON_POOL and c.get("code")}
        referral = _strs(await r.hgetall(keys.referral(uid)))
        plan: dict[str, Any] = {
            "pseudonym": "X" + secrets.token_hex(16), "by": by, "at": self.now_ms(),
            "code": record.get("code"), "member_token": record.get("member_token"),
            "birthday_month": int(record["birthday"][:2]) if record.get("birthday") else None,
            "customer_id": record.get("customer_id"),
            "coupon_tokens": sorted(coupons), "welcome_codes": sorted(welcome | ({taken} if taken else set())),
            "orders": sorted(_s(o) for o in await r.hkeys(keys.orders(uid))),
            "claims": {k: v for k, v in claims.items() if k},
            "friends": sorted(f for f in _strs(await r.hgetall(keys.referrals_made(uid))) if "|" not in f),
            "referrer": referral.get("referrer"),
            "months": sorted(m.split(":", 1)[1] for m in record if m.startswith("ranked:")),
            "extra_keys": claim_keys,
        }
        await r.hsetnx(keys.PRIVACY_ERASING, uid, json.dumps(plan))
        return dict(json.loads(await r.hget(keys.PRIVACY_ERASING, uid)))

    async def _steps(self, uid: str, plan: dict[str, Any]) -> int:
        r = self.redis
        pseudo = plan["pseudonym"]
        # 1. what is under way finishes first, with the person's id: a referral's other side, a link
        for friend in [uid, *plan["friends"]]:
            if await r.sismember(keys.SETTLE, friend):
                await self.referrals.settle(friend)
        # 2. the points are forfeited, then the ledger and the referral records move to the pseudonym
        forfeited = 0
        if await r.exists(keys.ops(uid)):
            _, avail, pend = await self._forfeit(keys=keys.ledger_keys(uid),
                                                 args=[json.dumps({"op": FORFEIT_OP, "at": plan["at"]})])
            if int(avail) + int(pend):
                await self.counters.count("points_forfeited", int(avail) + int(pend))
            await self._move_ledger(uid, pseudo, plan["at"])
        entry = await self.ledger.entry(pseudo, FORFEIT_OP)
        forfeited = -int(entry["delta"]) if entry else 0
        # (each copy only from what is there: a run beside this one may have moved it just now)
        ref = _strs(await r.hgetall(keys.referral(uid)))
        if ref:
            await self._copy(keys.referral(pseudo),
                             {k: v.replace(uid, pseudo) for k, v in ref.items() if k not in REFERRAL_DROPPED})
            await r.delete(keys.referral(uid))
        made = _strs(await r.hgetall(keys.referrals_made(uid)))
        if made:
            await self._copy(keys.referrals_made(pseudo), made)
            await r.delete(keys.referrals_made(uid))
        # 3. the other side of each referral names the pseudonym
        for friend in plan["friends"]:
            await self._swap(keys=[keys.referral(friend)], args=["referrer", uid, pseudo])
            await self._swap(keys=[keys.member(friend)], args=[keys.field("referred_by"), uid, pseudo])
            await self._rename(keys=[keys.ops(friend)], args=[uid, pseudo])
        if plan["referrer"]:
            referrer = plan["referrer"]
            await self._rename(keys=[keys.referrals_made(referrer)], args=[uid, pseudo])
            await self._rename(keys=[keys.ops(referrer)], args=[uid, pseudo])
        # 4. the numbers keep counting under the pseudonym
        await r.hset(keys.members(pseudo), pseudo, "")
        await r.hdel(keys.members(uid), uid)
        for board in [*(keys.leaderboard(m) for m in plan["months"]), keys.TOP_REFERRERS]:
            await self._rename_in_zset(board, uid, pseudo)
        cycle = await r.hget(keys.CYCLES, uid)
        if cycle is not None:
            await r.hsetnx(keys.CYCLES, pseudo, cycle)
            await r.hdel(keys.CYCLES, uid)
        # 5. every index that leads to the person goes
        await self._drop_indexes(uid, plan)
        await self._forget_customer(uid, plan.get("customer_id"))
        await self._rewrite_audit(uid, pseudo)
        for hook in self._erase_hooks:
            await hook(uid)
        # 6. the person's own keys, then the mark that they were erased, the audit entry and the plan's end
        await r.delete(keys.ops(uid), keys.hold_queue(uid), keys.orders(uid), keys.guesses(uid), keys.claimed(uid),
                       keys.coupons(uid), keys.coupon_order(uid), keys.coupons_used(uid), keys.fingerprints(uid),
                       keys.prompts(uid), keys.pre_follow(uid))  # one slot: the member's hash tag
        for key in [*plan["extra_keys"], *await self._member_keys(uid, "*")]:
            await r.delete(key)  # claims (shown ones too) and whatever else sits under their hash tag
        await r.hset(keys.PRIVACY_ERASED, await self.erased_hash(uid), plan["at"])
        if await self.members.audit(plan["by"], "member_erased", pseudo, op=f"erase:{pseudo}",
                                    points_forfeited=forfeited):
            await self.counters.count("members_erased")
        await r.hdel(keys.PRIVACY_ERASING, uid)
        log.info("member erased by %s: now %s (points forfeited: %d)", plan["by"], pseudo, forfeited)
        return forfeited

    async def _copy(self, key: str, mapping: dict[str, str]) -> None:
        """Write `mapping` as the whole of `key` (one key, one MULTI: a re-run writes the same again)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if mapping:
                pipe.hset(key, mapping=mapping)
            await pipe.execute()

    async def _move_ledger(self, uid: str, pseudo: str, at_ms: int) -> None:
        """The ledger under the pseudonym: entries without notes, op ids (ids of the shop's orders, events,
        claims: no person's) and the record's kept amounts; then the person's hash goes."""
        moved: dict[str, Any] = {}
        whole = await self.redis.hgetall(keys.ops(uid))
        if not whole:
            return  # moved meanwhile by a run beside this one (the clock's finish_all and a DELETE)
        for raw, value in whole.items():
            name = _s(raw)
            if name.isascii() and name.isdigit():
                moved[name] = _without_note(value)
            elif name in (ledger_codec.LAST_ID, ledger_codec.QUEUE) or name.startswith("##"):
                moved[name] = value
            elif name.startswith("#"):
                if _kept(name):
                    moved[name] = value
            else:  # an op id: another person's id in it (referral:<friend>) is theirs to erase, not ours
                moved[name] = value
        moved[keys.field("blocked")] = 1  # nobody to send anything to
        moved[keys.field("erased_at")] = at_ms
        await self._copy(keys.ops(pseudo), moved)
        await self.redis.delete(keys.ops(uid), keys.hold_queue(uid))

    async def _rename_in_zset(self, key: str, uid: str, pseudo: str) -> None:
        score = await self.redis.zscore(key, uid)
        if score is None:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {pseudo: score})
            pipe.zrem(key, uid)
            await pipe.execute()

    async def _drop_indexes(self, uid: str, plan: dict[str, Any]) -> None:
        r, me = self.redis, uid.encode()
        if plan["code"] and await r.hget(keys.codes(plan["code"]), plan["code"]) == me:
            await r.hdel(keys.codes(plan["code"]), plan["code"])
        if plan["member_token"] and await r.get(keys.member_token(plan["member_token"])) == me:
            await r.delete(keys.member_token(plan["member_token"]))
        for token in plan["coupon_tokens"]:
            if await r.get(keys.coupon(token)) == me:
                await r.delete(keys.coupon(token))
        for code in plan["welcome_codes"]:
            if await r.get(keys.friend_coupon_code(index_form(code))) == me:
                await r.delete(keys.friend_coupon_code(index_form(code)))
        await r.delete(keys.friend_coupon_taken(FRIEND_COUPON_POOL, uid))
        for order_id in plan["orders"]:  # kept as the erased's, so a repeat of it credits nobody
            await self._move_order(keys=[keys.order_owner(order_id)], args=[uid, ERASED_OWNER])
        for claim_id, reward_id in plan["claims"].items():
            if reward_id:
                await self._swap(keys=[keys.reward_reservation(reward_id, claim_id)], args=["member", uid, ""])
        for reward in self.rules.rewards:
            await r.srem(keys.reward_waiting(reward.id), uid)
        if plan["birthday_month"]:
            await r.srem(keys.birthdays(plan["birthday_month"]), uid)
        await r.zrem(keys.due(uid), uid)
        await r.zrem(keys.REMINDERS_DUE, uid)
        await r.zrem(keys.FRIEND_COUPONS_OWED, uid)
        await r.zrem(keys.BUDGET_HELD, uid)  # [budget]: a held completion of theirs no longer waits
        await r.hdel(keys.WARNED, uid)
        await r.srem(keys.SETTLE, uid)
        for key in self._share_days():
            mine = [m async for m in r.sscan_iter(key, match=f"{uid}|*")]
            if mine:
                await r.srem(key, *mine)
        for nonce, raw in (await r.hgetall(keys.LINKS_SETTLE)).items():
            if json.loads(raw).get("user") == uid:
                await r.hdel(keys.LINKS_SETTLE, nonce)
        for request_id, raw in (await r.hgetall(keys.SHOPIFY_DATA_REQUESTS)).items():
            if me in raw:
                await r.hdel(keys.SHOPIFY_DATA_REQUESTS, request_id)

    async def _forget_customer(self, uid: str, customer_id: str | None) -> None:
        """The customer link, both sides, and what we keep under the shop's customer id (their kept and reported
        orders, the link's nonce and token): the customer is the person's too."""
        if not customer_id:
            return
        r = self.redis
        record = _strs(await r.hgetall(keys.customer(customer_id)))
        if record.get("user") not in (uid, None, ""):
            return  # linked to someone else since: theirs, not ours to erase
        nonce = record.get("op")
        if nonce:
            token = await r.hget(keys.link_nonce(nonce), "link_token")
            if token:
                await r.delete(keys.link_token(_s(token)))
            await r.delete(keys.link_nonce(nonce))
        for order_id in await r.hkeys(keys.customer_orders(customer_id)):  # kept, never credited: dropped
            await self._move_order(keys=[keys.order_owner(_s(order_id))], args=[f"c:{customer_id}", ERASED_OWNER])
        await r.delete(keys.customer_orders(customer_id), keys.customer_order_ids(customer_id),
                       keys.customer(customer_id))  # one slot: the customer's hash tag
        await r.srem(keys.SHOPIFY_CUSTOMERS, customer_id)
        for request_id, raw in (await r.hgetall(keys.SHOPIFY_DATA_REQUESTS)).items():
            if json.loads(raw).get("customer_id") == customer_id:
                await r.hdel(keys.SHOPIFY_DATA_REQUESTS, request_id)

    async def _rewrite_audit(self, uid: str, pseudo: str) -> None:
        """The audit trail keeps what staff did, naming the pseudonym: an entry that names the person is written
        again (once, by its old id: audit_once) with the pseudonym in its place, then the old one goes."""
        for entry in await self._audit_about(uid):
            old = entry.pop("id")
            entry.pop("op", None)
            fields = [part for k, v in (entry | {"rewritten_from": old}).items()
                      for part in (k, v.replace(uid, pseudo))]
            await self._audit_once(keys=[keys.AUDIT, keys.AUDIT_OPS], args=[f"erase:{pseudo}:{old}", *fields])
            await self.redis.xdel(keys.AUDIT, old)
        await self._rename(keys=[keys.AUDIT_OPS], args=[uid, pseudo])


def _strs(raw: dict) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in raw.items()}
