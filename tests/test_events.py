"""The common events built without pydantic's validation are the very models the SDK's validated parse
gives, and anything off the plain shapes goes through that validated parse (so odd events are still
refused or parsed as before)."""
from __future__ import annotations

import copy
from typing import Any

import pytest
from linebot.v3.webhooks import Event

from bot.intake import events
from linesim.platform import Platform, new_user_id

PLATFORM = Platform(secret="s", token="t")
UID = new_user_id()
PLAIN = {
    "text": PLATFORM.text(UID, "ポイント"),
    "text with a read token": PLATFORM.text(UID, "hi") | {"message": PLATFORM.text(UID, "hi")["message"]
                                                          | {"markAsReadToken": "m1"}},
    "postback": PLATFORM.postback(UID, "rw.show|coffee|mac"),
    "follow": PLATFORM.follow(UID),
    "unblock": PLATFORM.follow(UID) | {"follow": {"isUnblocked": True}},
    "unfollow": PLATFORM.event("unfollow", UID, reply=False),
    "redelivered standby text": PLATFORM.text(UID, "x") | {"mode": "standby",
                                                           "deliveryContext": {"isRedelivery": True}},
}


@pytest.mark.parametrize("name", PLAIN)
def test_a_plain_event_is_the_model_the_sdk_would_build(name: str) -> None:
    raw = PLAIN[name]
    assert events._plain(raw) is not None, "a plain shape takes the fast path"
    fast, validated = events.parse(raw), Event.from_dict(raw)
    assert type(fast) is type(validated)
    assert fast.dict() == validated.dict()
    assert fast.to_dict() == validated.to_dict()


def _with(raw: dict, path: tuple[str, ...], value: Any) -> dict:
    out = copy.deepcopy(raw)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


ODD = [
    ("a text with emojis", _with(PLAIN["text"], ("message", "emojis"), [{"index": 0, "length": 1, "productId": "p",
                                                                         "emojiId": "e"}])),
    ("a sticker", PLATFORM.sticker(UID)),
    ("a postback with date params", _with(PLAIN["postback"], ("postback", "params"), {"date": "2026-01-01"})),
    ("a group source", _with(PLAIN["text"], ("source",), {"type": "group", "groupId": "C" + "1" * 32, "userId": UID})),
    ("a timestamp as text", _with(PLAIN["text"], ("timestamp",), "1")),
    ("a bool for isUnblocked as a number", _with(PLAIN["follow"], ("follow", "isUnblocked"), 1)),
    ("an unknown mode", _with(PLAIN["text"], ("mode",), "sleepy")),
    ("no reply token", {k: v for k, v in PLAIN["text"].items() if k != "replyToken"}),
    ("a text of a number", _with(PLAIN["text"], ("message", "text"), 5)),
]


@pytest.mark.parametrize(("name", "raw"), ODD, ids=[name for name, _ in ODD])
def test_anything_else_goes_through_the_validated_parse(name: str, raw: dict) -> None:
    assert events._plain(raw) is None
    try:
        validated: Any = Event.from_dict(raw)
    except (ValueError, TypeError) as refused:
        with pytest.raises(type(refused)):
            events.parse(raw)
        return
    assert events.parse(raw).dict() == validated.dict()
