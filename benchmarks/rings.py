"""The ring detector's precision and recall on a generated program (benchmarks/ring_program.py).

    python -m benchmarks.rings [--members 10000] [--seed 1] [--redis]

It feeds the detector's input (rewards/rings.py Member) directly rather than driving the bot through webhooks:
what it measures is the judgement, and 10,000 members through webhooks would measure the plumbing for minutes
on a shared machine. With --redis it also writes the program into Redis as the bot keeps it (an embedded
redis-server, or REDIS_URL: an empty database) and runs the worker's whole-graph pass (RingWatch.scan) on it:
the same groups must come out, and it times the pass. How the bot's own events become those keys is tested on
the real program in tests/test_rings.py.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import time
from collections import Counter

from benchmarks.common import redis_url
from benchmarks.ring_program import Program, generate, store
from bot.config import ASSETS
from bot.infra.redis_conn import connect
from rewards.counters import Counters
from rewards.ring_watch import RingWatch
from rewards.rings import Group, Settings, detect, flagged, measure
from rewards.rules import load_rules


async def whole_graph_pass(program: Program, settings: Settings) -> tuple[list[Group], float, float]:
    """The program stored as the bot keeps it, then RingWatch.scan(): (groups, seconds to store, seconds to scan)."""
    rules = dataclasses.replace(load_rules(ASSETS / "rules.toml"), rings=settings)
    async with redis_url("shokai-bench-rings-") as url:
        client = connect(url)
        try:
            await client.flushdb()
            began = time.perf_counter()
            await store(client, program)
            stored = time.perf_counter() - began
            now = lambda: 1_900_000_000_000  # noqa: E731 (after every generated event)
            watch = RingWatch(client, rules, now, counters=Counters(client, rules, now))
            began = time.perf_counter()
            groups = await watch.scan()
            return groups, stored, time.perf_counter() - began
        finally:
            await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis", action="store_true", help="also run the worker's whole-graph pass on Redis")
    args = parser.parse_args()
    logging.getLogger("rewards.ring_watch").setLevel(logging.ERROR)  # a line per flagged group otherwise
    settings = Settings(mode="flag")
    program = generate(args.members, args.seed)
    began = time.perf_counter()
    groups = detect(program.members.values(), settings)
    took = time.perf_counter() - began
    result = measure(groups, set(program.planted), settings)
    caught = Counter(program.planted[uid] for g in flagged(groups, settings) for uid in g.members
                     if uid in program.planted)
    print(f"members {len(program.members)}, planted in rings {len(program.planted)}, "
          f"groups {len(groups)}, flagged {len(flagged(groups, settings))} ({took:.2f} s)")
    print(f"precision {result.precision:.3f}  recall {result.recall:.3f}  "
          f"(tp {result.true_positives}, fp {result.false_positives}, fn {result.false_negatives})")
    for shape, total in sorted(Counter(program.planted.values()).items()):
        print(f"  {shape:7} {caught[shape]}/{total}")
    honest = Counter(program.honest_kind.get(uid, "plain") for uid in result.flagged_honest)
    print("  honest flagged: " + (", ".join(f"{k} {n}" for k, n in sorted(honest.items())) or "none"))
    if args.redis:
        found, stored, scanned = asyncio.run(whole_graph_pass(program, settings))
        same = [g.members for g in found] == [g.members for g in flagged(groups, settings)]
        print(f"on Redis: stored in {stored:.1f} s, whole-graph pass {scanned:.1f} s, {len(found)} groups flagged, "
              f"{'the same' if same else 'NOT the same'} as fed directly")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
