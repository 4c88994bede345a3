"""What-if benchmark: --facts (100,000) generated program facts replayed under the live rules and under a draft.

The facts are a month of a busy program, in the order a live program would have accepted them: members follow
(their first follow), a third of them with a referrer's code; purchases (a referred friend's first
one completes the referral), refunds, the shop's review events and coffee claims. They are written as
rewards/facts.py keeps them (a hash per day) into a Redis (embedded, or REDIS_URL: an empty database), read
back with Facts.read, and replayed by rewards/whatif.py in two embedded sandboxes side by side (the shipped
rules, and a draft paying referrers double), exactly as `python -m bot whatif` does.

Reported: seconds to read the facts; one replay alone (the live rules: its wall time, its Python CPU and its Redis
server's); then the command's two replays side by side (wall, facts per second, CPU) and the load average.

    .venv/bin/python -m benchmarks.whatif [--facts 100000] [--seed 7]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import tempfile
import time
from datetime import date
from pathlib import Path

from benchmarks.common import redis_url
from bot.config import ASSETS
from bot.infra.event_loop import run as run_loop
from bot.infra.redis_conn import connect
from bot.whatif import compare_apart, embedded_sandbox
from rewards import codes, keys
from rewards.facts import FACTS_KEPT_SECONDS, SEQ, Fact, Facts
from rewards.rules import Rules, load_rules
from rewards.whatif import replay

RESULTS = Path(__file__).resolve().parent / "results"
DAY_MS = 86_400_000


def _uid(n: int) -> str:
    return f"U{n:032x}"


def _code(n: int) -> str:
    """A code of the invite alphabet, one per member (a digit and a letter, as codes.new_code makes them)."""
    digits = []
    for _ in range(codes.LENGTH - 2):
        n, r = divmod(n, len(codes.ALPHABET))
        digits.append(codes.ALPHABET[r])
    return "2A" + "".join(digits)


def generate(count: int, seed: int, start_ms: int, days: int) -> list[Fact]:
    """`count` facts (a few more: a join is two) from `start_ms` over `days`, as a live program would record them."""
    rng = random.Random(seed)
    step = days * DAY_MS // max(count, 1)
    members: list[str] = []
    first_order_due: list[str] = []  # referred friends who have not bought yet
    orders: list[tuple[str, str]] = []  # (order, buyer)
    refunded: set[str] = set()
    facts: list[Fact] = []
    t = start_ms

    def add(key: str, kind: str, **body: object) -> None:
        facts.append(Fact(day="", seq=len(facts), key=key, body={"k": kind, "t": t, **body}))

    while len(facts) < count:
        t += step
        roll = rng.random()
        if roll < 0.2 or len(members) < 20:  # a follow; a third come with a code
            uid = _uid(len(members) + 1)
            add(f"w:{uid}", "w", u=uid, at=t, e=f"ev-{len(facts)}")
            if members and rng.random() < 0.35:
                referrer = int(len(members) * rng.random() ** 2)  # a few members refer many (milestones)
                add(f"a:{uid}:ev-{len(facts)}", "a", u=uid, c=_code(referrer + 1), r=members[referrer],
                    o=f"ev-{len(facts)}")
                first_order_due.append(uid)
            members.append(uid)
        elif roll < 0.75:  # an order: often a referred friend's first
            buyer = first_order_due.pop(rng.randrange(len(first_order_due))) if first_order_due and \
                rng.random() < 0.3 else rng.choice(members)
            order = f"o-{len(facts)}"
            amount = rng.randrange(500, 20_000, 10)
            add(f"p:{order}", "p", u=buyer, o=order, a=amount, at=t)
            orders.append((order, buyer))
        elif roll < 0.8 and orders:  # a refund of an earlier order, whole
            order, buyer = rng.choice(orders)
            if order not in refunded:
                refunded.add(order)
                add(f"r:{order}:", "r", u=buyer, o=order)
        elif roll < 0.92:  # the shop reports a review
            uid = rng.choice(members)
            add(f"e:{uid}:review:rv-{len(facts)}", "e", u=uid, n="review", i=f"rv-{len(facts)}", at=t)
        else:  # a coffee claim (refused when the member has too few points)
            uid = rng.choice(members)
            add(f"c:{uid}:claim:c-{len(facts)}", "c", u=uid, p=300, r="reward:coffee", o=f"claim:c-{len(facts)}")
    return facts


async def store(redis: object, rules: Rules, facts: list[Fact]) -> None:
    """The facts as fact_put.lua keeps them: a hash per shop-time day, op key -> "<seq> <JSON>", and `#`."""
    day_of = Facts(redis, rules, lambda: 0).day_of
    by_day: dict[str, dict[str, str]] = {}
    for f in facts:
        stored = by_day.setdefault(day_of(f.at_ms), {})
        stored[f.key] = f"{len(stored) + 1} {json.dumps(f.body, separators=(',', ':'))}"
    async with redis.pipeline(transaction=False) as pipe:  # type: ignore[attr-defined]
        for day, fields in by_day.items():
            pipe.hset(keys.facts_day(day), mapping={**fields, SEQ: len(fields)})
            pipe.expire(keys.facts_day(day), FACTS_KEPT_SECONDS)
        await pipe.execute()


def draft_text() -> str:
    """The shipped rules with referrers paid double."""
    return re.sub(r"^referrer_points = \d+", "referrer_points = 1000", (ASSETS / "rules.toml").read_text(),
                  count=1, flags=re.M)


async def bench(count: int, seed: int) -> dict[str, object]:
    live_rules = load_rules(ASSETS / "rules.toml")
    days = 30
    end_ms = int(time.time() * 1000)
    facts = generate(count, seed, end_ms - days * DAY_MS, days)
    async with redis_url("shokai-bench-whatif-") as url:
        live = connect(url)
        try:
            await live.flushdb()
            await store(live, live_rules, facts)
            began = time.perf_counter()
            read = await Facts(live, live_rules, lambda: end_ms).read(days + 1, end_ms)
            read_s = time.perf_counter() - began
        finally:
            await live.aclose()
    # one replay alone (the live rules), as one side of the command is
    load_before = os.getloadavg()[0]
    began, cpu_here = time.perf_counter(), time.process_time()
    async with embedded_sandbox() as sandbox:
        await replay(sandbox, live_rules, read, end_ms)
        server = await sandbox.info("cpu")
    one_s, one_cpu = time.perf_counter() - began, time.process_time() - cpu_here
    one_server = float(server["used_cpu_user"]) + float(server["used_cpu_sys"])
    # the command: both, side by side
    began, cpu_here, cpu_children = time.perf_counter(), time.process_time(), _children_cpu()
    with tempfile.TemporaryDirectory() as where:
        draft_path = Path(where) / "draft.toml"
        draft_path.write_text(draft_text(), encoding="utf-8")
        result = await compare_apart(read, ASSETS / "rules.toml", draft_path, end_ms)
    replay_s = time.perf_counter() - began
    here, children = time.process_time() - cpu_here, _children_cpu() - cpu_children
    return {"facts": len(read), "read_seconds": round(read_s, 2),
            "one_replay_seconds": round(one_s, 2), "one_replay_cpu_seconds_python": round(one_cpu, 1),
            "one_replay_cpu_seconds_redis": round(one_server, 1),
            "replay_seconds": round(replay_s, 2), "facts_per_second": round(len(read) / replay_s),
            # CPU seconds: this process (the live rules' replay), and its children (the draft's process and both
            # sandbox Redis servers); on two free cores the replays take about the larger half of their sum
            "cpu_seconds_live_replay": round(here, 1), "cpu_seconds_draft_and_redis": round(children, 1),
            "load_average_before": round(load_before, 1), "load_average_after": round(os.getloadavg()[0], 1),
            "cores": os.cpu_count(), "python": platform.python_version(),
            "live": result["live"].as_json(), "draft": result["draft"].as_json()}


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    out = run_loop(bench(args.facts, args.seed))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"whatif-{date.today().isoformat()}.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print(f"{out['facts']:,} facts: read in {out['read_seconds']} s; one replay alone in {out['one_replay_seconds']} s "
          f"(CPU {out['one_replay_cpu_seconds_python']} s Python, {out['one_replay_cpu_seconds_redis']} s its Redis)")
    print(f"the command: replayed under the live rules and a draft "
          f"(side by side) in {out['replay_seconds']} s ({out['facts_per_second']:,} facts/s); CPU: "
          f"{out['cpu_seconds_live_replay']} s the live replay, {out['cpu_seconds_draft_and_redis']} s the draft's "
          f"and both Redis servers; load average {out['load_average_before']} on {out['cores']} cores")
    for side in ("live", "draft"):
        totals = out[side]
        assert isinstance(totals, dict)
        print(f"  {side}: {totals['points_issued']:,} points (¥{totals['yen_cost']:,}), "
              f"{totals['referrals_completed']:,} referrals, tiers {totals['members_per_tier']}, "
              f"refused {totals['refused']}")


if __name__ == "__main__":
    main()
