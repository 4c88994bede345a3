"""FORWARD_WEBHOOK_URLS: every verified LINE webhook body goes on to the shop's other LINE tool unchanged — the
exact bytes, LINE's own X-Line-Signature and Content-Type — LINE's empty `events` check included, stored before
the 200 and sent by the worker's delivery sender; a target that refuses or never answers never holds up the
intake. The receivers re-verify LINE's signature with the channel secret, as the other tool would."""
from __future__ import annotations

import json
from typing import Any

import pytest
from linebot.v3.webhook import SignatureValidator

from bot.app import SENDER
from bot.config import ConfigError, Settings
from bot.deliveries import keys
from bot.deliveries.engine import FIRST_RETRY_MS, FORWARD_OWNER
from linesim.platform import BOT_USER_ID, Platform, new_user_id, sign
from tests.support.harness import SECRET, Bot, BotWith, converse
from tests.support.receivers import closed_port_url, receiver
from tests.test_round_trips import round_trips_metric


async def forwarded(bot: Bot) -> list[dict[str, Any]]:
    return await bot.services.deliveries.listing(FORWARD_OWNER)


async def test_the_body_and_signature_reach_every_target_byte_for_byte(bot_with: BotWith,
                                                                       platform: Platform) -> None:
    async with receiver() as tool, receiver(500) as other:
        bot = await bot_with(forward_webhook_urls=(tool.url, other.url), delivery_poll_seconds=3600)
        uid = new_user_id()
        event = platform.text(uid, "ヘルプ")
        # LINE's own spacing and escapes: any re-serialisation would change the bytes and break the signature
        raw = ('{"destination": "' + BOT_USER_ID + '",\n  "events":[' + json.dumps(event) + "]}").encode()
        signature = sign(raw, SECRET)
        assert await platform.send_raw(raw, signature, {"Content-Type": "application/json; charset=utf-8"}) == 200
        await platform.wait_for(lambda: platform.said_to(uid))  # handled as always
        assert await bot.app[SENDER].tick() == 2
        for got in (tool.got, other.got):
            [one] = got
            assert one.body == raw
            assert one.headers["X-Line-Signature"] == signature
            assert one.headers["Content-Type"] == "application/json; charset=utf-8"
            assert SignatureValidator(SECRET).validate(one.body.decode(), one.headers["X-Line-Signature"])
        # the one that answered 500 is retried with the same bytes; the other is done
        by_url = {d["url"]: d for d in await forwarded(bot)}
        assert by_url[tool.url]["status"] == "delivered" and by_url[other.url]["status"] == "retrying"
        bot.services.program.clock = lambda: by_url[other.url]["next_attempt_at"] + FIRST_RETRY_MS / 1000
        assert await bot.app[SENDER].tick() == 1
        assert other.got[1].body == raw and other.got[1].headers["X-Line-Signature"] == signature
        assert len(tool.got) == 1
        async with bot.http.get(bot.url + "/metrics") as r:
            scraped = await r.text()
        assert 'shokai_delivery_attempts_total{kind="forward",outcome="delivered"} 2.0' in scraped
        assert 'shokai_delivery_attempts_total{kind="forward",outcome="retry"} 1.0' in scraped


async def test_line_s_empty_events_check_is_forwarded_too(bot_with: BotWith, platform: Platform) -> None:
    async with receiver() as tool:
        bot = await bot_with(forward_webhook_urls=(tool.url,), delivery_poll_seconds=3600)
        check = platform.payload()
        assert json.loads(check)["events"] == []
        assert await platform.send_raw(check) == 200
        assert await bot.app[SENDER].tick() == 1
        [got] = tool.got
        assert got.body == check and got.headers["X-Line-Signature"] == sign(check, SECRET)
        # pressed twice: the other tool's check gets both
        assert await platform.send_raw(check) == 200
        assert await bot.app[SENDER].tick() == 1 and len(tool.got) == 2


