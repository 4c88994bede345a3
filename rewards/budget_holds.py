"""Referral completions held for the budget (review_reason BUDGET, rewards/budget.py): released when a new month's
budget can pay them, or at once by an owner. A release is the review queue's approval (rewards/review.py): it
completes the referral, pays both sides once and is audited; released again, it changes nothing."""
from __future__ import annotations

import logging

from rewards import engine, keys
from rewards.budget import HOLD_REASON
from rewards.errors import ProgramError
from rewards.program import Program
from rewards.review import Decision, ReferralReview

log = logging.getLogger(__name__)

CLOCK = "budget"
# the held set's entry is written before the step that holds (its intent): younger than this, that step may still
# be under way, so an entry whose referral is not (yet) held is left alone
STALE_MS = 60_000  # the audit's "who" when a new month's budget releases a held completion


async def release(program: Program, by: str, friends: list[str] | None = None,
                  new_month_only: bool = False, reason: str = "budget release") -> list[Decision]:
    """Approve held completions (all of them, or `friends`), oldest first. `new_month_only` (the clock): only
    those held in an earlier month, and only while this month's budget can pay them (reserved first, as any
    completion); an owner (`by`) releases past the cap. A friend not held (any more) is skipped."""
    budget, review = program.budget, ReferralReview(program)
    month = budget.month()
    decided = []
    for friend, held_at in await budget.held():
        if friends is not None and friend not in friends:
            continue
        status, reason, referrer = await program.redis.hmget(keys.referral(friend),
                                                               ["status", "review_reason", "referrer"])
        if status != b"review" or reason != HOLD_REASON.encode() or not referrer:
            if program.now_ms() - held_at > STALE_MS:  # not a hold whose own step is still under way
                await budget.drop_held(friend)  # completed, voided or never held: nothing waits (a stale intent)
            continue
        if new_month_only and engine.shop_time(program.rules, held_at).strftime("%Y-%m") >= month:
            continue
        if new_month_only:
            terms = await program.referrals.experiments.referral_terms(friend)  # the arm it was attributed under
            spec = program.referrals.friend_award(program.now_ms(), "budget", terms.friend_points)
            if not await budget.reserve_referral(friend, referrer.decode(), int(spec["amount"]), program.now_ms(),
                                                 terms.referrer_points):
                break  # this month's budget is spent too: the rest wait, in order
        try:
            decided.append(await review.approve(friend, by, reason=reason))
        except ProgramError as exc:  # decided meanwhile (voided by staff): nothing to release
            log.info("held referral of %s not released: %s", friend, exc)
            await budget.drop_held(friend)
    return decided
