"""Message building shared by the handlers: every answer ends with quick replies."""
from __future__ import annotations

from typing import Any

from bot.dispatcher import Ctx


def quick_replies(ctx: Ctx, *extra: dict[str, Any]) -> dict[str, Any]:
    """The main actions, tappable under the last message (labels ≤ 20 characters)."""
    def say(label_key: str, word_key: str) -> dict[str, Any]:
        return {"type": "action", "action": {"type": "message", "label": ctx.t(label_key), "text": ctx.t(word_key)}}

    items = [*extra, say("qr_invite", "word_invite"), say("qr_points", "word_points"),
             say("qr_rewards", "word_rewards"), say("qr_help", "word_help")]
    return {"items": items[:13]}


def text(ctx: Ctx, body: str, *extra_quick: dict[str, Any]) -> dict[str, Any]:
    """A text message with the quick replies (LINE shows only the last message's)."""
    return {"type": "text", "text": body[:5000], "quickReply": quick_replies(ctx, *extra_quick)}


def plain(body: str) -> dict[str, Any]:
    return {"type": "text", "text": body[:5000]}
