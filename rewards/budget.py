"""Monthly budgets in yen ([budget] in the rules): what referral rewards (and campaigns' extra points) may cost
the shop in a shop-time month, checked atomically so concurrent completions never overshoot the cap.

Why a reservation and not a counter in the completion's script: a completion runs as one Lua script over the
friend's keys (their hash tag, one cluster slot); a budget shared by every member lives in another slot, and
a cluster refuses a script over keys of two slots. So a completion is two single-slot steps keyed by one op
id, `referral:<digest of the friend's id>` (referral_op):

1. reserve (budget_reserve.lua, slot {budget}): the worst the completion may pay — the friend's reward, the
   referrer's, and the largest milestone within the referrer's reach — is added to the month's `spent`
   only if it still fits under the cap, in one step. Concurrent reservations are serialised by Redis, so
   their sum never passes the cap. One that does not fit is refused: the completion is HELD (status
   "review", review_reason BUDGET, the review queue) and the friend goes into the held set.
2. the completion's own step in the friend's slot (purchase.lua, attribute.lua, review_decide.lua), told
   whether to complete or to hold.
3. settle (budget_settle.lua): once the referrer's side is paid (Referrals.settle), the reservation becomes
   what the ledger says was paid (the unreached milestone's share goes back); a step that did not complete
   gives the reservation back.

Each step is idempotent by the op id, so a retry or a crash between them never counts twice. A crash after 1
and before 3 leaves the yen reserved: the budget can only undershoot, never overshoot. An owner's release
(POST /api/v1/budget/release, or approving the held referral) pays past the cap on purpose and is counted.
A voided referral does not give its yen back: the month's spend is what was paid out.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rewards import engine, keys, ledger_codec
from rewards.ledger import Ledger
from rewards.part import Part
from rewards.rules import Rules

REFERRAL = "referral"
CAMPAIGN = "campaign"
KINDS = (REFERRAL, CAMPAIGN)
ALERTS = (80, 100)  # percent of the cap at which staff are told, once each a month
HOLD_REASON = "BUDGET"  # the referral's review_reason while its completion waits for the budget


def referral_op(friend: str) -> str:
    """The budget's op id of a friend's completion: a digest of the user id, not the id, so the month's hash holds no
    one's LINE id (a member's erasure leaves nothing of theirs in it); stable, so every step is keyed alike."""
    return "referral:" + hashlib.sha256(friend.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class BudgetStatus:
    kind: str  # referral | campaign
    month: str  # YYYY-MM, shop time
    spent_yen: int  # paid this month, and reserved by completions under way
    cap_yen: int  # 0: no cap
    share: float | None  # spent ÷ cap (None without a cap)
    # none (no cap) | ok | warning (≥ 80%) | reached (spent, or a completion at today's offer no longer fits, or
    # the budget already held something this month)
    state: str
    held: int  # referral completions held for the budget (all months)

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "month": self.month, "spent_yen": self.spent_yen, "cap_yen": self.cap_yen,
                "share": self.share, "state": self.state, "held": self.held}


class Budget(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int], *, ledger: Ledger):
        super().__init__(redis, rules, now_ms)
        self.ledger = ledger
        self._reserve = self.script("budget_reserve")
        self._settle = self.script("budget_settle")

    def cap(self, kind: str = REFERRAL) -> int:
        b = self.rules.budget
        return b.referral_monthly_yen if kind == REFERRAL else b.campaign_monthly_yen

    def month(self, at_ms: int | None = None) -> str:
        return engine.shop_time(self.rules, self.now_ms() if at_ms is None else at_ms).strftime("%Y-%m")

    def _offer_yen(self, at_ms: int) -> int:
        """What one completion pays at today's offer (both sides, campaigns included), in yen."""
        referrer = engine.award(self.rules, "referral.referrer", self.rules.referrer_points, at_ms, "", "").amount
        friend = engine.award(self.rules, "referral.friend", self.rules.friend_points, at_ms, "", "").amount
        return self.rules.yen(referrer + friend)

    async def status(self, kind: str = REFERRAL) -> BudgetStatus:
        """The month's spend against the cap: what the dashboard, the stats and the offer texts read."""
        now, cap = self.now_ms(), self.cap(kind)
        month = self.month(now)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.budget_month(kind, month), ["spent", "full"])
            pipe.zcard(keys.BUDGET_HELD)
            (spent_raw, full), held = await pipe.execute()
        spent = int(spent_raw or 0)
        held = int(held) if kind == REFERRAL else 0
        if not cap:
            return BudgetStatus(kind, month, spent, 0, None, "none", held)
        next_one = self._offer_yen(now) if kind == REFERRAL else 0
        if spent >= cap or spent + next_one > cap or full is not None:
            state = "reached"
        elif spent * 100 >= cap * ALERTS[0]:
            state = "warning"
        else:
            state = "ok"
        return BudgetStatus(kind, month, spent, cap, round(spent / cap, 4), state, held)

    async def referral_paused(self) -> bool:
        """True from the moment the referral budget is reached: the invite card and page say rewards wait."""
        return bool(self.cap(REFERRAL)) and (await self.status(REFERRAL)).state == "reached"

    # ---- referral completions ------------------------------------------------------------------------------
    async def worst_referral_points(self, referrer: str, friend_points: int, at_ms: int,
                                    referrer_base: int | None = None) -> int:
        """The most one completion may pay: the friend's points, the referrer's (given to the friend with a gift:
        the same amount) and the largest milestone bonus it could reach. The referrer's count can only climb
        by the referrals of theirs still open (this one among them), so that is the reach: a referrer with one
        friend pending reserves just the next milestone, one with several pending reserves the largest within
        reach (concurrent completions each reserve it; the unreached part goes back at settle)."""
        base = self.rules.referrer_points if referrer_base is None else referrer_base  # an experiment's arm
        referrer_points = engine.award(self.rules, "referral.referrer", base, at_ms, "", "").amount
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.member(referrer), keys.field("referrals_completed"))
            pipe.hgetall(keys.referrals_made(referrer))
            done_raw, made = await pipe.execute()
        done = int(done_raw or 0)
        open_ = sum(1 for friend, status in made.items() if b"|" not in friend and status == b"pending")
        reach = done + max(1, open_)
        milestone = max((m.points for m in self.rules.milestones if done < m.count <= reach), default=0)
        return friend_points + referrer_points + milestone

    async def reserve_referral(self, friend: str, referrer: str, friend_points: int, at_ms: int,
                               referrer_base: int | None = None, force: bool = False) -> bool:
        """Reserve the completion's worst cost in its month (step 1 above). False: over the cap, and the friend
        is now in the held set (the intent of the hold the caller writes next). Always True without a cap."""
        cap = self.cap(REFERRAL)
        if not cap:
            return True
        yen = self.rules.yen(await self.worst_referral_points(referrer, friend_points, at_ms, referrer_base))
        ok, _ = await self._reserve(keys=[keys.budget_month(REFERRAL, self.month(at_ms)), keys.BUDGET_HELD],
                                    args=[referral_op(friend), yen, cap, int(force), friend, self.now_ms()])
        return bool(int(ok))

    async def settle_referral(self, friend: str, referrer: str, at_ms: int, completed: bool) -> None:
        """Step 3: the reservation becomes what the ledger shows was paid for this completion (both sides and a
        milestone it reached), or goes back when it did not complete; the friend leaves the held set either way.
        Read from the ledger, so a re-run after a crash counts the same yen."""
        if not self.cap(REFERRAL):
            return
        paid = ""
        if completed:
            paid = str(self.rules.yen(await self._paid_points(friend, referrer)))
        await self._settle(keys=[keys.budget_month(REFERRAL, self.month(at_ms)), keys.BUDGET_HELD],
                           args=[referral_op(friend), paid, friend])

    async def _paid_points(self, friend: str, referrer: str) -> int:
        """The points the ledgers show this completion paid: the friend's reward (and a gift), the referrer's,
        and the milestone it reached. Two pipelined round trips: the entries' ids, then the entries."""
        ops = [(friend, "referral:friend"), (friend, "referral:gift"), (referrer, f"referral:{friend}")]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.referrals_made(referrer), f"{friend}|milestone")
            for uid, op in ops:
                pipe.hget(keys.ops(uid), ledger_codec.op_field(op))
            milestone, *ids = await pipe.execute()
        found = [(uid, op, int(i)) for (uid, op), i in zip(ops, ids, strict=True) if i is not None]
        if milestone:  # the milestone's op on the referrer: one more look-up, only when one was reached
            milestone_id = await self.redis.hget(keys.ops(referrer), ledger_codec.op_field(milestone.decode()))
            if milestone_id is not None:
                found.append((referrer, milestone.decode(), int(milestone_id)))
        if not found:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid, _, entry_id in found:
                pipe.hget(keys.ops(uid), ledger_codec.entry_field(entry_id))
            raws = await pipe.execute()
        entries = [ledger_codec.decode(entry_id, raw, op) for (_, op, entry_id), raw in zip(found, raws, strict=True)]
        return sum(max(0, int(e.get("delta", 0))) for e in entries if e)

    async def held(self) -> list[tuple[str, int]]:
        """Friends whose completion waits for the budget, oldest first: (friend, held at ms)."""
        return [(f.decode(), int(at)) for f, at in await self.redis.zrange(keys.BUDGET_HELD, 0, -1, withscores=True)]

    async def is_held(self, friend: str) -> bool:
        """The friend's referral completion waits for the budget (held, BUDGET)."""
        return await self.redis.zscore(keys.BUDGET_HELD, friend) is not None

    async def drop_held(self, friend: str) -> None:
        """The friend's completion is no longer waiting (it completed, or was voided, or never was held)."""
        await self.redis.zrem(keys.BUDGET_HELD, friend)

    # ---- campaigns ---------------------------------------------------------------------------------------------
    async def reserve_campaign(self, order_id: str, extra_points: int, at_ms: int) -> bool:
        """Reserve the yen a campaign adds to an order's points; False: over the campaign cap (earn without it)."""
        cap = self.cap(CAMPAIGN)
        if not cap or extra_points <= 0:
            return True
        ok, _ = await self._reserve(keys=[keys.budget_month(CAMPAIGN, self.month(at_ms)), keys.BUDGET_HELD],
                                    args=[f"campaign:{order_id}", self.rules.yen(extra_points), cap, 0, "",
                                          self.now_ms()])
        return bool(int(ok))

    async def settle_campaign(self, order_id: str, extra_points: int, at_ms: int) -> None:
        if self.cap(CAMPAIGN) and extra_points > 0:
            await self._settle(keys=[keys.budget_month(CAMPAIGN, self.month(at_ms)), keys.BUDGET_HELD],
                               args=[f"campaign:{order_id}", str(self.rules.yen(extra_points)), ""])

    # ---- staff alerts ------------------------------------------------------------------------------------------
    async def alerts_due(self, kind: str = REFERRAL) -> list[tuple[int, BudgetStatus]]:
        """The thresholds (80, 100) this month's spend has crossed that staff were not told of yet, each marked
        told here (HSETNX): so each goes out once a month, whichever process sees it first."""
        if not self.cap(kind):
            return []
        status = await self.status(kind)
        crossed = [p for p in ALERTS if (status.state == "reached" if p == 100
                                        else status.spent_yen * 100 >= status.cap_yen * p)]
        due = []
        for percent in crossed:
            if await self.redis.hsetnx(keys.budget_month(kind, status.month), f"alert:{percent}", self.now_ms()):
                due.append((percent, status))
        return due
