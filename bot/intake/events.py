"""LINE events as the SDK's models, the common ones built without pydantic's validation.

`Event.from_dict` validates every field of every event (~100 µs each here, about 5 % of the worker's CPU).
Most events are a text, a postback tap, a follow or an unfollow of a plain shape; for those this module checks
the shape itself — exactly the fields and types the SDK requires, nothing else present that it would
parse (emojis, mentions, date-picker params) — and builds the same models with `construct()`. Anything else
goes through `Event.from_dict`, which validates it (and refuses what does not match LINE's schema). The models
are the same classes either way, so handlers cannot tell (tests/test_events.py compares the two).
"""
from __future__ import annotations

from typing import Any

from linebot.v3.webhooks import (
    DeliveryContext,
    Event,
    EventMode,
    FollowDetail,
    FollowEvent,
    MessageEvent,
    PostbackContent,
    PostbackEvent,
    TextMessageContent,
    UnfollowEvent,
    UserSource,
)

_COMMON = {"type", "mode", "timestamp", "source", "webhookEventId", "deliveryContext"}
_MODES = {"active": EventMode.ACTIVE, "standby": EventMode.STANDBY}


def parse(raw: dict) -> Event:
    """The event as the SDK's model; raises ValueError or TypeError when it does not match LINE's schema."""
    return _plain(raw) or Event.from_dict(raw)


def _is(value: Any, kind: type) -> bool:
    return type(value) is kind  # noqa: E721 - exact: a bool is not an int here, as for pydantic's strict fields


def _plain(raw: dict) -> Event | None:
    """The model built directly when `raw` has one of the common plain shapes, else None."""
    source: Any = raw.get("source")
    delivery: Any = raw.get("deliveryContext")
    if not (_is(raw.get("timestamp"), int) and _is(raw.get("webhookEventId"), str) and raw.get("mode") in _MODES
            and _is(source, dict) and source.keys() == {"type", "userId"} and source["type"] == "user"
            and _is(source["userId"], str) and _is(delivery, dict) and delivery.keys() == {"isRedelivery"}
            and _is(delivery["isRedelivery"], bool)):
        return None
    common = dict(type=raw["type"], source=UserSource.construct(type="user", user_id=source["userId"]),
                  timestamp=raw["timestamp"], mode=_MODES[raw["mode"]], webhook_event_id=raw["webhookEventId"],
                  delivery_context=DeliveryContext.construct(is_redelivery=delivery["isRedelivery"]))
    kind, extra = raw["type"], raw.keys() - _COMMON
    token = raw.get("replyToken")
    if kind == "message" and extra == {"replyToken", "message"} and _is(token, str):
        message: Any = raw["message"]
        if (_is(message, dict) and message.keys() <= {"type", "id", "text", "quoteToken", "markAsReadToken"}
                and message.get("type") == "text" and _is(message.get("id"), str) and _is(message.get("text"), str)
                and _is(message.get("quoteToken"), str)
                and _is(message.get("markAsReadToken", ""), str)):
            content = TextMessageContent.construct(
                type="text", id=message["id"], text=message["text"], emojis=None, mention=None,
                quote_token=message["quoteToken"], quoted_message_id=None,
                mark_as_read_token=message.get("markAsReadToken"))
            return MessageEvent.construct(**common, reply_token=token, message=content)
    elif kind == "postback" and extra == {"replyToken", "postback"} and _is(token, str):
        postback: Any = raw["postback"]
        if _is(postback, dict) and postback.keys() == {"data"} and _is(postback["data"], str):
            return PostbackEvent.construct(**common, reply_token=token,
                                           postback=PostbackContent.construct(data=postback["data"], params=None))
    elif kind == "follow" and extra == {"replyToken", "follow"} and _is(token, str):
        follow: Any = raw["follow"]
        if _is(follow, dict) and follow.keys() == {"isUnblocked"} and _is(follow["isUnblocked"], bool):
            return FollowEvent.construct(**common, reply_token=token,
                                         follow=FollowDetail.construct(is_unblocked=follow["isUnblocked"]))
    elif kind == "unfollow" and not extra:
        return UnfollowEvent.construct(**common)
    return None
