"""Fuzzing every door from outside: the webhook, the pages, the admin API and postback data.

For every input: no 5xx, no error logged (aiohttp logs an unhandled exception at ERROR), and an input the
bot refuses (4xx) leaves Redis exactly as it was (a digest of every key's DUMP before and after). The bot
runs in a thread of its own with its event loop and no worker, so nothing in the background writes to
Redis while a digest is taken; valid events are then run through the worker's `handle` by hand.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import Coroutine, Iterator
from typing import Any
from urllib.parse import quote

import pytest
import redis as sync_redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.infra.metrics import Metrics
from bot.intake.worker import Worker
from handlers import build_router
from handlers.gift import GiftChoice  # noqa: F401  (imported so its postback class is registered)
from linesim.platform import Platform, new_user_id, sign
from tests.support.harness import ADMIN, BASIC_ID, SECRET, TOKEN, Bot, make_settings, pack, start_bot

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class Running:
    """The bot and the LINE stand-in on a loop in another thread; `run()` waits for a coroutine there."""

    def __init__(self, redis_url: str):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.redis = sync_redis.Redis.from_url(redis_url)
        self.redis.flushdb()

        async def start() -> tuple[Platform, Bot, Worker]:
            platform = Platform(secret=SECRET, token=TOKEN, basic_id=BASIC_ID)
            await platform.start()
            bot = await start_bot(make_settings(redis_url, platform), platform, run_worker=False)
            return platform, bot, Worker(bot.services, build_router(), Metrics(), name="fuzz")

        self.platform, self.bot, self.worker = self.run(start())

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 20.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> int:
        async def go() -> int:
            async with self.bot.http.request(method, self.bot.url + path, data=body, headers=headers or {}) as r:
                await r.read()
                return r.status
        return int(self.run(go()))

    def digest(self) -> str:
        h = hashlib.sha256()
        for key in sorted(self.redis.scan_iter(count=1000)):
            h.update(key + b"\0" + (self.redis.dump(key) or b"") + b"\0")
        return h.hexdigest()

    def close(self) -> None:
        async def stop() -> None:
            await self.bot.stop()
            await self.platform.stop()
        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.redis.close()


@pytest.fixture(scope="module")
def running(redis_url: str) -> Iterator[Running]:
    r = Running(redis_url)
    yield r
    r.close()
    assert r.platform.violations == [], r.platform.violations


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    caplog.set_level(logging.INFO)
    yield caplog.records
    bad = [f"{r.name}: {r.getMessage()}" for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not bad, bad


def refused_changes_nothing(running: Running, status: int, before: str) -> None:
    assert status < 500, status
    if 400 <= status < 500:
        assert running.digest() == before, f"a refused input ({status}) changed Redis"


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)  # what HTTP can carry
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10)


# ---- the webhook ------------------------------------------------------------------------------
@FUZZ
@given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
       signature=st.none() | header_text | st.just("valid"))
def test_webhook_bodies_and_signatures(running: Running, errors: list, body: bytes, signature: str | None) -> None:
    before = running.digest()
    headers = {"Content-Type": "application/json"}
    if signature == "valid":
        headers["X-Line-Signature"] = sign(body, SECRET)
    elif signature is not None:
        headers["X-Line-Signature"] = signature
    status = running.request("POST", "/callback", body, headers)
    refused_changes_nothing(running, status, before)
    if signature != "valid":
        assert status == 400


EVENT_KINDS = ["follow", "unfollow", "message", "postback", "join", "leave", "memberJoined", "beacon",
               "accountLink", "things", "videoPlayComplete", "unsend", "whatever"]
odd_fields = st.dictionaries(
    st.sampled_from(["type", "mode", "timestamp", "source", "replyToken", "message", "postback", "follow",
                     "deliveryContext", "webhookEventId", "extra", "unsend", "link"]),
    json_values, max_size=3)


@st.composite
def events(draw: st.DrawFn, platform: Platform) -> dict:
    uid = draw(st.sampled_from([new_user_id(), "U" + "0" * 32]))
    kind = draw(st.sampled_from(["follow", "unfollow", "text", "postback", "sticker", "image", "other"]))
    if kind == "follow":
        event = platform.follow(uid, unblocked=draw(st.booleans()))
    elif kind == "unfollow":
        event = platform.unfollow(uid)
    elif kind == "text":
        event = platform.text(uid, draw(st.text(max_size=40) | st.sampled_from(["招待", "ポイント", "特典",
                                                                                  "招待コード ABCDEFGH で登録します"])))
    elif kind == "postback":
        event = platform.postback(uid, draw(st.text(max_size=80)))
    elif kind == "sticker":
        event = platform.sticker(uid)
    elif kind == "image":
        event = platform.image(uid)
    else:
        event = platform.event(draw(st.sampled_from(EVENT_KINDS)), uid)
    if draw(st.booleans()):
        event.update(draw(odd_fields))
    if draw(st.booleans()):
        event["mode"] = draw(st.sampled_from(["active", "standby"]))
    return event


def test_an_event_whose_type_is_a_list_or_object_is_skipped_not_a_500(running: Running, errors: list) -> None:
    """Found by the fuzzer: `type` as a list or an object made the intake's set lookup raise (500)."""
    for odd in ([], {"a": 1}):
        event = running.platform.text(new_user_id(), "hi")
        event["type"] = odd
        body = running.platform.payload(event)
        before = running.digest()
        assert running.request("POST", "/callback", body, {"Content-Type": "application/json",
                                                           "X-Line-Signature": sign(body, SECRET)}) == 200
        assert running.digest() == before  # skipped: nothing queued


