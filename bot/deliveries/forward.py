"""Forwarding LINE webhooks to the shop's other LINE tool (FORWARD_WEBHOOK_URLS; README "Alongside another LINE
tool"): every verified body, LINE's empty `events` check included, goes unchanged — the exact bytes, the
original X-Line-Signature and Content-Type — to each URL, through the delivery engine (stored before the
webhook's 200, retried as every delivery is). The other tool checks LINE's signature itself: the bytes must be
LINE's, byte for byte."""
from __future__ import annotations

import uuid

from bot.deliveries.engine import FORWARD_OWNER, Deliveries, NewDelivery


def forward_id() -> str:
    """A new delivery per body received and target: a body LINE sends again (a redelivery, or its Verify button
    pressed twice) goes again, and the other tool dedupes on webhookEventId as it does for LINE itself."""
    return "fwd_" + uuid.uuid4().hex


class Forwarder:
    def __init__(self, deliveries: Deliveries, urls: tuple[str, ...]):
        self.deliveries = deliveries
        self.urls = urls

    async def keep(self, raw: bytes, signature: str, content_type: str) -> None:
        """Store the body's deliveries, one per URL, in one step. Raises when Redis does not take them."""
        headers = {"Content-Type": content_type or "application/json; charset=utf-8", "X-Line-Signature": signature}
        await self.deliveries.enqueue([NewDelivery(id=forward_id(), url=url, body=raw, headers=headers,
                                                   owner=FORWARD_OWNER, type="line.webhook") for url in self.urls])
