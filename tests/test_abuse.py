"""Abuse at the HTTP door: slowloris-style trickled bodies and oversized bodies, on the webhook and the admin API.

(Code guessing, block-and-refollow farming and coupon replay are in test_referrals / test_catalog; the admin
API without a token in test_admin_api and test_fuzz. docs/security.md lists them all.)
"""
from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import pytest_asyncio

from bot.infra import keys
from linesim.platform import new_user_id
from rewards import keys as rkeys
from tests.support.harness import ADMIN, Bot, BotWith

BODY_SECONDS = 0.5


@pytest_asyncio.fixture
async def quick_bot(bot_with: BotWith) -> Bot:
    return await bot_with(body_read_seconds=BODY_SECONDS)


async def trickle(bot: Bot, path: str, headers: dict[str, str], body: bytes, every: float) -> tuple[int, float]:
    """Send the headers, then the body a byte at a time; (status the server answered, seconds it took)."""
    url = urlsplit(bot.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    started = time.monotonic()
    head = f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer.write(head.encode())
    await writer.drain()
    status_line = b""
    try:
        for byte in body:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                status_line = await asyncio.wait_for(reader.readline(), every)
                break  # the server answered before the body was complete
            except asyncio.TimeoutError:
                continue
        if not status_line:
            status_line = await asyncio.wait_for(reader.readline(), 10)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return int(status_line.split()[1]), time.monotonic() - started


async def test_a_trickled_webhook_body_is_cut_off_without_blocking_anyone(quick_bot: Bot) -> None:
    platform = quick_bot.platform
    uid = new_user_id()
    body = platform.payload(platform.follow(uid))
    from linesim.platform import sign
    from tests.support.harness import SECRET

    slow = asyncio.create_task(trickle(quick_bot, "/callback", {"X-Line-Signature": sign(body, SECRET),
                                                               "Content-Type": "application/json"}, body, 0.1))
    # while that connection trickles, everyone else is served as usual
    other = new_user_id()
    for _ in range(3):
        async with quick_bot.http.get(quick_bot.url + "/healthz") as r:
            assert r.status == 200
        assert await platform.send(platform.follow(other)) == 200
        await asyncio.sleep(0.1)
    status, took = await slow
    assert status == 408
    assert took < BODY_SECONDS + 3
    # the cut-off event was never queued
    await quick_bot.idle()
    seen = [k async for k in quick_bot.services.redis.scan_iter(match=f"{rkeys.PREFIX}:events:*:seen:*")]
    assert len(seen) == 3  # only the other customer's three follows
    assert not await quick_bot.services.redis.exists(rkeys.member(uid))
    assert sum([await quick_bot.services.redis.xlen(keys.stream(p)) for p in range(4)]) == 0


async def test_a_trickled_admin_body_is_cut_off_and_changes_nothing(quick_bot: Bot) -> None:
    uid = new_user_id()
    body = b'{"order_id": "o-1", "user_id": "%s", "amount": 1000}' % uid.encode()
    status, _ = await trickle(quick_bot, "/api/v1/conversions", {"Authorization": f"Bearer {ADMIN}",
                                                                  "Content-Type": "application/json"}, body, 0.1)
    assert status == 408
    assert not await quick_bot.services.redis.exists(rkeys.order_owner("o-1"))
    assert not await quick_bot.services.redis.exists(rkeys.member(uid))


async def test_an_oversized_admin_body_is_413_and_changes_nothing(bot: Bot) -> None:
    uid = new_user_id()
    status, answer = await bot.admin("POST", "/api/v1/conversions",
                                     {"order_id": "o-2", "user_id": uid, "amount": 1, "pad": "x" * (1024 * 1024)})
    assert status == 413 and answer["error"]["code"] == "BODY_TOO_LARGE"  # type: ignore[index]
    assert not await bot.services.redis.exists(rkeys.order_owner("o-2"))
