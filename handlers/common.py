"""Message building shared by the handlers: every answer ends with quick replies."""
from __future__ import annotations

from typing import Any

from bot import flex
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


def card(ctx: Ctx, alt_text: str, contents: dict[str, Any], *extra_quick: dict[str, Any]) -> dict[str, Any]:
    """A Flex card with the quick replies; `contents` from bot.flex.render (or a carousel of them)."""
    return flex.message(alt_text, contents, quick_replies(ctx, *extra_quick))


def render(ctx: Ctx, template: str, /, **values: Any) -> dict[str, Any]:
    """A Flex template filled with the member's locale texts."""
    return flex.render(template, ctx.t, **values)


def row(ctx: Ctx, label: str, value: str) -> dict[str, Any]:
    return render(ctx, "_row", label=label, value=value)


def note(ctx: Ctx, body: str) -> dict[str, Any]:
    return render(ctx, "_note", text=body)
