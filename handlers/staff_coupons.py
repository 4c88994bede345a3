"""クーポン使用 / coupon: staff mark a customer's coupon used. The coupon QR encodes its page link
(PUBLIC_BASE_URL/c/{token}); staff scan it with LINE's QR reader and paste, or type the token.

The flow (bot/chat/flows.py), for クーポン使用 alone:
    state    accepts                                        then
    -        クーポン使用 / coupon / use coupon              TOKEN
    TOKEN    a text: a pasted coupon link or a token        used: the flow ends; refused: TOKEN again
"クーポン使用 <token>" in one text uses the coupon without a flow (and ends any pending step once used).
"""
from __future__ import annotations

import logging
import re
from enum import StrEnum

from bot.chat.context import Ctx
from bot.chat.flows import Flow
from bot.chat.router import MessageEvent, Router, text_of, words
from bot.chat.staff import STEP_TTL_SECONDS, is_staff
from handlers.staff_common import WORD_COUPON, ask_for, cancel_button, staff_cancelled, staff_text
from rewards.errors import ProgramError

router = Router("staff_coupons")
inputs = Router("staff_coupons_inputs")
log = logging.getLogger(__name__)


class Step(StrEnum):
    """The value is what Redis keeps for a pending step."""
    TOKEN = "coupon"


FLOW = Flow("coupon", Step, cancelled=staff_cancelled, guard=is_staff, ttl=STEP_TTL_SECONDS)

TYPED = re.compile(r"^(?:クーポン使用|use coupon|coupon)\s+(\S+)$", re.IGNORECASE)


def token_of(text: str) -> str:
    """The token from a pasted coupon link (…/c/{token}, query or slash after it ignored) or the token itself."""
    text = text.strip().split("?", 1)[0].rstrip("/")
    return text.rsplit("/c/", 1)[-1] if "/c/" in text else text


def typed_coupon(ctx: Ctx) -> dict[str, str] | None:
    text = text_of(ctx)
    match = TYPED.match(text.strip()) if text else None
    return {"token": token_of(match.group(1))} if match else None


async def use(ctx: Ctx, token: str) -> None:
    catalog = ctx.services.catalog
    try:  # the event names the use: a retry of this event is told it used the coupon, not "already used"
        uid, coupon = await catalog.use_coupon(token, f"coupon:chat:{ctx.event_id}")
    except ProgramError as refused:
        log.info("staff %s could not use coupon: %s", ctx.user_id, refused.code)
        await ctx.answer(staff_text(ctx, ctx.t(f"staff_coupon_{refused.code}"), cancel_button(ctx)))
        return
    await FLOW.end(ctx)
    # once per coupon (it is used once): a retry writes the entry if and only if the first try did not
    await ctx.program.audit(ctx.user_id, "use_coupon", uid, op=f"use_coupon:{token}", token=token,
                            reward=coupon.reward_id, code=coupon.code, claim=coupon.claim_id, before="unused",
                            after="used")
    reward = ctx.program.rules.reward(coupon.reward_id)
    name = (reward.name.get(ctx.lang) or reward.name["ja"]) if reward else coupon.reward_id
    await ctx.answer(staff_text(ctx, ctx.t("staff_coupon_used", name=name, code=coupon.code or "-")))


@router.on(MessageEvent, words(*WORD_COUPON), is_staff)
async def on_coupon(ctx: Ctx) -> None:
    await ask_for(ctx, FLOW, Step.TOKEN, "staff_coupon_ask")


@router.on(MessageEvent, typed_coupon, is_staff)
async def on_coupon_typed(ctx: Ctx, token: str) -> None:
    await use(ctx, token)


@inputs.on(MessageEvent, FLOW.at(Step.TOKEN), is_staff)
async def on_coupon_token(ctx: Ctx) -> None:
    await use(ctx, token_of(text_of(ctx) or ""))
