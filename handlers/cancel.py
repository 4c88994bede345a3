"""キャンセル / cancel (any word of the cancel intent in assets/words.toml) for every conversation flow, in one
place: it ends whichever flow's step is pending and answers as that flow declares (bot/chat/flows.py); with
nothing pending it says so kindly rather than "I did not understand".

Routed first, so no step takes a cancel word as its input (a broadcast's text, a nickname); no command
route takes one either. A flow with a guard (the staff flows: is_staff) is cancelled only for someone the
guard lets in, asked after the word and the step (free) match; anyone else has nothing of theirs pending
and is told so, and such a step simply lapses.
"""
from __future__ import annotations

from typing import Any

from bot.chat.context import Ctx
from bot.chat.flows import Flow, owners
from bot.chat.router import MessageEvent, Router, keyword
from handlers.common import text


def router_for(*flows: Flow[Any]) -> Router:
    """The one cancel route, for these flows."""
    owner = owners(flows)
    cancel = Router("cancel")

    async def pending_flow(ctx: Ctx) -> dict[str, Flow[Any] | None]:
        flow = owner.get(await ctx.pending_step() or "")
        if flow is not None and flow.guard is not None and not await flow.guard(ctx):
            flow = None
        return {"flow": flow}

    @cancel.on(MessageEvent, keyword("cancel"), pending_flow)
    async def on_cancel(ctx: Ctx, flow: Flow[Any] | None) -> None:
        if flow is None:
            await ctx.answer(text(ctx, ctx.t("nothing_to_cancel")))
            return
        await flow.end(ctx)
        await ctx.answer(flow.cancelled(ctx))

    return cancel