@FUZZ
@given(data=st.data())
def test_validly_signed_events_of_every_kind(running: Running, errors: list, data: st.DataObject) -> None:
    batch = data.draw(st.lists(events(running.platform), min_size=1, max_size=3))
    before = running.digest()
    body = running.platform.payload(*batch)
    status = running.request("POST", "/callback", body, {"Content-Type": "application/json",
                                                        "X-Line-Signature": sign(body, SECRET)})
    refused_changes_nothing(running, status, before)
    assert status == 200

    async def handle_all() -> None:  # what a worker would do with each queued event: it must not raise
        for raw in batch:
            from bot.intake.stream import classify
            if classify(raw)[0] is not None:
                await running.worker.handle(raw, int(raw["timestamp"]))
    running.run(handle_all())


# ---- the pages ------------------------------------------------------------------------------
@FUZZ
@given(segment=st.text(min_size=1, max_size=60), language=header_text, page=st.sampled_from(["/i/{}", "/qr/{}.png", "/c/{}", "/c/{}.png"]))
def test_page_paths(running: Running, errors: list, segment: str, language: str, page: str) -> None:
    before = running.digest()
    status = running.request("GET", page.format(quote(segment, safe="")), headers={"Accept-Language": language})
    assert status in (200, 400, 404), status
    assert running.digest() == before, "a page view of an unknown code changed Redis"


# ---- the admin API ---------------------------------------------------------------------------
ENDPOINTS = [
    ("POST", "/api/v1/conversions", ["order_id", "user_id", "amount", "occurred_at"]),
    ("POST", "/api/v1/conversions/{id}/refund", []),
    ("POST", "/api/v1/members/{user}/adjustments", ["points", "reason"]),
    ("PATCH", "/api/v1/members/{user}", ["birthday", "gift_referral_reward"]),
    ("POST", "/api/v1/events", ["user_id", "name", "event_id"]),
    ("POST", "/api/v1/rewards/{id}/stock", ["add"]),
    ("POST", "/api/v1/rewards/{id}/codes", ["codes"]),
    ("POST", "/api/v1/coupons/{id}/use", []),
    ("POST", "/api/v1/broadcasts", ["text", "messages", "segment"]),
    ("POST", "/api/v1/budget/release", ["friend_ids", "reason"]),
    ("POST", "/api/v1/experiments/{id}/end", ["winner"]),
    ("DELETE", "/api/v1/members/{user}", []),
]


@st.composite
def admin_calls(draw: st.DrawFn) -> tuple[str, str, bytes]:
    method, path, fields = draw(st.sampled_from(ENDPOINTS))
    path = path.format(id=quote(draw(st.text(min_size=1, max_size=20)), safe=""),
                       user=draw(st.sampled_from([new_user_id(), "nobody", quote("U🙂", safe="")])))
    if draw(st.integers(0, 4)) == 0:
        body = draw(st.binary(max_size=100))
    else:
        chosen = draw(st.lists(st.sampled_from(fields), unique=True)) if fields else []
        extra = draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2))
        obj = {**extra, **{f: draw(json_values) for f in chosen}}
        body = json.dumps(draw(st.just(obj) | json_values)).encode()
    return method, path, body


@FUZZ
@given(call=admin_calls())
def test_admin_api_bodies(running: Running, errors: list, call: tuple[str, str, bytes]) -> None:
    method, path, body = call
    before = running.digest()
    status = running.request(method, path, body, {"Authorization": f"Bearer {ADMIN}",
                                                   "Content-Type": "application/json"})
    refused_changes_nothing(running, status, before)


@FUZZ
@given(call=admin_calls(), token=st.none() | header_text)
def test_admin_api_without_the_token_changes_nothing(running: Running, errors: list,
                                                     call: tuple[str, str, bytes], token: str | None) -> None:
    method, path, body = call
    before = running.digest()
    headers = {"Content-Type": "application/json"}
    if token is not None and token.strip() != ADMIN:
        headers["Authorization"] = "Bearer " + token
    status = running.request(method, path, body, headers)
    assert status in (400, 401, 403), status
    assert running.digest() == before


# ---- postback data -----------------------------------------------------------------------------
@FUZZ
@given(data=st.text(max_size=300) | st.sampled_from(["gift|1", "rw.show|x", "rw.ok|a|b", "|||", "rw.ok"]),
       flip=st.integers(0, 40))
def test_postback_data(running: Running, errors: list, data: str, flip: int) -> None:
    """Random and tampered data: the dispatcher refuses it; the handler never raises, LINE gets nothing bad."""
    uid = new_user_id()
    genuine = pack(GiftChoice(on=True)) if "gift" in data else data
    tampered = genuine[:flip] + ("x" if genuine[flip:flip + 1] != "x" else "y") + genuine[flip + 1:]

    async def go() -> None:
        for value in (data, tampered):
            event = running.platform.postback(uid, value)
            await running.worker.handle(event, int(event["timestamp"]))
    running.run(go())
    assert running.platform.violations == []
