"""The all-time top-referrers board copies each referrer's completed count, so settling a referral twice at
once (the sweep and the order, or a retry after a crash) moves it by one, and a void takes it back."""
from __future__ import annotations

import asyncio

import pytest

from rewards import keys
from rewards.program import Program
from rewards.referrals import Referrals
from tests.test_review_decisions import make  # noqa: F401  (the fixture)
from tests.test_rules_engine import refer


async def half_done(program: Program, clock, monkeypatch) -> tuple[str, str]:
    """The friend's order landed; the referrer's half did not (the process died before settle)."""
    referrer, friend = await refer(program, clock)
    real_settle = Referrals.settle

    async def no_settle(self: Referrals, friend: str) -> str | None:
        return None

    monkeypatch.setattr(Referrals, "settle", no_settle)
    await program.record_purchase("o1", friend, 2000)
    monkeypatch.setattr(Referrals, "settle", real_settle)
    return referrer, friend


@pytest.mark.parametrize("gift", [False, True])
async def test_settling_twice_at_once_moves_the_board_by_one(make, monkeypatch, gift: bool) -> None:  # noqa: F811
    program, clock = await make(referral__allow_gift="true")
    referrer, friend = await half_done(program, clock, monkeypatch)
    if gift:
        await program.redis.hset(keys.member(referrer), keys.field("gift"), "1")
    await asyncio.gather(program.settle(friend), program.settle(friend), program.settle_all())
    await program.settle(friend)
    assert await program.redis.zscore(keys.TOP_REFERRERS, referrer) == 1
    assert (await program.member(referrer)).referrals.completed == 1
    await program.refund("o1")
    assert await program.redis.zscore(keys.TOP_REFERRERS, referrer) is None
