"""Message building shared by the handlers: every answer ends with quick replies."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.chat.context import Ctx
from bot.line import flex
from bot.line.limits import QUICK_REPLY_ITEMS_MAX, TEXT_MAX, clip

log = logging.getLogger(__name__)
LOADING_SECONDS = 5  # LINE: 5-60, a multiple of 5; the animation stops by itself when our answer arrives
LOADING_WAIT_SECONDS = 2.0  # never hold an answer back long for a cosmetic call
LOADING_AFTER_SECONDS = 0.5  # an answer slower than this gets the dots meanwhile


def quick_replies(ctx: Ctx, *extra: dict[str, Any]) -> dict[str, Any]:
    """The main actions, tappable under the last message (labels ≤ 20 characters)."""
    def say(label_key: str, word_key: str) -> dict[str, Any]:
        return {"type": "action", "action": {"type": "message", "label": ctx.t(label_key), "text": ctx.t(word_key)}}

    items = [*extra, say("qr_invite", "word_invite"), say("qr_points", "word_points"),
             say("qr_rewards", "word_rewards"), say("qr_help", "word_help")]
    return {"items": items[:QUICK_REPLY_ITEMS_MAX]}


def text(ctx: Ctx, body: str, *extra_quick: dict[str, Any]) -> dict[str, Any]:
    """A text message with the quick replies (LINE shows only the last message's)."""
    return {"type": "text", "text": clip(body, TEXT_MAX), "quickReply": quick_replies(ctx, *extra_quick)}


def plain(body: str) -> dict[str, Any]:
    return {"type": "text", "text": clip(body, TEXT_MAX)}


def show_loading(ctx: Ctx) -> None:
    """The typing dots, if this answer turns out slow: they start only when LOADING_AFTER_SECONDS pass
    before the answer (Ctx.answer calls them off). A prompt answer costs no LINE call, which matters at
    scale too: LINE allows the loading endpoint only 100 requests a second per channel.
    Best effort, only in a one-to-one chat, and only when the answer will be a reply (a push after a dead
    token arrives later, and the dots would hang on)."""
    source = getattr(ctx.event, "source", None)
    if ctx.standby or getattr(source, "type", None) != "user" or not getattr(ctx.event, "reply_token", None):
        return
    if not ctx.reply_token_fresh() or ctx.pace != "normal":
        return
    ctx.dots_after(LOADING_AFTER_SECONDS, lambda: _loading(ctx))


async def _loading(ctx: Ctx) -> None:
    try:
        await asyncio.wait_for(ctx.services.line.show_loading(ctx.user_id, LOADING_SECONDS), LOADING_WAIT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - purely cosmetic, it must never fail the event
        log.debug("loading animation skipped: %s", exc)


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


def tier_label(ctx: Ctx, tier: str) -> str:
    """A tier as the person we answer reads it (its label in their language); the stored name stays the id."""
    return ctx.program.rules.tier_label(tier, ctx.lang)


def attribution_accepted(ctx: Ctx) -> list[dict[str, Any]]:
    """What the friend is told when their attribution is accepted, in chat: after a code message, and in the
    reply to the follow that completes an attribution begun on the LIFF page. One place, so both say the same."""
    return [text(ctx, ctx.t("referral_ok", friend_points=ctx.program.rules.friend_points))]
