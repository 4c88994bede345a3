"""Routing in the spirit of aiogram: filters decide (and may hand parsed data to the handler), handlers act.

A `Router` per handler module; `handlers.build_router()` includes them in one place, in order. The first
route whose event type and filters all match handles the event.
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from linebot.v3.webhooks import (
    FollowEvent,
    MessageEvent,
    PostbackEvent,
    TextMessageContent,
    UnfollowEvent,
)

from bot.chat import keywords
from bot.chat.context import Ctx
from bot.chat.postback import PostbackData, TamperedData
from rewards import codes

log = logging.getLogger(__name__)


Filter = Callable[[Ctx], Any]
Handler = Callable[..., Awaitable[None]]


@dataclass
class Route:
    event_type: type
    filters: tuple[Filter, ...]
    handler: Handler


class Router:
    def __init__(self, name: str):
        self.name = name
        self.routes: list[Route] = []

    def on(self, event_type: type, *filters: Filter) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(Route(event_type, filters, handler))
            return handler

        return register

    def include(self, *routers: Router) -> None:
        for router in routers:
            self.routes.extend(router.routes)

    async def dispatch(self, ctx: Ctx) -> str | None:
        """Run the first matching handler; returns its name, or None when nothing matched."""
        for route in self.routes:
            if not isinstance(ctx.event, route.event_type):
                continue
            data: dict[str, Any] = {}
            for check in route.filters:
                result = check(ctx)
                if inspect.isawaitable(result):  # a filter may ask Redis (is_staff, a pending step)
                    result = await result
                if not result:
                    break
                if isinstance(result, dict):
                    data.update(result)
            else:
                await route.handler(ctx, **data)
                return route.handler.__module__ + "." + route.handler.__name__
        return None


# ---- filters ---------------------------------------------------------------------------
def text_of(ctx: Ctx) -> str | None:
    if isinstance(ctx.event, MessageEvent) and isinstance(ctx.event.message, TextMessageContent):
        return str(ctx.event.message.text)
    return None


def words(*choices: str) -> Filter:
    """The text is one of the words, in any width or case, kana, spacing or trailing punctuation."""
    normal = {keywords.fold(w) for w in choices}

    def check(ctx: Ctx) -> bool:
        text = text_of(ctx)
        return text is not None and keywords.fold(text) in normal

    return check


def keyword(intent: str) -> Filter:
    """The text names this intent of the word table (assets/words.toml), forgivingly (bot/chat/keywords.py)."""
    keywords.table().means("", intent)  # an intent missing from the table fails at start-up, not at the first text

    def check(ctx: Ctx) -> bool:
        text = text_of(ctx)
        return text is not None and keywords.table().means(text, intent)

    return check


def carries_code(ctx: Ctx) -> dict[str, str] | None:
    text = text_of(ctx)
    code = codes.find_code(text[:keywords.MAX_MATCH_CHARS]) if text else None
    return {"code": code} if code else None


def is_text(ctx: Ctx) -> bool:
    return text_of(ctx) is not None


def postback(kind: type[PostbackData]) -> Filter:
    """The postback's data unpacked as `kind` (handed to the handler as `data`). Data with kind's prefix
    but a wrong mac is refused here, logged and left to the fallback's kind answer."""
    def check(ctx: Ctx) -> dict[str, PostbackData] | None:
        if not isinstance(ctx.event, PostbackEvent):
            return None
        try:
            data = kind.unpack(ctx.services.postback_key, ctx.event.postback.data)
        except TamperedData as refused:
            log.warning("refused tampered postback from %s: %s", ctx.user_id, refused)
            ctx.tampered = True
            return None
        return {"data": data} if data is not None else None

    return check


__all__ = ["Router", "words", "keyword", "carries_code", "is_text", "postback", "text_of",
           "FollowEvent", "UnfollowEvent", "MessageEvent", "PostbackEvent"]
