"""Shared by the staff handlers: the staff words and quick replies, and how a staff flow asks for its input
and answers a cancel (handlers/cancel.py).

Every staff route carries the `is_staff` filter, so for anyone else these words mean nothing here.
"""
from __future__ import annotations

from typing import Any

from bot.chat.context import Ctx
from bot.chat.flows import Flow, S
from bot.line.limits import DISPLAY_TEXT_MAX, QUICK_REPLY_ITEMS_MAX, QUICK_REPLY_LABEL_MAX, TEXT_MAX, clip

# the staff rich menu sends the Japanese words; the English ones are accepted too
WORD_BROADCAST = ("配信する", "配信", "broadcast")
WORD_NUMBERS = ("今日の数字", "数字", "today", "numbers", "stats")
WORD_MEMBER = ("会員を探す", "会員検索", "member", "find member")
WORD_COUPON = ("クーポン使用", "coupon", "use coupon")
WORD_REVIEW = ("審査待ち", "審査", "review")


def label(value: str) -> str:
    return clip(value, QUICK_REPLY_LABEL_MAX, "…")


def staff_quick_replies(ctx: Ctx, *extra: dict[str, Any]) -> dict[str, Any]:
    def say(key: str) -> dict[str, Any]:
        word = ctx.t(key)
        return {"type": "action", "action": {"type": "message", "label": label(word), "text": word}}

    items = [*extra, say("staff_word_broadcast"), say("staff_word_numbers"), say("staff_word_member"),
             say("staff_word_coupon"), say("staff_word_review")]
    return {"items": items[:QUICK_REPLY_ITEMS_MAX]}


def staff_text(ctx: Ctx, body: str, *extra_quick: dict[str, Any]) -> dict[str, Any]:
    return {"type": "text", "text": clip(body, TEXT_MAX), "quickReply": staff_quick_replies(ctx, *extra_quick)}


def cancel_button(ctx: Ctx) -> dict[str, Any]:
    word = ctx.t("staff_word_cancel")
    return {"type": "action", "action": {"type": "message", "label": label(word), "text": word}}


async def ask_for(ctx: Ctx, flow: Flow[S], state: S, question_key: str) -> None:
    """Start a staff flow in `state` and ask for its input, with a way out."""
    await flow.go(ctx, state)
    await ctx.answer(staff_text(ctx, ctx.t(question_key), cancel_button(ctx)))


def postback_button(button_label: str, data: str, display: str) -> dict[str, Any]:
    return {"type": "action", "action": {"type": "postback", "label": label(button_label), "data": data,
                                         "displayText": clip(display, DISPLAY_TEXT_MAX)}}


def staff_cancelled(ctx: Ctx) -> dict[str, Any]:
    """Every staff flow's answer to キャンセル / cancel."""
    return staff_text(ctx, ctx.t("staff_cancelled"))
