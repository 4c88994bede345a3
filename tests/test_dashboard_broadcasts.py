"""The dashboard's Broadcasts page (bot/web/dashboard/broadcasts.py) and what it adds to the broadcast service:
named segments combined, the Flex cards a broadcast may carry, the estimate (count, LINE's quota, yen)."""
from __future__ import annotations

import asyncio
import time

import pytest

from bot.broadcasts import cards
from bot.broadcasts.service import BroadcastError, Broadcasts
from linesim.platform import new_user_id
from rewards import segments
from rewards.segments import SegmentError
from tests.support.harness import Bot, BotWith


async def seed(bot: Bot, n: int, *, english: int = 0) -> list[str]:
    """n members written through the domain, the first `english` of them in English; LINE's followers kept in step."""
    program = bot.services.program
    uids = [new_user_id() for _ in range(n)]
    at = int(time.time() * 1000)
    for start in range(0, n, 16):
        await asyncio.gather(*(program.see(uid, "follow", at, "en" if i < english else "ja")
                               for i, uid in enumerate(uids[start:start + 16], start)))
    bot.platform.followers.extend(uids)
    return uids


# ---- named segments, combined -------------------------------------------------------------------------
def test_picked_segments_combine_into_one_segment() -> None:
    assert segments.combine(["birthday"], "all") == {"birthday_this_month": True}
    assert segments.combine(["tier:gold", "language:en", "tier:gold"], "any") == {
        "any": [{"tier": ["gold"]}, {"language": ["en"]}]}
    assert segments.combine(["never_referred", "expiring"], "all") == {
        "all": [{"never_referred": True}, {"points_expiring_within_days": 14}]}
    for names, how in (([], "all"), (["bogus"], "all"), (["birthday"], "xor"), (["tier:"], "all")):
        with pytest.raises(SegmentError):
            segments.combine(names, how)


# ---- cards and the estimate, through the service ---------------------------------------------------------------
async def test_cards_are_valid_line_messages_and_the_estimate_prices_what_goes_past_the_quota(bot_with: BotWith
                                                                                              ) -> None:
    bot = await bot_with(run_worker=False)
    services = bot.services
    await seed(bot, 12, english=5)
    b = Broadcasts(services)
    offered = [key for key, _ in cards.choices(services, "ja")]
    assert offered[0] == "help" and "reward:coffee" in offered
    assert "reward:online500" not in offered  # a Shopify discount without a shop: the catalog hides it too
    for key in offered:
        for lang in ("ja", "en"):
            card = cards.message(services, key, lang)
            assert b.messages({"messages": [card]}) == [card]  # the SDK's models and LINE's limits
    with pytest.raises(cards.CardError):
        cards.message(services, "reward:online500", "ja")

    bot.platform.monthly_quota = 10
    body = {"messages": [{"type": "text", "text": "{name}、週末はポイント2倍！"}, cards.message(services, "help", "ja")]}
    answer = await b.estimate(body)
    assert answer["total"] == answer["messages"] == 12 and answer["message_objects"] == 2
    assert answer["quota"] == {"limit": 10, "used": 0}
    assert answer["over_quota"] == 2 and answer["yen"] == 2 * 3  # [broadcasts] extra_message_yen = 3
    assert [w["code"] for w in answer["warnings"]] == ["QUOTA_EXCEEDED"]
    assert answer["preview"][0]["messages"][0]["text"].endswith("、週末はポイント2倍！")  # {name} filled
    english = await b.estimate({**body, "segment": segments.combine(["language:en"], "all")})
    assert english["total"] == 5 and english["over_quota"] == 0 and english["yen"] == 0

    bot.platform.monthly_quota = None  # a plan without a limit
    assert (await b.estimate(body))["quota"] == {"limit": None, "used": 0}
    with pytest.raises(BroadcastError):
        await b.estimate({**body, "dry_run": True})
    with pytest.raises(BroadcastError):
        await b.estimate({**body, "scheduled_at": "yesterday"})
    assert not bot.platform.calls or all(c.endpoint not in ("push", "multicast") for c in bot.platform.calls)
