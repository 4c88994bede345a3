"""配信する / broadcast: staff compose a broadcast in chat — the text, then a segment from quick replies
(with its recipient count), then confirm: a broadcast job is created, once per draft.

The flow (bot/chat/flows.py):
    state    accepts                                        then
    -        配信する / broadcast                             TEXT
    TEXT     a text: the broadcast's body                   SEGMENT (a text LINE would refuse: TEXT again)
    SEGMENT  PickSegment of this draft                      CONFIRM
    CONFIRM  PickSegment of this draft (another segment)    CONFIRM
             ConfirmBroadcast of this draft and segment     the job is created; the flow ends
A PickSegment or ConfirmBroadcast of any other draft (spent, lapsed, replaced) is answered as stale.
In SEGMENT and CONFIRM a typed text is not the flow's: it goes on to the other handlers.

The segments offered in chat are named shortcuts to the engine's segment JSON (bot/broadcasts/service.py,
rewards/segments.py); the admin API takes any segment.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from bot.broadcasts.service import BroadcastError, Broadcasts
from bot.chat.context import Ctx
from bot.chat.flows import Flow
from bot.chat.postback import PostbackData
from bot.chat.router import MessageEvent, PostbackEvent, Router, postback, text_of, words
from bot.chat.staff import STEP_TTL_SECONDS, is_staff
from handlers.staff_common import (
    WORD_BROADCAST,
    ask_for,
    cancel_button,
    postback_button,
    staff_cancelled,
    staff_text,
)

router = Router("staff_broadcast")
inputs = Router("staff_broadcast_inputs")


class Step(StrEnum):
    """The draft's states; the values are what Redis keeps for a pending step."""
    TEXT = "broadcast_text"
    SEGMENT = "broadcast_segment"
    CONFIRM = "broadcast_confirm"


FLOW = Flow("broadcast", Step, cancelled=staff_cancelled, guard=is_staff, ttl=STEP_TTL_SECONDS)

MAX_TEXT = 5000  # LINE's text message limit
# what staff pick from in chat (quick replies, so at most a handful): a name → the segment JSON
SEGMENTS: dict[str, dict | None] = {
    "all": None,  # every member who has not blocked the account
    "never_referred": {"never_referred": True},
    "pending": {"has_pending_referrals": True},
    "milestone": {"milestone_within_one": True},
    "expiring": {"points_expiring_within_days": 14},
    "birthday": {"birthday_this_month": True},
}


def body_for(segment: str, text: str | None = None) -> dict:
    body: dict = {"text": text} if text is not None else {}
    if SEGMENTS[segment] is not None:
        body["segment"] = SEGMENTS[segment]
    return body


async def audience_size(ctx: Ctx, segment: str) -> int:
    return await Broadcasts(ctx.services).count(SEGMENTS[segment])


DRAFT_JOBS = uuid.UUID("6f1d3c52-0b7e-4a8e-9d0c-5e2b8f4a7c19")  # namespace: a draft's job id


async def create_job(ctx: Ctx, text: str, segment: str, draft: str) -> str:
    """The draft's job: its id derives from the draft, so a redelivered or repeated confirm finds the same job."""
    job_id = uuid.uuid5(DRAFT_JOBS, draft).hex
    job = await Broadcasts(ctx.services).create(body_for(segment, text), by=ctx.user_id, job_id=job_id)  # audited
    return str(job["id"])


# ---- the flow -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PickSegment(PostbackData):
    prefix = "staff.seg"
    draft: str
    segment: str


@dataclass(frozen=True)
class ConfirmBroadcast(PostbackData):
    prefix = "staff.send"
    draft: str
    segment: str


@router.on(MessageEvent, words(*WORD_BROADCAST), is_staff)
async def on_broadcast(ctx: Ctx) -> None:
    await ask_for(ctx, FLOW, Step.TEXT, "staff_broadcast_ask")


@inputs.on(MessageEvent, FLOW.at(Step.TEXT), is_staff)
async def on_text(ctx: Ctx) -> None:
    text = (text_of(ctx) or "").strip()
    if not text or len(text) > MAX_TEXT:
        await ctx.answer(staff_text(ctx, ctx.t("staff_broadcast_bad_text", max=f"{MAX_TEXT:,}"), cancel_button(ctx)))
        return
    try:  # checked as the engine will check it (placeholders, LINE's limits), before any segment is chosen
        Broadcasts(ctx.services).messages({"text": text})
    except BroadcastError as refused:
        await ctx.answer(staff_text(ctx, ctx.t("staff_broadcast_refused", reason=refused.message), cancel_button(ctx)))
        return
    draft = uuid.uuid4().hex[:16]
    await FLOW.go(ctx, Step.SEGMENT, draft=draft, text=text)
    buttons = []
    for segment in SEGMENTS:
        name = ctx.t(f"staff_segment_{segment}", count=f"{await audience_size(ctx, segment):,}")
        buttons.append(postback_button(name, ctx.pack(PickSegment(draft, segment)), name))
    preview = text if len(text) <= 200 else text[:199] + "…"
    await ctx.answer(staff_text(ctx, ctx.t("staff_broadcast_pick", preview=preview), *buttons, cancel_button(ctx)))


async def draft_of(ctx: Ctx, draft: str) -> dict[str, str] | None:
    """The pending draft when it is this one (only SEGMENT and CONFIRM have a draft)."""
    state = await FLOW.stored(ctx, Step.SEGMENT, Step.CONFIRM)
    return state if state is not None and state.get("draft") == draft else None


@router.on(PostbackEvent, postback(PickSegment), is_staff)
async def on_segment(ctx: Ctx, data: PickSegment) -> None:
    state = await draft_of(ctx, data.draft)
    if state is None or data.segment not in SEGMENTS:
        await ctx.answer(staff_text(ctx, ctx.t("staff_broadcast_stale")))
        return
    count = await audience_size(ctx, data.segment)
    await FLOW.go(ctx, Step.CONFIRM, draft=data.draft, text=state["text"], segment=data.segment)
    confirm = postback_button(ctx.t("staff_broadcast_confirm_label", count=f"{count:,}"),
                              ctx.pack(ConfirmBroadcast(data.draft, data.segment)),
                              ctx.t("staff_broadcast_confirm_label", count=f"{count:,}"))
    await ctx.answer(staff_text(ctx, ctx.t("staff_broadcast_confirm", count=f"{count:,}",
                                           segment=ctx.t(f"staff_segment_{data.segment}", count=f"{count:,}")),
                                confirm, cancel_button(ctx)))


@router.on(PostbackEvent, postback(ConfirmBroadcast), is_staff)
async def on_confirm(ctx: Ctx, data: ConfirmBroadcast) -> None:
    state = await draft_of(ctx, data.draft)
    if state is None or state.get("segment") != data.segment:
        await ctx.answer(staff_text(ctx, ctx.t("staff_broadcast_stale")))
        return
    count = await audience_size(ctx, data.segment)
    # a second tap or a retry after a failure answers the same job: true either way
    job_id = await create_job(ctx, state["text"], data.segment, data.draft)
    await FLOW.end(ctx)
    await ctx.answer(staff_text(ctx, ctx.t("staff_broadcast_created", count=f"{count:,}", job=job_id[:8])))
