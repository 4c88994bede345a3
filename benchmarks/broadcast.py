"""Broadcast fan-out benchmark: one broadcast to --members members through the LINE stand-in at a set rate.

Measured against a real Redis (an embedded redis-server started here, or REDIS_URL naming an EMPTY database,
which is flushed) and the in-process LINE stand-in (linesim/platform.py), which enforces its own
multicast limit (--limit, requests in any 1 s on its clock) and checks every request as LINE would.

1. populate   --members members through Program.see (a follow sighting each), 32 at a time.
2. create     Broadcasts.create({"text": ...}): validation, a segment count over every member, the quota check.
3. snapshot   the runner's start: every member's facts read (pipelined, 1,000 a round trip), the segment
              evaluated, the recipients written as batches of 500.
4. send       the batches by multicast at --rate requests/s, --concurrency in flight.
Reported: each phase's seconds, members/s of the whole fan-out (snapshot + send), and the send time as a
ratio to the rate's minimum time (batches / rate): 1.00 would be the limit itself. Every member must have
been reached exactly once, every batch ≤ 500, and the stand-in must report no violation, or the run fails.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as host
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from benchmarks.common import redis_url
from bot.broadcasts.runner import BroadcastRunner
from bot.broadcasts.service import Broadcasts
from bot.config import ASSETS, Settings
from bot.infra.metrics import Metrics
from bot.line.i18n import Texts
from bot.services import open_services
from linesim.platform import Platform, new_user_id
from rewards.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SECRET, TOKEN = "bench-secret", "bench-token"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    line = Platform(secret=SECRET, token=TOKEN, rate_limits={"multicast": args.limit})
    await line.start()
    try:
        async with redis_url() as url:
            settings = Settings(channel_secret=SECRET, channel_access_token=TOKEN, public_base_url="https://bench.test",
                                line_api_base_url=line.api_url, redis_url=url, line_basic_id="@bench",
                                broadcast_rate=args.rate, broadcast_concurrency=args.concurrency,
                                line_retry_base_seconds=0.05)
            async with open_services(settings, Metrics(), load_rules(ASSETS / "rules.toml"),
                                     Texts(ASSETS / "locales")) as services:
                try:
                    return await measure(args, line, services)
                finally:
                    await services.redis.flushdb()
    finally:
        await line.stop()


async def measure(args: argparse.Namespace, line: Platform, services: Any) -> dict[str, Any]:
    program = services.program
    uids = [new_user_id() for _ in range(args.members)]
    at = int(time.time() * 1000)
    t0 = time.perf_counter()
    for start in range(0, len(uids), 32):  # the client's connection pool is bounded
        await asyncio.gather(*(program.see(uid, "follow", at) for uid in uids[start:start + 32]))
    line.followers.extend(uids)
    populate = time.perf_counter() - t0

    t0 = time.perf_counter()
    job = await Broadcasts(services).create({"text": "セール開始のお知らせ"}, by="bench")
    create = time.perf_counter() - t0

    runner = BroadcastRunner(services, "bench")
    snapshot_at: list[float] = []
    original = runner._snapshot

    async def timed_snapshot(job_id: str) -> None:
        await original(job_id)
        snapshot_at.append(time.perf_counter())

    runner._snapshot = timed_snapshot  # type: ignore[method-assign]
    t0 = time.perf_counter()
    await runner.run_due()
    end = time.perf_counter()
    view = await Broadcasts(services).get(job["id"]) or {}
    snapshot, send = snapshot_at[0] - t0, end - snapshot_at[0]

    got: Counter[str] = Counter()
    for call in line.calls:
        if call.endpoint == "multicast" and call.status == 200:
            if len(call.body["to"]) > 500:
                raise SystemExit("a multicast carried more than 500 recipients")
            got.update(call.to)
    if view.get("status") != "done" or set(got) != set(uids) or set(got.values()) != {1} or line.violations:
        raise SystemExit(f"the broadcast did not reach everyone exactly once: {view} {line.violations[:3]}")
    batches = int(view["batches"])
    minimum = batches / args.rate
    return {
        "date": date.today().isoformat(),
        "machine": {"python": sys.version.split()[0], "cpus": os.cpu_count(), "platform": host.platform(),
                    "load_average_at_end": os.getloadavg()[0]},
        "config": {"members": args.members, "rate": args.rate, "limit": args.limit, "concurrency": args.concurrency},
        "populate_seconds": round(populate, 2), "create_seconds": round(create, 2),
        "snapshot_seconds": round(snapshot, 2), "send_seconds": round(send, 2), "batches": batches,
        "minimum_send_seconds": round(minimum, 2), "send_ratio_to_minimum": round(send / minimum, 3),
        "members_per_second": round(args.members / (snapshot + send)),
        "stand_in_max_multicast_per_second": line.max_rate("multicast"),
    }


def markdown(r: dict[str, Any]) -> str:
    c = r["config"]
    return "\n".join([
        "| members | rate (req/s) | batches | snapshot s | send s | minimum s | ratio | members/s | peak req/s |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {c['members']:,} | {c['rate']:g} | {r['batches']} | {r['snapshot_seconds']} | {r['send_seconds']} | "
        f"{r['minimum_send_seconds']} | {r['send_ratio_to_minimum']} | {r['members_per_second']:,} | "
        f"{r['stand_in_max_multicast_per_second']} |"])


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.broadcast", description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=100.0, help="the bot's multicast requests per second")
    parser.add_argument("--limit", type=float, default=200.0, help="the stand-in's limit (LINE: 200/s)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5,000 members")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/")
    args = parser.parse_args()
    if args.quick:
        args.members = 5_000
    result = asyncio.run(run(args))
    print(markdown(result))
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"broadcast-{result['date']}.json"
        path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"\nwritten to {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    cli()
