"""Faults all at once: every event sent 1–3 times in a shuffled order, `python -m bot worker` processes
SIGKILLed at random (seeded) moments and restarted, and the Redis server restarted once (append-only on).

Afterwards: every member's balance is the sum of their ledger, every referral is rewarded exactly once on
each side, every event the webhook acknowledged (200) was queued and handled, and nobody was welcomed twice.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from bot.infra import keys
from bot.infra.redis_conn import EmbeddedRedis
from linesim.platform import Platform, new_user_id
from rewards import keys as rkeys
from tests.support.harness import make_settings, start_bot
from tests.support.processes import stop_processes, worker_process

pytestmark = pytest.mark.slow
SEED = 6
PAIRS = 6
PARTITIONS = 8  # what `python -m bot worker` uses by default


def interleave(rng: random.Random, per_user: list[list[dict]]) -> list[dict]:
    """A random merge that keeps each user's own events in order (as LINE sends them), each event 1–3 times;
    a repeat comes after its original, at a random later point (a redelivery)."""
    queues = [list(events) for events in per_user]
    out: list[dict] = []
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        event = queue.pop(0)
        out.append(event)
        for _ in range(rng.randint(0, 2)):
            out.insert(rng.randint(len(out), len(out) + 3), event)
    return out


async def test_duplicates_shuffles_killed_workers_and_a_redis_restart_lose_and_repeat_nothing(
        platform: Platform) -> None:
    rng = random.Random(SEED)
    with tempfile.TemporaryDirectory(prefix="shokai-chaos-") as data:
        server = EmbeddedRedis(Path(data)).start()
        bot = await start_bot(make_settings(server.url, platform, stream_partitions=PARTITIONS), platform,
                              run_worker=False)
        workers: list[subprocess.Popen] = []
        acknowledged: list[str] = []
        kills: list[int] = []

        def start_worker() -> None:
            workers.append(worker_process(server.url, platform.api_url))

        def kill_worker() -> None:
            alive = [w for w in workers if w.poll() is None]
            if alive:
                victim = rng.choice(alive)
                kills.append(len(platform.calls))
                os.killpg(victim.pid, signal.SIGKILL)
                victim.wait(10)

        async def deliver(event: dict) -> None:
            """As LINE does: until the bot answers 200 (503 while Redis is away)."""
            for _ in range(300):
                status = await platform.send(event)
                if status == 200:
                    acknowledged.append(event["webhookEventId"])
                    return
                assert status == 503, status
                await asyncio.sleep(0.05)
            raise AssertionError("the webhook never took the event back")

        try:
            platform.delay_seconds = 0.03  # LINE answering slowly widens the window a kill lands in
            program = bot.services.program
            referrers = [new_user_id() for _ in range(PAIRS)]
            friends = [new_user_id() for _ in range(PAIRS)]
            codes = [await program.invite_code(a) for a in referrers]
            per_user = [[platform.follow(a), platform.text(a, "ポイント")] for a in referrers]
            per_user += [[platform.follow(b), platform.text(b, f"招待コード {code} で登録します"),
                          platform.text(b, "ポイント")] for b, code in zip(friends, codes, strict=True)]
            stream = interleave(rng, per_user)
            restart_at = rng.randrange(len(stream) // 3, 2 * len(stream) // 3)

            delivered = asyncio.Event()

            async def killer() -> None:
                """Two workers at a time; once they are at work (LINE hears from them), one of them is SIGKILLed
                at a random moment and a new one started."""
                while not delivered.is_set():
                    mark = len(platform.calls)
                    await platform.wait_for(lambda m=mark: len(platform.calls) > m or delivered.is_set(), 10)
                    await asyncio.sleep(rng.uniform(0.02, 0.4))
                    kill_worker()
                    start_worker()

            start_worker()
            start_worker()
            chaos = asyncio.create_task(killer())
            for n, event in enumerate(stream):
                if n == restart_at:  # Redis goes away and comes back with its append-only file
                    server.stop()
                    await asyncio.sleep(0.3)
                    server.start()
                await deliver(event)
                await asyncio.sleep(rng.random() * 0.1)
            await asyncio.sleep(1.0)  # a kill or two while the workers catch up
            delivered.set()
            await chaos
            start_worker()
            await bot.idle(timeout=60)

            # the friends' first purchases, each reported once or twice, while a worker dies once more
            for i, b in enumerate(friends):
                for _ in range(rng.randint(1, 2)):
                    status, answer = await bot.admin("POST", "/api/v1/conversions",
                                                     {"order_id": f"chaos-{i}", "user_id": b, "amount": 1000})
                    assert status == 200, answer
                if i == PAIRS // 2:
                    kill_worker()
                    start_worker()
            await bot.idle(timeout=60)
            await asyncio.sleep(0.5)

            redis = bot.services.redis
            # nothing acknowledged is missing: queued (its seen key survived the restart) and handled
            for event_id in set(acknowledged):
                partition = [p for p in range(PARTITIONS) if await redis.exists(keys.seen(p, event_id))]
                assert len(partition) == 1, f"acknowledged event {event_id} was lost"
            for p in range(PARTITIONS):
                assert (await redis.xpending(keys.stream(p), keys.GROUP))["pending"] == 0
                assert await redis.xlen(keys.dead(p)) == 0
            # balances add up, referrals paid exactly once on each side
            for uid in referrers + friends:
                member = await program.member(uid)
                assert member is not None
                ledger = await program.ledger(uid)
                assert member.points + member.pending_points - member.debt == sum(e["delta"] for e in ledger), uid
                ops = [e.get("op") for e in ledger]
                assert len(ops) == len(set(ops)), f"an operation was written twice for {uid}: {ops}"
                assert ops.count("signup") == 1
            for a, b in zip(referrers, friends, strict=True):
                assert [e["op"] for e in await program.ledger(a)].count(f"referral:{b}") == 1
                assert [e["op"] for e in await program.ledger(b)].count("referral:friend") == 1
                ref = await redis.hgetall(rkeys.referral(b))
                assert ref[b"referrer"].decode() == a and ref[b"status"] == b"completed"
                view = await program.member(a)
                assert view is not None and view.referrals.completed == 1
            # nobody was welcomed twice, whatever was redelivered or re-run after a kill
            for uid in referrers + friends:
                welcomes = [m for m in platform.said_to(uid) if "友だち追加ありがとう" in m.get("text", "")]
                assert len(welcomes) == 1, f"{uid}: {len(welcomes)} welcomes"
            assert platform.violations == []
            assert len(stream) > len(set(e["webhookEventId"] for e in stream)), "the seed should give repeats"
            assert len([k for k in kills if k > 0]) >= 2, f"no kill landed while the workers were at work: {kills}"
            print(f"chaos: {len(stream)} deliveries of {len(set(acknowledged))} events, {len(kills)} kills at "
                  f"LINE calls {kills}, Redis restarted before delivery {restart_at}")
        finally:
            stop_processes(workers)
            await bot.http.close()
            await bot.runner.cleanup()
            server.stop()
