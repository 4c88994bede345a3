"""Every LINE limit the bot relies on, in one place, and `clip()`, which cuts text the way LINE counts it.

Values are LINE's (Messaging API reference: message objects, actions, rich menus, rate limits). Our own
tighter caps (e.g. flex.ALT_TEXT_CAP) stay beside the code that chooses them, named as ours. LINE counts
text in UTF-16 code units: an emoji outside the BMP is 2, so `len()` undercounts it.

`problem()` checks what LINE's OpenAPI spec (and so the SDK's models) leaves out. It is shared by the LINE
stand-in, which flags a request that breaks it, and by broadcasts, which check what staff compose before
anything is sent.
"""
from __future__ import annotations

import json
from typing import Any

# messages and their actions
MESSAGES_PER_REQUEST_MAX = 5  # reply, push, multicast, broadcast
TEXT_MAX = 5000  # a text message, in UTF-16 code units
ALT_TEXT_MAX = 1500  # a Flex message's altText
BUBBLE_MAX_BYTES = 30_000  # a Flex bubble's JSON
CAROUSEL_MAX_BYTES = 50_000  # a Flex carousel's JSON
CAROUSEL_MAX_BUBBLES = 12
MEDIA_URL_MAX = 2000  # an image message's URLs and a Flex image's url (https only)
QUICK_REPLY_ITEMS_MAX = 13
QUICK_REPLY_LABEL_MAX = 20
BUTTON_LABEL_MAX = 40  # any other action's label (Flex buttons)
POSTBACK_DATA_MAX = 300
DISPLAY_TEXT_MAX = 300  # a postback action's displayText
MESSAGE_ACTION_TEXT_MAX = 300  # what a message action sends
URI_MAX = 1000
LINK_TOKEN_SECONDS = 600  # an account link token's life (issueLinkToken), usable once
DISPLAY_NAME_MAX = 20  # a user's display name: the LINE app's limit, not in the API reference

# sending
MULTICAST_TO_MAX = 500  # user IDs per multicast request
MULTICAST_PER_SECOND = 200
PUSH_PER_SECOND = 2000  # like reply, profile and most other endpoints
REPLY_TOKEN_SECONDS = 60  # after we received the webhook ("subject to change without notice")
REDELIVERED_REPLY_TOKEN_SECONDS = 20 * 60  # a redelivered event's token: at most this long after the event

# rich menus
RICH_MENU_WIDTH_MIN, RICH_MENU_WIDTH_MAX = 800, 2500
RICH_MENU_HEIGHT_MIN = 250
RICH_MENU_RATIO_MIN = 1.45  # width / height
RICH_MENU_AREAS_MAX = 20
RICH_MENU_LABEL_MAX = 20  # an area's action label
CHAT_BAR_TEXT_MAX = 14
RICH_MENU_NAME_MAX = 300
RICH_MENU_ALIAS_MAX = 32
RICH_MENU_IMAGE_MAX_BYTES = 1024 * 1024  # PNG or JPEG
RICH_MENUS_MAX = 1000  # per channel
RICH_MENU_CALLS_PER_HOUR = 100  # create, and delete, each its own bucket


def text_length(text: str) -> int:
    """LINE counts UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, limit: int, mark: str = "") -> str:
    """`text` in at most `limit` UTF-16 code units, as LINE counts, cut never inside a surrogate pair; a text
    that had to be cut ends with `mark` (e.g. "…"), counted within the limit."""
    if len(text) * 2 <= limit:  # no code point is more than 2 units: the usual short text costs nothing more
        return text
    units = text.encode("utf-16-le", "surrogatepass")
    if len(units) <= 2 * limit:
        return text
    room = limit - text_length(mark)
    if room < 0:
        mark, room = "", limit
    head = units[:2 * room]
    if head and 0xD800 <= int.from_bytes(head[-2:], "little") <= 0xDBFF:  # half of a pair: leave it out
        head = head[:-2]
    return head.decode("utf-16-le", "surrogatepass") + mark


def problem(messages: list[dict], strict_media: bool = True) -> str | None:
    """The first limit a list of message objects breaks, or None."""
    for m in messages:
        t = m.get("type")
        if t == "text" and text_length(m.get("text", "")) > TEXT_MAX:
            return f"text is longer than {TEXT_MAX} characters"
        if t == "flex":
            if not 1 <= len(m.get("altText", "")) <= ALT_TEXT_MAX:
                return f"flex altText needs 1 to {ALT_TEXT_MAX} characters"
            size = len(json.dumps(m.get("contents"), ensure_ascii=False).encode())
            if size > (CAROUSEL_MAX_BYTES if m["contents"].get("type") == "carousel" else BUBBLE_MAX_BYTES):
                return f"flex container too large: {size} bytes"
            if m["contents"].get("type") == "carousel":
                bubbles = m["contents"].get("contents", [])
                if not 1 <= len(bubbles) <= CAROUSEL_MAX_BUBBLES:
                    return f"a flex carousel holds 1 to {CAROUSEL_MAX_BUBBLES} bubbles, not {len(bubbles)}"
                if len({b.get("size", "mega") for b in bubbles}) > 1:
                    return "the bubbles of a flex carousel must all have the same size"
                if any(len(json.dumps(b, ensure_ascii=False).encode()) > BUBBLE_MAX_BYTES for b in bubbles):
                    return "a bubble in a flex carousel is larger than 30 KB"
            for url in flex_image_urls(m["contents"]):
                if len(url) > MEDIA_URL_MAX or (strict_media and not url.startswith("https://")):
                    return f"flex image url must be https and at most {MEDIA_URL_MAX} characters: {url[:80]}"
        if t == "image":
            for k in ("originalContentUrl", "previewImageUrl"):
                url = m.get(k, "")
                if len(url) > MEDIA_URL_MAX or (strict_media and not url.startswith("https://")):
                    return f"image {k} must be an https URL of at most {MEDIA_URL_MAX} characters: {url[:80]}"
        for item in (m.get("quickReply") or {}).get("items", []):
            label = item.get("action", {}).get("label", "")
            if len(label) > QUICK_REPLY_LABEL_MAX:
                return f"quick reply label longer than {QUICK_REPLY_LABEL_MAX}: {label!r}"
        for action in actions(m):
            if len(action.get("label", "")) > BUTTON_LABEL_MAX:
                return f"action label longer than {BUTTON_LABEL_MAX}: {action['label']!r}"
            if len(action.get("data", "")) > POSTBACK_DATA_MAX:
                return f"postback data longer than {POSTBACK_DATA_MAX} characters"
            if len(action.get("uri", "")) > URI_MAX:
                return f"uri longer than {URI_MAX} characters"
    return None


def flex_image_urls(node: Any) -> list[str]:
    """The url of every image component in a Flex container."""
    if isinstance(node, dict):
        own = [node["url"]] if node.get("type") == "image" and isinstance(node.get("url"), str) else []
        return own + [u for value in node.values() for u in flex_image_urls(value)]
    if isinstance(node, list):
        return [u for value in node for u in flex_image_urls(value)]
    return []


def actions(node: Any) -> list[dict]:
    """Every action object inside a message (Flex buttons, templates, quick replies)."""
    found: list[dict] = []
    if isinstance(node, dict):
        action = node.get("action")
        if isinstance(action, dict) and "type" in action:
            found.append(action)
        for value in node.values():
            found.extend(actions(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(actions(value))
    return found
