"""One event on its way through the handlers (`Ctx`), and its delivery: reply while the token is fresh,
else push with a retry key, once per send however often the event is handled (sent markers)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from linebot.v3.webhooks import Event

from bot.chat import conversation
from bot.chat.postback import PostbackData
from bot.infra import keys
from bot.intake.stream import partition_of
from bot.line.client import retry_key
from bot.line.limits import REDELIVERED_REPLY_TOKEN_SECONDS
from bot.services import Services
from rewards.program import Program

log = logging.getLogger(__name__)

REPLY_TOKEN_FRESH_SECONDS = 50  # ours: a margin under LINE's limits.REPLY_TOKEN_SECONDS (about a minute)
SENT_MARKER_TTL = 86_400


@dataclass
class Ctx:
    """One event on its way through the handlers."""

    event: Event
    user_id: str
    event_id: str
    received_at_ms: int
    services: Services
    lang: str = "ja"
    member_is_new: bool = False
    # When the worker passes a list: sent markers still to be written "done", which it writes in the same
    # round trip as the event's finish (or, if the handler fails, before the event is tried again).
    done_marks: list[str] | None = field(default=None, repr=False)
    # The intake partition the event came through (the worker knows it; else it follows from the user id).
    # The sent markers live in its slot, so the worker's finish can write them with the event's ack.
    partition: int | None = None
    _sends: int = field(default=0, repr=False)
    # The user's pending conversation step (bot/chat/conversation.py): the one place it lives during an event.
    # The worker reads it with the sighting (same slot, same script call), so routing filters cost no
    # round trip; a Ctx built without it reads it on first use. Only this user's events change it, and
    # they run one at a time, so it stays true for the event unless a filter ends the step (it says so).
    _step: str | None = field(default=None, repr=False)
    _step_known: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.partition is None:
            self.partition = partition_of(self.user_id, self.services.settings.stream_partitions)

    @property
    def program(self) -> Program:
        return self.services.program

    @property
    def standby(self) -> bool:
        return str(getattr(self.event, "mode", "active")) in ("standby", "EventMode.STANDBY")

    def step_read(self, step: str | None) -> None:
        """The pending step as just read or written for this user."""
        self._step, self._step_known = step, True

    async def pending_step(self) -> str | None:
        if not self._step_known:
            self.step_read(await conversation.pending(self.services.redis, self.user_id))
        return self._step

    tampered: bool = False  # set when postback data carried our prefix but a wrong mac (counted in metrics)

    def t(self, key: str, **values: Any) -> str:
        return self.services.texts.get(self.lang, key, **values)

    def pack(self, data: PostbackData) -> str:
        """Postback data for a button, tamper-checked when it comes back."""
        return data.pack(self.services.postback_key)

    def reply_token_fresh(self) -> bool:
        return self._reply_token_fresh()

    def _reply_token_fresh(self) -> bool:
        now_ms = time.time() * 1000
        return (now_ms - self.received_at_ms < REPLY_TOKEN_FRESH_SECONDS * 1000
                and now_ms - self.event.timestamp < REDELIVERED_REPLY_TOKEN_SECONDS * 1000)

    async def answer(self, *messages: dict) -> None:
        """Answer the user: reply while the token is fresh, else push with a retry key. Once per event.

        Each send of an event has a number; a marker per number makes a re-run of the event (a crash,
        a reclaimed entry) skip what already went out.
        """
        if self.standby:
            log.info("standby: not answering event %s", self.event_id)
            return
        n = self._sends
        self._sends += 1
        redis = self.services.redis
        marker = keys.sent(self.partition or 0, self.event_id, n)
        token = getattr(self.event, "reply_token", None)
        if token and self._reply_token_fresh():
            # read the marker and set "trying" in one round trip (SET … GET, Redis 6.2+): the usual case
            state = await redis.set(marker, "trying", ex=SENT_MARKER_TTL, get=True)
            if state == b"done":  # a re-run: it went out before; put the marker back as it was
                await redis.set(marker, "done", ex=SENT_MARKER_TTL)
                return
            if await self.services.line.reply(token, list(messages)):
                if self.done_marks is not None:  # the usual case: written with the event's finish
                    self.done_marks.append(marker)
                else:
                    await redis.set(marker, "done", ex=SENT_MARKER_TTL)
                return
            if state == b"trying":  # an earlier run used this token: the reply went out then
                await redis.set(marker, "done", ex=SENT_MARKER_TTL)
                return
        elif await redis.get(marker) == b"done":
            return
        await self.services.line.push(self.user_id, list(messages), retry_key(self.event_id, n))
        await redis.set(marker, "done", ex=SENT_MARKER_TTL)
