"""The member card's dates are in the rules' time zone, not a fixed JST."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from linesim.platform import Platform, new_user_id
from tests.support.harness import converse, make_settings, start_bot
from tests.support.rules_helpers import variant

SAMOA = ZoneInfo("Pacific/Pago_Pago")  # UTC-11: its date differs from Tokyo's for 20 hours of each day
TOKYO = ZoneInfo("Asia/Tokyo")


async def test_the_history_dates_follow_the_rules_time_zone(clean_redis: str, platform: Platform,
                                                             tmp_path: Path) -> None:
    rules = variant(tmp_path, program__timezone='"Pacific/Pago_Pago"')
    bot = await start_bot(make_settings(clean_redis, platform, rewards_config=rules), platform)
    try:
        uid = new_user_id()
        await converse(platform, uid, platform.follow(uid))
        card = json.dumps(await converse(platform, uid, platform.text(uid, "ポイント")), ensure_ascii=False)
        [entry] = await bot.services.program.recent_ledger(uid, 5)
        kind = bot.services.texts.get("ja", f"kind_{entry.kind}")
        at = datetime.fromtimestamp(entry.at_ms / 1000, SAMOA)
        assert f"{at:%m/%d} {kind}" in card
        tokyo = at.astimezone(TOKYO)
        if tokyo.date() != at.date():
            assert f"{tokyo:%m/%d} {kind}" not in card
    finally:
        await bot.http.close()
        await bot.runner.cleanup()
    assert platform.violations == []
