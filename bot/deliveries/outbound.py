"""Outbound webhooks (Standard Webhooks, standardwebhooks.com): endpoints the shop registers, the events
emitted to them, and each attempt's signature.

- An endpoint: an https URL (http only to a loopback address), the events it wants, a `whsec_` secret (24
  random bytes, base64) shown once, at registration.
- An event becomes one delivery per endpoint that wants it, created durably through the delivery engine. Its
  id is derived from the endpoint, the event type and the outcome's operation id, so a redelivered LINE event
  or a retried API call that reaches the same outcome creates nothing new: the receiver gets it once (at least
  once: it dedupes on `webhook-id`, the same on every attempt).
- Each attempt is signed when it is made: `webhook-timestamp` is that attempt's time, so a receiver's
  5-minute tolerance holds for a retry an hour later.
- An endpoint is disabled when a delivery to it is given up (it failed for 24 hours) and nothing to it has
  succeeded for 24 hours: the reason is kept and shown; its remaining deliveries are dropped and no new ones
  are made until staff enable it again (PATCH {"enabled": true}).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.deliveries import keys
from bot.deliveries.engine import GIVE_UP_AFTER_MS, Deliveries, Delivery, NewDelivery

EVENTS = ("member.joined", "member.linked", "referral.pending", "referral.completed", "referral.voided",
          "reward.claimed", "points.expired")
OWNER = "wh"  # an endpoint's deliveries are owned by "wh:<endpoint id>"
MAX_ENDPOINTS = 20


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` + base64 HMAC-SHA256 over "{id}.{timestamp}.{body}", keyed with the secret's base64-decoded part."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def message_id(endpoint_id: str, event_type: str, op: str) -> str:
    digest = hashlib.sha256(f"{endpoint_id}\n{event_type}\n{op}".encode()).digest()
    return "msg_" + base64.b32encode(digest[:20]).decode().lower()


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Outbound:
    def __init__(self, redis: Any, deliveries: Deliveries, now_ms: Callable[[], int]):
        self.redis = redis
        self.deliveries = deliveries
        self.now_ms = now_ms

    # ---- endpoints ---------------------------------------------------------------------------------
    async def register(self, url: str, events: list[str]) -> dict[str, Any]:
        endpoint = {"id": "ep_" + uuid.uuid4().hex[:24], "url": url, "events": sorted(set(events)),
                    "secret": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
                    "created_at": self.now_ms() // 1000}
        await self.redis.hset(keys.ENDPOINTS, endpoint["id"], json.dumps(endpoint))
        return endpoint

    async def count(self) -> int:
        return int(await self.redis.hlen(keys.ENDPOINTS))

    async def endpoint(self, endpoint_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(keys.ENDPOINTS, endpoint_id)
        return json.loads(raw) if raw is not None else None

    async def endpoints(self) -> list[dict[str, Any]]:
        """Every endpoint with its state (enabled, or disabled with the reason), oldest first; secrets masked."""
        found = [json.loads(v) for v in (await self.redis.hgetall(keys.ENDPOINTS)).values()]
        health = await self.health()
        return [self.view(e, health) for e in sorted(found, key=lambda e: (e["created_at"], e["id"]))]

    def view(self, endpoint: dict[str, Any], health: dict[str, bytes]) -> dict[str, Any]:
        disabled = health.get(f"{endpoint['id']}:disabled")
        failing = health.get(f"{endpoint['id']}:failing_since")
        state = json.loads(disabled) if disabled else None
        return {"id": endpoint["id"], "url": endpoint["url"], "events": endpoint["events"],
                "secret": endpoint["secret"][:10] + "…", "created_at": endpoint["created_at"],
                "enabled": state is None, "disabled_at": state["at"] if state else None,
                "disabled_reason": state["reason"] if state else None,
                "failing_since": int(failing) // 1000 if failing else None}

    async def health(self) -> dict[str, bytes]:
        return {k.decode(): v for k, v in (await self.redis.hgetall(keys.HEALTH)).items()}

    async def delete(self, endpoint_id: str) -> bool:
        """Forget the endpoint; its pending deliveries are dropped when they come due."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.ENDPOINTS, endpoint_id)
            pipe.hdel(keys.HEALTH, f"{endpoint_id}:disabled", f"{endpoint_id}:failing_since")
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def enable(self, endpoint_id: str) -> None:
        await self.redis.hdel(keys.HEALTH, f"{endpoint_id}:disabled", f"{endpoint_id}:failing_since")

    # ---- events ------------------------------------------------------------------------------------
    async def emit(self, event_type: str, op: str, data: dict[str, Any], at_ms: int | None = None) -> int:
        """One delivery per enabled endpoint that wants `event_type`, keyed by the outcome's `op`: the same
        outcome again creates nothing. Returns how many deliveries this call created."""
        if event_type not in EVENTS:  # a programming error: fail loudly
            raise ValueError(f"unknown event {event_type!r}")
        raw = await self.redis.hgetall(keys.ENDPOINTS)
        if not raw:  # no endpoint: one read, nothing else
            return 0
        health = await self.health()
        when = at_ms if at_ms is not None else self.now_ms()
        body = json.dumps({"type": event_type, "timestamp": iso(when), "data": data}, ensure_ascii=False,
                          separators=(",", ":")).encode()
        made = []
        for value in raw.values():
            endpoint = json.loads(value)
            if event_type not in endpoint["events"] or f"{endpoint['id']}:disabled" in health:
                continue
            made.append(NewDelivery(id=message_id(endpoint["id"], event_type, op), url=endpoint["url"], body=body,
                                    headers={}, owner=f"{OWNER}:{endpoint['id']}", type=event_type))
        return (await self.deliveries.enqueue(made)).count("1")

    # ---- the engine's Signer -------------------------------------------------------------------------
    async def prepare(self, delivery: Delivery, now_ms: int) -> dict[str, str] | str:
        endpoint_id = delivery.owner.split(":", 1)[1]
        endpoint = await self.endpoint(endpoint_id)
        if endpoint is None:
            return "endpoint deleted"
        if await self.redis.hexists(keys.HEALTH, f"{endpoint_id}:disabled"):
            return "endpoint disabled"
        timestamp = now_ms // 1000
        return {"Content-Type": "application/json", "webhook-id": delivery.id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(endpoint["secret"], delivery.id, timestamp, delivery.body)}

    async def attempted(self, delivery: Delivery, ok: bool, gave_up: bool, now_ms: int, detail: str) -> None:
        endpoint_id = delivery.owner.split(":", 1)[1]
        if ok:
            await self.redis.hdel(keys.HEALTH, f"{endpoint_id}:failing_since")
            return
        await self.redis.hsetnx(keys.HEALTH, f"{endpoint_id}:failing_since", now_ms)
        if not gave_up:
            return
        since = await self.redis.hget(keys.HEALTH, f"{endpoint_id}:failing_since")
        if since is not None and now_ms - int(since) >= GIVE_UP_AFTER_MS:
            reason = f"no delivery succeeded for 24 hours; delivery {delivery.id} given up (last: {detail})"
            await self.redis.hsetnx(keys.HEALTH, f"{endpoint_id}:disabled",
                                    json.dumps({"at": now_ms // 1000, "reason": reason}))
