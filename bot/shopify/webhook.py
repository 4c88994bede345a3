"""POST /webhooks/shopify: verify Shopify's HMAC on the raw bytes, queue durably (the LINE events' streams), 200.

Shopify waits 5 seconds at most and retries a webhook that was not answered 2xx (then removes a subscription
that keeps failing), so nothing is handled here: the worker does it (bot/shopify/topics.py).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from redis.exceptions import RedisError

from bot.infra.metrics import Metrics
from bot.intake.stream import Intake
from bot.intake.webhook import MAX_BODY
from bot.services import Services
from bot.shopify import topics
from bot.shopify.topics import Malformed, time_ms
from bot.web.http import JsonRefused, loads_json

log = logging.getLogger(__name__)

WEBHOOK_ID = re.compile(r"[\x21-\x7e]{1,128}")  # Shopify's are UUIDs; printable ASCII keeps the seen key sane
SHOP_DOMAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,254}")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def signature(secret: str, raw: bytes) -> str:
    """X-Shopify-Hmac-Sha256: base64 of HMAC-SHA256 over the raw body, keyed with the app's secret."""
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def make_handler(secret: str | None, intake_key: web.AppKey[Intake], metrics_key: web.AppKey[Metrics],
                 services_key: web.AppKey[Services]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def shopify_webhook(request: web.Request) -> web.StreamResponse:
        if not secret:
            raise web.HTTPNotFound()  # not connected to a Shopify store
        response = await _receive(request, secret, request.app[intake_key], request.app[services_key])
        request.app[metrics_key].shopify_webhooks.labels(request.headers.get("X-Shopify-Topic", "")[:40]
                                                         if response.status == 200 else "-",
                                                         str(response.status)).inc()
        return response

    return shopify_webhook


async def _receive(request: web.Request, secret: str, intake: Intake, services: Services) -> web.StreamResponse:
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _error(413, "BODY_TOO_LARGE", "webhook bodies are at most 1 MiB")
    given = request.headers.get("X-Shopify-Hmac-Sha256", "")
    if not given:
        log.warning("shopify webhook without X-Shopify-Hmac-Sha256 from %s", request.remote)
        return _error(401, "MISSING_SIGNATURE", "X-Shopify-Hmac-Sha256 is required")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "BODY_TOO_LARGE", "webhook bodies are at most 1 MiB")
    # constant time, on the raw bytes, before anything is parsed
    if not hmac.compare_digest(signature(secret, raw).encode(), given.encode("ascii", "replace")):
        log.warning("shopify webhook with a bad signature from %s", request.remote)
        return _error(401, "BAD_SIGNATURE", "X-Shopify-Hmac-Sha256 does not match the body")
    topic = request.headers.get("X-Shopify-Topic", "")
    webhook_id = request.headers.get("X-Shopify-Webhook-Id", "")
    shop = request.headers.get("X-Shopify-Shop-Domain", "")
    if not WEBHOOK_ID.fullmatch(webhook_id) or not topic or not SHOP_DOMAIN.fullmatch(shop):
        return _error(400, "MISSING_HEADERS", "X-Shopify-Topic, X-Shopify-Webhook-Id and X-Shopify-Shop-Domain are "
                                              "required")
    try:
        body = loads_json(raw)
        read = topics.read(topic, body, shop)
    except (JsonRefused, Malformed) as exc:
        log.warning("signed shopify webhook %s (%s) refused: %s", webhook_id, topic[:40], exc)
        return _error(400, "MALFORMED", str(exc))
    if read is None:  # a topic we do not subscribe to: acknowledged so Shopify stops, and counted
        log.info("shopify webhook %s: topic %s is not one we handle", webhook_id, topic[:40])
        try:
            await services.program.counters.count("shopify_topics_unknown")
        except (RedisError, OSError):
            pass
        return web.Response(text="OK")
    lane, facts = read
    now_ms = int(time.time() * 1000)
    event_id = f"shopify:{webhook_id}"  # in the seen keys beside LINE's ids, which never start so
    entry = {"type": topics.KIND, "webhookEventId": event_id,
             "timestamp": time_ms(request.headers.get("X-Shopify-Triggered-At")) or now_ms,
             "source": {"type": topics.KIND, "userId": lane}, "topic": topic, "facts": facts}
    try:
        await intake.enqueue_entry(lane, event_id, entry, now_ms)
    except (RedisError, OSError) as exc:  # 503: Shopify retries, nothing lost
        log.error("shopify webhook %s not queued, answering 503: %s", webhook_id, exc)
        return _error(503, "QUEUE_UNAVAILABLE", "the webhook could not be stored; try again")
    return web.Response(text="OK")
