"""One event on its way through the handlers (`Ctx`), and its delivery: reply while the token is fresh,
else push with a retry key, once per send however often the event is handled (sent markers)."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
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

_BACKGROUND: set[asyncio.Task[None]] = set()
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
    # True when the worker knows no earlier run of this event exists (its stream entry was read for the first
    # time): then no sent marker can exist yet, so answering reads none. A Ctx built elsewhere assumes a re-run.
    first_run: bool = False
    # The user's pace ([chat_pace] in the rules): "normal"; "notice" when this event crosses it (the wait notice
    # goes out instead of its answers); "quiet" while more of a flood waits (answers held, not sent);
    # "latest" for the flood's last event so far (answered by reply only: spam never costs a paid push).
    pace: str = "normal"
    held: int = 0  # answers held back by the pace (counted in metrics by the worker)
    _dots: asyncio.TimerHandle | None = field(default=None, repr=False)
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

    def dots_after(self, seconds: float, show: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `show` (the typing dots) if no answer has gone out `seconds` from now."""
        loop = asyncio.get_running_loop()
        self.calm_dots()

        def start() -> None:
            task = loop.create_task(show())
            _BACKGROUND.add(task)  # kept until done: the event may finish first
            task.add_done_callback(_BACKGROUND.discard)

        self._dots = loop.call_later(seconds, start)

    def calm_dots(self) -> None:
        """The answer is here (or the event is over): no dots any more."""
        if self._dots is not None:
            self._dots.cancel()
            self._dots = None

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

        Each send of an event has a number; a marker per number ("done", written with the event's finish)
        makes a re-run of the event (a crash, a failed handler tried again) skip what already went out. A
        re-run whose reply LINE refuses as a used token takes it as sent: only an earlier run of this event
        can have used it (the token is fresh, and a first run's own retries are settled inside `reply`).
        """
        self.calm_dots()
        if self.standby:
            log.info("standby: not answering event %s", self.event_id)
            return
        if self.pace != "normal":
            if not await self._paced(messages):
                return
            messages = (self._wait_notice(),) if self.pace == "notice" else messages
        n = self._sends
        self._sends += 1
        redis = self.services.redis
        marker = keys.sent(self.partition or 0, self.event_id, n)
        if not self.first_run and await redis.get(marker) == b"done":
            return  # a re-run: it went out before
        token = getattr(self.event, "reply_token", None)
        if token and self._reply_token_fresh():
            if await self.services.line.reply(token, list(messages)) or not self.first_run:
                await self._sent(marker)
                return
        if self.pace == "latest":  # a flood's answer goes by reply or not at all: no paid push for spam
            self.held += 1
            return
        await self.services.line.push(self.user_id, list(messages), retry_key(self.event_id, n))
        await self._sent(marker)  # a push again after a crash meets its retry key (409): sent once all the same

    async def _sent(self, marker: str) -> None:
        if self.done_marks is not None:  # the usual case: written "done" with the event's finish
            self.done_marks.append(marker)
        else:
            await self.services.redis.set(marker, "done", ex=SENT_MARKER_TTL)

    async def _paced(self, messages: tuple[dict, ...]) -> bool:
        """Whether this answer goes out while the user is past their pace: the notice once (its first send
        only), the latest event's answers by reply, nothing for the events between."""
        if self.pace == "quiet" or (self.pace == "notice" and self._sends > 0):
            self.held += 1
            return False
        return True

    def _wait_notice(self) -> dict:
        return {"type": "text", "text": self.t("pace_wait")}
