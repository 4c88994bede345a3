"""Multi-step conversations as explicit state tables, in the spirit of python-telegram-bot's ConversationHandler.

A `Flow` is declared once, in its own handler module, with its states as a StrEnum whose values are the step
strings bot/chat/conversation.py keeps in Redis (so they never change: a user mid-flow keeps going across a
deploy). Next to it the module writes its table: what each state accepts (a text, a postback) and what
follows. Its routes say the same in code: `flow.at(State.X)` is the filter "this user is in state X" (free:
the step comes with the member's sighting, see `Ctx.pending_step`), and a handler moves the flow on with
`flow.go(ctx, State.Y, **data)` or ends it with `flow.end(ctx)`.

Cancel is no flow's business: handlers/cancel.py answers キャンセル / cancel for every flow in one place,
with the answer the flow declares (`cancelled`). One step is pending per user, whichever flow it belongs to,
so starting any flow replaces, and ending any flow ends, whatever was pending.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from bot.chat import conversation
from bot.chat.context import Ctx

S = TypeVar("S", bound=StrEnum)
Answer = Callable[[Ctx], dict[str, Any]]
Guard = Callable[[Ctx], Awaitable[bool]]


@dataclass(frozen=True)
class Flow(Generic[S]):
    name: str
    states: type[S]
    cancelled: Answer  # what キャンセル / cancel answers in any of this flow's states
    guard: Guard | None = None  # who may be in the flow (the staff flows: is_staff); routes put it last
    ttl: int = conversation.STEP_TTL_SECONDS  # an abandoned flow lapses after this

    def at(self, *states: S) -> Callable[[Ctx], Any]:
        """Filter: the user is in one of these states. No round trip: the step came with the sighting."""
        async def check(ctx: Ctx) -> bool:
            return await ctx.pending_step() in states

        return check

    async def stored(self, ctx: Ctx, *states: S) -> dict[str, str] | None:
        """The pending step and its data when it is one of these states (a postback checks its draft)."""
        if await ctx.pending_step() not in states:
            return None
        state = await conversation.state(ctx.services.redis, ctx.user_id)
        return state if state.get("step") in states else None

    async def go(self, ctx: Ctx, state: S, **data: str) -> None:
        """Move to `state` with its data; it replaces whatever step was pending (this flow's or another's)."""
        await conversation.begin(ctx.services.redis, ctx.user_id, state.value, ttl=self.ttl, **data)
        ctx.step_read(state.value)

    async def end(self, ctx: Ctx) -> bool:
        """End the pending step (one per user: whichever flow's); True when one was pending."""
        ended = await conversation.end(ctx.services.redis, ctx.user_id)
        ctx.step_read(None)
        return ended


def owners(flows: Iterable[Flow[Any]]) -> dict[str, Flow[Any]]:
    """Step string -> its flow. A step in two flows would make cancel ambiguous: refused at start-up."""
    owner: dict[str, Flow[Any]] = {}
    for flow in flows:
        for state in flow.states:
            if owner.setdefault(state.value, flow) is not flow:
                raise ValueError(f"step {state.value!r} is in both {owner[state.value].name} and {flow.name}")
    return owner
