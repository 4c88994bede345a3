"""Fairness: one user's flood never holds up the others, and spam costs no paid pushes.

Each user has a lane in the worker (bot/intake/worker.py): their events one after another, other users'
lanes side by side, the partition read meanwhile. Before, a partition read 100 entries and took the next
only when all were handled: with LINE answering in ~100 ms, another user behind 600 messages of a flood
waited 53 s and was answered by push. Past the rules' [chat_pace] the flooder is told once to wait; their
answers are held and only the latest goes out, by reply; every event is still handled.
"""
from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from bot.app import METRICS, WORKER
from bot.intake.stream import partition_of
from linesim.platform import Call, Platform, new_user_id, text_of
from tests.support.fixtures import BotWith
from tests.support.harness import converse
from tests.support.rules_helpers import SHIPPED, variant

FLOOD = 300


def _neighbour(user_id: str, partitions: int) -> str:
    """Another user whose events go through the same partition."""
    while True:
        other = new_user_id()
        if partition_of(other, partitions) == partition_of(user_id, partitions):
            return other


def _answers(platform: Platform, user_id: str, since: int = 0) -> list[Call]:
    return [c for c in platform.calls[since:] if c.status == 200 and user_id in c.to
            and c.endpoint in ("reply", "push")]


async def test_another_user_in_the_flooded_partition_is_answered_by_reply_at_once(
        bot_with: BotWith, platform: Platform, tmp_path: Path) -> None:
    # the tests' rules put the pace out of reach: every flood message is answered, one LINE call at a time
    bot = await bot_with()
    flooder = new_user_id()
    other = _neighbour(flooder, bot.services.settings.stream_partitions)
    await converse(platform, flooder, platform.follow(flooder))
    await converse(platform, other, platform.follow(other))
    platform.delay_seconds, platform.delay_jitter_seconds = 0.03, 0.07  # LINE answering in 30–100 ms

    flood = [platform.text(flooder, "ヘルプ") for _ in range(FLOOD)]
    since = len(platform.calls)
    assert set(await asyncio.gather(*(platform.send(e) for e in flood))) == {200}
    await platform.wait_for(lambda: len(_answers(platform, flooder, since)) >= 5)  # the flood is being answered

    mark, sent_at = len(platform.calls), time.monotonic()
    assert await platform.send(platform.text(other, "ヘルプ")) == 200
    answered = await platform.wait_for(lambda: _answers(platform, other, mark), 15)
    waited = answered[0].at - sent_at
    flood_done_then = len(_answers(platform, flooder, since))
    print(f"the other user was answered {waited * 1000:.0f} ms after sending, "
          f"with {flood_done_then} of the flood's {FLOOD} answered")
    assert answered[0].endpoint == "reply"
    # answered while most of the flood still waited its turn (each flood answer takes 30–100 ms)
    assert flood_done_then < FLOOD // 2

    # and the flood is not dropped: every message answered once, by reply
    await platform.wait_for(lambda: len(_answers(platform, flooder, since)) >= FLOOD, 60)
    await bot.idle(timeout=30)
    flood_answers = _answers(platform, flooder, since)
    assert {c.endpoint for c in flood_answers} == {"reply"}
    assert sorted(c.body["replyToken"] for c in flood_answers) == sorted(e["replyToken"] for e in flood)


async def test_past_its_pace_a_flood_is_told_once_to_wait_and_costs_no_push(
        bot_with: BotWith, platform: Platform, tmp_path: Path) -> None:
    shipped = re.search(r"^max_events = (\d+)", SHIPPED, re.M)
    assert shipped
    bot = await bot_with(rewards_config=variant(tmp_path, chat_pace__max_events=shipped.group(1)))
    pace = bot.services.program.rules.pace_max_events
    flooder, calm = new_user_id(), new_user_id()
    await converse(platform, flooder, platform.follow(flooder))
    since = len(platform.calls)
    start = int(time.time() * 1000)
    flood = [platform.text(flooder, "ヘルプ", timestamp=start + i) for i in range(FLOOD)]
    for at in range(0, FLOOD, 100):  # a script's messages, as LINE batches them: 100 events a webhook
        assert await platform.send(*flood[at:at + 100]) == 200
    await converse(platform, calm, platform.follow(calm))
    await bot.idle(timeout=30)

    answers = _answers(platform, flooder, since)
    said = [text_of([m]) for c in answers for m in c.body["messages"]]
    waits = [s for s in said if "お待ちください" in s]
    assert len(waits) == 1, said[:30]  # told once, kindly
    assert {c.endpoint for c in answers} == {"reply"}, "a flood never costs a paid push"
    assert len(answers) < pace + 1 + FLOOD // 10, len(answers)  # the rest held, not sent one by one
    # the flood's very last message is answered: it is the latest when the lane runs dry
    assert answers[-1].body["replyToken"] == flood[-1]["replyToken"]
    assert len(platform.said_to(calm)) >= 1  # the calm user is welcomed as usual

    worker, metrics = bot.app[WORKER], bot.app[METRICS]
    # every event handled (and counted), none lost; the counter moves just after the entry leaves the stream
    assert await platform.wait_for(lambda: worker.handled == FLOOD + 2, 5), worker.handled
    held = metrics.answers_held._value.get()  # type: ignore[attr-defined]
    assert held == FLOOD - len(answers)
