"""HTTP hygiene outside the webhook: Redis down answered 503 (JSON on the API, a kind page elsewhere) and logged
once, and a /healthz that tells strangers nothing."""
from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.infra.redis_conn import EmbeddedRedis
from bot.web.http import RedisOutage
from linesim.platform import Platform, new_user_id
from tests.support.harness import ADMIN, Bot, make_settings, start_bot

# ---- Redis down ----------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def fragile(platform: Platform) -> AsyncIterator[tuple[Bot, EmbeddedRedis]]:
    """A bot on a Redis of its own, which the test may stop."""
    with tempfile.TemporaryDirectory() as data:
        server = EmbeddedRedis(Path(data)).start()
        bot = await start_bot(make_settings(server.url, platform), platform, run_worker=False)
        try:
            yield bot, server
        finally:
            await bot.stop()
            server.stop()
    assert not platform.violations


async def test_redis_down_is_a_503_json_error_on_the_api_and_a_kind_page_elsewhere(
        fragile: tuple[Bot, EmbeddedRedis], caplog: pytest.LogCaptureFixture) -> None:
    bot, server = fragile
    code = await bot.services.program.invite_code(new_user_id())
    server.stop()
    with caplog.at_level(logging.INFO):
        for path in (f"/api/v1/members/{new_user_id()}", "/api/v1/stats"):
            async with bot.http.get(bot.url + path, headers={"Authorization": f"Bearer {ADMIN}"}) as r:
                assert r.status == 503 and r.headers["Retry-After"] == "5"
                body = await r.json()
                assert body["error"]["code"] == "UNAVAILABLE" and "try again" in body["error"]["message"]
        async with bot.http.post(bot.url + "/api/v1/conversions", headers={"Authorization": f"Bearer {ADMIN}"},
                                 json={"order_id": "o-1", "user_id": new_user_id(), "amount": 1000}) as r:
            assert r.status == 503 and (await r.json())["error"]["code"] == "UNAVAILABLE"
        pages = {}
        for language in ("ja", "en-US,en;q=0.9"):
            async with bot.http.get(f"{bot.url}/i/{code}", headers={"Accept-Language": language}) as r:
                assert r.status == 503 and r.content_type == "text/html" and r.headers["Retry-After"] == "5"
                assert r.headers["Cache-Control"] == "no-store"
                pages[language] = await r.text()
        assert "ただいま表示できません" in pages["ja"] and 'lang="ja"' in pages["ja"]
        assert "not available right now" in pages["en-US,en;q=0.9"] and 'lang="en"' in pages["en-US,en;q=0.9"]
        for path in (f"/qr/{code}.png", "/c/" + "y" * 22):
            async with bot.http.get(bot.url + path) as r:
                assert r.status == 503 and r.content_type == "text/html"
        async with bot.http.get(bot.url + "/healthz") as r:
            assert r.status == 503
    # one line for the whole outage, no traceback, nothing from aiohttp's "Error handling request"
    errors = [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert [rec.name for rec in errors] == ["bot.web.http"], [rec.getMessage() for rec in errors]
    assert errors[0].exc_info is None and "Redis does not answer" in errors[0].getMessage()


async def test_healthz_keeps_the_cause_in_the_log_not_in_the_body(
        fragile: tuple[Bot, EmbeddedRedis], caplog: pytest.LogCaptureFixture) -> None:
    bot, server = fragile
    server.stop()
    with caplog.at_level(logging.INFO):
        async with bot.http.get(bot.url + "/healthz") as r:
            assert r.status == 503
            text = await r.text()
    assert await_json(text) == {"status": "unavailable"}
    assert str(server.port) not in text and "127.0.0.1" not in text
    (line,) = [rec.getMessage() for rec in caplog.records if rec.name == "bot.web.http"]
    assert str(server.port) in line  # the operator still learns which Redis and why
    restarted = EmbeddedRedis(server.data_dir, port=server.port).start()  # the same data, the same port
    try:
        with caplog.at_level(logging.INFO):
            async with bot.http.get(bot.url + "/healthz") as r:
                assert r.status == 200 and (await r.json())["status"] == "ok"
        assert any("Redis answers again" in rec.getMessage() for rec in caplog.records)
    finally:
        restarted.stop()


def await_json(text: str) -> object:
    import json
    return json.loads(text)


def test_an_outage_is_reported_once_then_at_most_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    outage = RedisOutage(every=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="bot.web.http"):
        for second in range(0, 130, 2):  # a request every 2 s for 130 s
            now[0] = float(second)
            outage.failed("GET /i/X", ConnectionError("refused"))
        outage.answered()
        outage.answered()  # nothing more to say
    lines = [rec.getMessage() for rec in caplog.records]
    assert len(lines) == 4, lines
    assert lines[0].startswith("Redis does not answer (ConnectionError: refused")
    assert "30 requests answered 503 in the last 60 s" in lines[1] and "30 requests" in lines[2]
    assert lines[3] == "Redis answers again (4 requests answered 503 since the last report)"
