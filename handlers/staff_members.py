"""会員を探す / member: look a member up by invite code, link or user id (a member QR token later); and
調整 / adjust <code> <+/-points> <reason>: a points adjustment through Program.adjust, audit-logged.

The flow (bot/chat/flows.py), for 会員を探す alone:
    state    accepts                                        then
    -        会員を探す / member / find member               QUERY
    QUERY    a text: an invite code, link or user id        found: the card, the flow ends; not found: QUERY again
"会員 <query>" in one text looks up without a flow (and ends any pending step once found).
"""
from __future__ import annotations

import logging
import re
import unicodedata
from enum import StrEnum

from bot.chat.context import Ctx
from bot.chat.flows import Flow
from bot.chat.router import MessageEvent, Router, text_of, words
from bot.chat.staff import STEP_TTL_SECONDS, is_staff
from handlers.common import tier_label
from handlers.staff_common import WORD_MEMBER, ask_for, cancel_button, staff_cancelled, staff_text
from rewards import codes
from rewards.errors import ProgramError
from rewards.lookup import find_member

router = Router("staff_members")
inputs = Router("staff_members_inputs")
log = logging.getLogger(__name__)


class Step(StrEnum):
    """The value is what Redis keeps for a pending step."""
    QUERY = "member"


FLOW = Flow("member lookup", Step, cancelled=staff_cancelled, guard=is_staff, ttl=STEP_TTL_SECONDS)

# 調整 ABCD2345 +100 来店サービス  /  adjust ABCD2345 -50 mistake
ADJUST = re.compile(r"^(?:調整|adjust)\s+(\S+)\s+([+\-]?\d{1,7})\s+(.{1,500})$", re.IGNORECASE | re.DOTALL)
LOOKUP = re.compile(r"^(?:会員|member)\s+(\S+)$", re.IGNORECASE)
MAX_ADJUST = 1_000_000
ADJUST_REFUSALS = ("UNKNOWN_MEMBER",)  # the codes Program.adjust raises that have their own text


def adjust_command(ctx: Ctx) -> dict[str, str] | None:
    text = text_of(ctx)
    match = ADJUST.match(unicodedata.normalize("NFKC", text).strip()) if text else None  # keeps the reason's case
    if not match:
        return None
    return {"who": match.group(1), "points": match.group(2), "reason": match.group(3).strip()}


def lookup_command(ctx: Ctx) -> dict[str, str] | None:
    text = text_of(ctx)
    match = LOOKUP.match(unicodedata.normalize("NFKC", text).strip()) if text else None
    return {"query": match.group(1)} if match else None


async def member_card(ctx: Ctx, uid: str) -> str:
    view = await ctx.program.member(uid)
    if view is None:  # the callers found this member a moment ago
        raise ValueError(f"no member {uid}")
    lines = await ctx.program.recent_ledger(uid, 3)
    recent = "\n".join(ctx.t("staff_member_ledger_line", delta=f"{line.delta:+,}", kind=line.kind) for line in lines)
    return ctx.t("staff_member_card", code=codes.display(view.code) if view.code else "-", user_id=uid,
                 points=f"{view.points:,}", pending=f"{view.pending_points:,}", tier=tier_label(ctx, view.tier),
                 invited=view.referrals.invited, completed=view.referrals.completed,
                 blocked=ctx.t("staff_yes") if view.blocked else ctx.t("staff_no"),
                 recent=recent or "-", example=ctx.t("staff_adjust_example",
                                                      code=view.code or uid))


async def show_member(ctx: Ctx, query: str) -> None:
    uid = await find_member(ctx.program, query)
    if uid is None:
        await ctx.answer(staff_text(ctx, ctx.t("staff_member_not_found", query=query[:40]), cancel_button(ctx)))
        return
    await FLOW.end(ctx)
    await ctx.answer(staff_text(ctx, await member_card(ctx, uid)))


@router.on(MessageEvent, words(*WORD_MEMBER), is_staff)
async def on_member(ctx: Ctx) -> None:
    await ask_for(ctx, FLOW, Step.QUERY, "staff_member_ask")


@router.on(MessageEvent, lookup_command, is_staff)
async def on_member_typed(ctx: Ctx, query: str) -> None:
    await show_member(ctx, query)


@router.on(MessageEvent, adjust_command, is_staff)
async def on_adjust(ctx: Ctx, who: str, points: str, reason: str) -> None:
    delta = int(points)
    if delta == 0 or abs(delta) > MAX_ADJUST:
        await ctx.answer(staff_text(ctx, ctx.t("staff_adjust_bad_points", max=f"{MAX_ADJUST:,}")))
        return
    uid = await find_member(ctx.program, who)
    if uid is None:
        await ctx.answer(staff_text(ctx, ctx.t("staff_member_not_found", query=who[:40])))
        return
    # the event id is the operation id: a redelivered or re-run event adjusts once
    op = f"adjust:chat:{ctx.event_id}"
    try:
        _, balance = await ctx.program.adjust(uid, delta, reason, ctx.user_id, op)
    except ProgramError as refused:
        log.info("staff %s adjust refused: %s", ctx.user_id, refused.code)
        known = refused.code in ADJUST_REFUSALS  # a code without its own text still gets an honest answer
        await ctx.answer(staff_text(ctx, ctx.t(f"staff_adjust_refused_{refused.code}") if known
                                    else ctx.t("staff_adjust_refused", code=refused.code)))
        return
    # also when an earlier try adjusted: its audit entry may be what that try did not get to (once per op)
    await ctx.program.audit_adjustment(ctx.user_id, uid, op, delta)
    view = await ctx.program.member(uid)
    await ctx.answer(staff_text(ctx, ctx.t("staff_adjust_done", points=f"{delta:+,}", reason=reason,
                                           balance=f"{balance:,}", code=view.code if view and view.code else uid)))


@inputs.on(MessageEvent, FLOW.at(Step.QUERY), is_staff)
async def on_member_query(ctx: Ctx) -> None:
    await show_member(ctx, text_of(ctx) or "")