async def test_a_bad_signature_is_neither_queued_nor_forwarded(bot_with: BotWith, platform: Platform) -> None:
    async with receiver() as tool:
        bot = await bot_with(forward_webhook_urls=(tool.url,), delivery_poll_seconds=3600)
        body = platform.payload(platform.text(new_user_id(), "hi"))
        assert await platform.send_raw(body, sign(body, "another-secret")) == 400
        assert await bot.app[SENDER].tick() == 0 and tool.got == []
        assert await forwarded(bot) == []


@pytest.mark.parametrize("target", ["refused", "hangs"])
async def test_an_unreachable_target_never_blocks_the_intake(bot_with: BotWith, platform: Platform,
                                                             target: str) -> None:
    """The background sender runs as in production (every second); the events are handled and the webhooks
    answered while the target refuses every connection or never answers."""
    async with receiver(*["hang"] * 10) as hanging:
        url = closed_port_url() if target == "refused" else hanging.url
        bot = await bot_with(forward_webhook_urls=(url,))
        for _ in range(3):
            uid = new_user_id()
            said = await converse(platform, uid, platform.follow(uid), timeout=5)
            assert said, "the follow was handled and answered"
        # the webhooks were answered at once: each one's answer is in the intake's histogram, none slow
        listed = await forwarded(bot)
        assert len(listed) == 3 and all(d["status"] in ("pending", "retrying") for d in listed)
        if target == "refused":
            await platform.wait_for(lambda: False, 1.5)  # the sender's next second: its attempts fail fast
            listed = await forwarded(bot)
            assert any(d["attempts"] and d["attempts"][0]["error"] for d in listed), listed


async def test_forwarding_costs_one_round_trip_per_webhook_beside_the_intake(bot_with: BotWith,
                                                                            platform: Platform) -> None:
    """With the worker off the count is exact: the intake's call, the scrape's own read; forwarding adds its
    store (sent side by side with the intake's call, so the 200 waits for the slower of the two, not both)."""
    async def per_webhook(bot: Bot) -> float:
        warm = new_user_id()
        assert await platform.send(platform.follow(warm)) == 200  # loads the scripts (NOSCRIPT retries)
        before = await round_trips_metric(bot)
        assert await platform.send(platform.text(warm, "ヘルプ")) == 200
        return await round_trips_metric(bot) - before

    off = await bot_with(run_worker=False)
    assert await per_webhook(off) == 2
    await off.stop()
    on = await bot_with(run_worker=False, forward_webhook_urls=("https://tool.example/line",))
    assert await per_webhook(on) == 3
    assert await on.services.redis.zcard(keys.DUE) == 2  # the warm-up's body and this one, kept for the worker


def test_forward_webhook_urls_are_checked_at_start_up() -> None:
    base = {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "PUBLIC_BASE_URL": "https://x.example"}
    settings = Settings.from_env({**base, "FORWARD_WEBHOOK_URLS": " https://lstep.example/hook , http://127.0.0.1:9/x"})
    assert settings.forward_webhook_urls == ("https://lstep.example/hook", "http://127.0.0.1:9/x")
    assert Settings.from_env(base).forward_webhook_urls == ()
    for bad in ("http://lstep.example/hook", "https://a.example/x,", "lstep.example", "https://u:p@a.example/",
                "https://x.example/callback"):
        with pytest.raises(ConfigError, match="FORWARD_WEBHOOK_URLS"):
            Settings.from_env({**base, "FORWARD_WEBHOOK_URLS": bad})


async def test_a_crash_after_the_200_loses_nothing(bot_with: BotWith, platform: Platform) -> None:
    """The body was stored before the 200: a bot stopped before sending anything, and a new one started on the
    same Redis, sends it."""
    async with receiver() as tool:
        first = await bot_with(forward_webhook_urls=(tool.url,), delivery_poll_seconds=3600)
        body = platform.payload(platform.text(new_user_id(), "hi"))
        assert await platform.send_raw(body) == 200
        await first.stop()
        second = await bot_with(forward_webhook_urls=(tool.url,), delivery_poll_seconds=3600)
        await second.app[SENDER].tick()
        assert [g.body for g in tool.got] == [body]
