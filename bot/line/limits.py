"""LINE's documented message limits that its OpenAPI spec (and so the SDK's models) leave out.

Shared by the LINE stand-in, which flags a request that breaks them, and by the code that checks messages
staff compose (broadcasts) before anything is sent.
"""
from __future__ import annotations

import json
from typing import Any

QUICK_REPLY_LABEL_MAX = 20
BUTTON_LABEL_MAX = 40
TEXT_MAX = 5000


def text_length(text: str) -> int:
    """LINE counts UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def problem(messages: list[dict], strict_media: bool = True) -> str | None:
    """The first limit a list of message objects breaks, or None."""
    for m in messages:
        t = m.get("type")
        if t == "text" and text_length(m.get("text", "")) > TEXT_MAX:
            return f"text is longer than {TEXT_MAX} characters"
        if t == "flex":
            if not 1 <= len(m.get("altText", "")) <= 1500:
                return "flex altText needs 1 to 1500 characters"
            size = len(json.dumps(m.get("contents"), ensure_ascii=False).encode())
            if size > (50_000 if m["contents"].get("type") == "carousel" else 30_000):
                return f"flex container too large: {size} bytes"
            if m["contents"].get("type") == "carousel":
                bubbles = m["contents"].get("contents", [])
                if not 1 <= len(bubbles) <= 12:
                    return f"a flex carousel holds 1 to 12 bubbles, not {len(bubbles)}"
                if len({b.get("size", "mega") for b in bubbles}) > 1:
                    return "the bubbles of a flex carousel must all have the same size"
                if any(len(json.dumps(b, ensure_ascii=False).encode()) > 30_000 for b in bubbles):
                    return "a bubble in a flex carousel is larger than 30 KB"
            for url in flex_image_urls(m["contents"]):
                if len(url) > 2000 or (strict_media and not url.startswith("https://")):
                    return f"flex image url must be https and at most 2000 characters: {url[:80]}"
        if t == "image":
            for k in ("originalContentUrl", "previewImageUrl"):
                url = m.get(k, "")
                if len(url) > 2000 or (strict_media and not url.startswith("https://")):
                    return f"image {k} must be an https URL of at most 2000 characters: {url[:80]}"
        for item in (m.get("quickReply") or {}).get("items", []):
            label = item.get("action", {}).get("label", "")
            if len(label) > QUICK_REPLY_LABEL_MAX:
                return f"quick reply label longer than {QUICK_REPLY_LABEL_MAX}: {label!r}"
        for action in actions(m):
            if len(action.get("label", "")) > BUTTON_LABEL_MAX:
                return f"action label longer than {BUTTON_LABEL_MAX}: {action['label']!r}"
            if len(action.get("data", "")) > 300:
                return "postback data longer than 300 characters"
            if len(action.get("uri", "")) > 1000:
                return "uri longer than 1000 characters"
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
