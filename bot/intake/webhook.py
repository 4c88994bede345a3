"""POST /callback: verify on the raw bytes, queue durably, then 200. No handling happens here."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from linebot.v3.webhook import SignatureValidator
from redis.exceptions import RedisError

from bot.deliveries.forward import Forwarder
from bot.infra.metrics import Metrics
from bot.intake.stream import Intake
from bot.web.http import JsonRefused, loads_json

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # 1 MiB; LINE's own bodies are far smaller


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def make_handler(validator: SignatureValidator, intake_key: web.AppKey[Intake], metrics_key: web.AppKey[Metrics],
                 forward_key: web.AppKey[Forwarder] | None = None
                 ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def callback(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        metrics = request.app[metrics_key]
        forwarder = request.app.get(forward_key) if forward_key is not None else None
        response = await _callback(request, validator, request.app[intake_key], metrics, forwarder)
        metrics.webhooks.labels(str(response.status)).inc()
        metrics.ack_seconds.observe(time.perf_counter() - started)
        return response

    return callback


async def _callback(request: web.Request, validator: SignatureValidator, intake: Intake,
                    metrics: Metrics, forwarder: Forwarder | None = None) -> web.StreamResponse:
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _error(413, "BODY_TOO_LARGE", "webhook bodies are at most 1 MiB")
    signature = request.headers.get("X-Line-Signature")  # aiohttp matches header names case-insensitively
    if not signature:
        log.warning("webhook without X-Line-Signature from %s", request.remote)
        return _error(400, "MISSING_SIGNATURE", "X-Line-Signature is required")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "BODY_TOO_LARGE", "webhook bodies are at most 1 MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _error(400, "NOT_UTF8", "the body is not UTF-8")
    if not validator.validate(text, signature):
        log.warning("webhook with a bad signature from %s", request.remote)
        return _error(400, "BAD_SIGNATURE", "the signature does not match the body")
    try:
        payload = loads_json(text)  # nesting deeper than LINE ever sends is refused, not a RecursionError
    except JsonRefused as exc:
        log.warning("signed webhook body refused from %s: %s", request.remote, exc)
        return _error(400, "TOO_DEEP" if exc.too_deep else "NOT_JSON", str(exc))
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        return _error(400, "NOT_A_WEBHOOK", "the body is not a webhook object with an events list")
    # FORWARD_WEBHOOK_URLS: the verified body is stored for the shop's other tool before the 200, beside the
    # intake's own call (side by side: one more round trip, no longer wait); sent later by the worker
    forwarded = forwarder.keep(raw, signature, request.headers.get("Content-Type", "")) if forwarder else None
    try:
        if not payload["events"]:  # LINE's connectivity check: forwarded too, else only answered
            if forwarded is not None:
                await forwarded
            return web.Response(text="OK")
        queued = intake.enqueue(payload["events"], int(time.time() * 1000))
        if forwarded is None:
            counts = await queued
        else:
            counts, _ = await asyncio.gather(queued, forwarded)
    except (RedisError, OSError) as exc:
        # 503 and not 200: LINE keeps the events (redelivery) instead of us losing them
        log.error("events not queued, answering 503: %s", exc)
        return _error(503, "QUEUE_UNAVAILABLE", "events could not be stored; try again")
    for outcome, n in counts.items():
        metrics.events.labels(outcome).inc(n)
    return web.Response(text="OK")
