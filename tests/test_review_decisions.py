"""Staff decisions on reviewed referrals, through Program.decide_referral: held points are released on time,
refusals carry a stable code, and the referrer paid just now is named (so they are told once)."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from rewards.errors import ProgramError
from rewards.program import Program
from rewards.review import ReferralReview
from tests.support.harness import Bot, converse
from tests.support.rules_helpers import Clock, program_for, variant
from tests.test_admin_api_more import review_referral
from tests.test_rules_engine import new_member, points, refer

JST = ZoneInfo("Asia/Tokyo")


@pytest_asyncio.fixture
async def make(clean_redis: str, tmp_path: Path) -> AsyncIterator[Callable]:
    made: list[Program] = []

    async def factory(**settings: object) -> tuple[Program, Clock]:
        clock = Clock(datetime(2026, 11, 20, 12, tzinfo=JST).timestamp())
        program = await program_for(clean_redis, variant(tmp_path, "", **settings), clock)
        made.append(program)
        return program, clock

    yield factory
    for program in made:
        await program.redis.aclose()


async def in_review(program: Program, clock: Clock) -> tuple[str, str]:
    referrer, friend = await refer(program, clock)
    await program.record_purchase("own", referrer, 1000, fingerprint="fp-1")
    purchase = await program.record_purchase("first", friend, 2000, fingerprint="fp-1")
    assert purchase.answer["referral"]["status"] == "review"
    return referrer, friend


async def test_an_approved_referral_releases_the_friends_held_points_when_the_hold_ends(make) -> None:
    program, clock = await make(referral__hold_days=14)
    referrer, friend = await in_review(program, clock)
    clock.advance(days=15)  # staff decide after the time the order alone would have released it
    await program.maintain_due()
    decision = await ReferralReview(program).approve(friend, "staff")
    assert decision.changed and decision.status == "completed" and decision.paid_referrer == referrer
    assert (await points(program, friend))[1] == 300  # held
    clock.advance(days=14, hours=1)
    await program.maintain_due()
    assert (await points(program, friend))[1] == 0, "the friend's held points were not released on time"
    assert (await points(program, referrer))[1] == 0


async def test_approving_again_pays_nobody_again(make) -> None:
    program, clock = await make()
    referrer, friend = await in_review(program, clock)
    first = await ReferralReview(program).approve(friend, "staff")
    again = await ReferralReview(program).approve(friend, "staff")
    assert first.paid_referrer == referrer
    assert not again.changed and again.paid_referrer is None
    assert (await points(program, referrer))[0] == 10 + 500


@pytest.mark.parametrize(("decision", "code"), [("approve", "UNKNOWN_REFERRAL"), ("void", "UNKNOWN_REFERRAL")])
async def test_a_member_never_referred_is_refused_with_a_code(make, decision: str, code: str) -> None:
    program, clock = await make()
    stranger = await new_member(program, clock)
    with pytest.raises(ProgramError) as refused:
        await program.decide_referral(stranger, decision, "staff")
    assert refused.value.code == code


async def test_a_completed_referral_cannot_be_approved(make) -> None:
    program, clock = await make()
    _, friend = await in_review(program, clock)
    await program.decide_referral(friend, "approve", "staff")
    with pytest.raises(ProgramError) as refused:
        await program.decide_referral(friend, "void", "staff")
    assert refused.value.code == "NOT_VOIDABLE"


async def test_a_reviewed_referral_counts_as_pending_everywhere_and_says_review(make) -> None:
    program, clock = await make()
    referrer, _ = await in_review(program, clock)
    status = await program.referral_status(referrer)
    assert [f.needs for f in status.friends] == ["REVIEW"] and [f.status for f in status.friends] == ["review"]
    assert (status.referrals.invited, status.referrals.pending, status.referrals.completed) == (1, 1, 0)
    assert (await program.member(referrer)).referrals == status.referrals
    [facts] = await program.member_facts([referrer])
    assert (facts.referrals_invited, facts.referrals_pending, facts.referrals_completed) == (1, 1, 0)


async def test_the_status_card_shows_a_referral_in_review(bot: Bot) -> None:
    a, _ = await review_referral(bot)
    card = json.dumps(await converse(bot.platform, a, bot.platform.text(a, "紹介状況")), ensure_ascii=False)
    assert bot.services.texts.get("ja", "flex_refs_state_REVIEW") in card
    assert bot.services.texts.get("ja", "flex_refs_state_FIRST_PURCHASE") not in card
    assert not bot.platform.violations
