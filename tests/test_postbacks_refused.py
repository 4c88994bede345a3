"""Tampered postback data is refused and counted (shokai_postbacks_refused), once per event."""
from __future__ import annotations

from handlers.rewards_catalog import RewardsPage
from linesim.platform import new_user_id
from tests.support.harness import Bot, converse, pack
from tests.test_webhook_hygiene import metric


async def test_a_tampered_postback_is_counted_once(bot: Bot) -> None:
    platform = bot.platform
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid))
    before = await metric(bot, "shokai_postbacks_refused_total") or 0
    await converse(platform, uid, platform.postback(uid, pack(RewardsPage(0))))  # genuine: not counted
    body, mac = pack(RewardsPage(1)).rsplit("|", 1)
    await converse(platform, uid, platform.postback(uid, body + "|" + ("A" if mac[0] != "A" else "B") + mac[1:]))
    await bot.idle()
    assert await metric(bot, "shokai_postbacks_refused_total") == before + 1
    assert not platform.violations
