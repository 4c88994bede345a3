"""The referrer hears "your referral completed" whenever settle paid them — by an order or a staff approval,
also when a crash came between the decision and the payment — and exactly once."""
from __future__ import annotations

import pytest

from bot import notices
from linesim.platform import text_of
from rewards.referrals import Referrals
from tests.support.harness import Bot
from tests.test_admin_api_more import review_referral


def told_completed(bot: Bot, referrer: str, since: int = 0) -> int:
    marker = bot.services.texts.get("ja", "referral_completed_referrer", points=0, balance=0)[:6]
    return sum(marker in text_of([m]) for m in bot.platform.said_to(referrer, since))


async def test_an_approval_that_crashed_before_paying_still_tells_the_referrer_once(bot: Bot, monkeypatch) -> None:
    a, b = await review_referral(bot)
    mark = len(bot.platform.calls)
    real_settle = Referrals.settle
    crashed: list[str] = []

    async def settle_crashing_once(self: Referrals, friend: str) -> str | None:
        if not crashed:
            crashed.append(friend)
            raise RuntimeError("the process died after the decision step")
        return await real_settle(self, friend)

    monkeypatch.setattr(Referrals, "settle", settle_crashing_once)
    status, _ = await bot.admin("POST", f"/api/v1/referrals/{b}/approve")
    assert status == 500 and crashed == [b]
    status, again = await bot.admin("POST", f"/api/v1/referrals/{b}/approve")
    assert status == 200 and again["changed"] is False and again["status"] == "completed"
    assert await bot.admin("POST", f"/api/v1/referrals/{b}/approve") == (200, again)
    await bot.idle()
    assert told_completed(bot, a, mark) == 1
    assert not bot.platform.violations


async def test_an_unknown_notice_kind_is_a_value_error_even_under_python_o(bot: Bot) -> None:
    with pytest.raises(ValueError, match="unknown notice kind"):
        await notices.notify(bot.services, "no_such_kind", "U" + "0" * 32, "referral_completed_referrer", "key")
