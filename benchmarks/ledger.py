"""Ledger benchmark: how fast points move, and what one member costs in Redis memory.

Measured against a real Redis: an embedded redis-server started here with the bot's own settings
(bot/infra/redis_conn.py: append-only, fsync every second), or REDIS_URL, which must name an EMPTY database
because the benchmark flushes it.

1. earn    Program.apply with a positive delta and a fresh op id, spread over 1,000 members, at asyncio
           concurrency 1 and 50. One call = the ledger script (apply_points.lua) + the ZADD that schedules
           expiry.
2. spend   Program.spend (a claim of 1 point) on the same members: the ledger script taking from lots.
3. replay  Program.apply with an op id already written: the idempotent no-op that a redelivered event costs.
   Each runs for --seconds and reports calls/s, latency per call (p50, p99), and CPU per call: the
   server's (and how much of it ran in Lua) and this client's, which shows which of the two is the limit.
   Every answer is checked (written, spent, no-op), so a ledger that misbehaves stops the run.
4. memory  --members members (100,000), each with a follow sighting, signup points, an invite code and
           10 more ledger entries (8 earns and 2 spends, interleaved); every 5th member is referred by the
           one before (attribute, then a first order that completes the referral, paying both sides).
           Reported: used_memory delta / members (target <= 1 KiB), and MEMORY USAGE of a sample of
           members' keys per kind of key, to show what dominates.
           How they are populated: the full Python path makes ~150-230 members/s here (~30 round trips
           and 12 scripts each), so 100,000 would take 8-10 minutes. The first --organic (10,000) go
           through Program exactly as the bot calls it, 50 at a time. The rest are copies of them, written
           with `redis-cli --pipe`: every key again with the user ids and invite codes replaced by others
           of the same length, so the copies have the same keys, fields, lengths and encodings. This is
           checked on a sample (type, encoding and every element's length equal), and the organic
           members' own bytes per member are reported beside the total.

Why: the ledger runs as Lua inside one Redis, so its throughput and footprint set how many members and
events one Redis serves. These figures are the baseline to compare changes against.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

import redis as redis_py

from bot.infra.redis_conn import EmbeddedRedis, connect, redis_server_binary
from rewards import buckets, codes, keys, ledger_codec
from rewards.program import Program
from rewards.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 1024  # bytes per member
POOL = 1000  # members the throughput runs spread over
SHAPE = "EESEEEESEE"  # a member's 10 entries after signup: E earn, S spend
TAG0 = b"U00000000"  # how every organic user id starts; a copy's starts U<block, 8 hex>
CODES_KEY = keys.codes("").encode()  # every invite code bucket's name starts so
CODE_FIELD = keys.field("code").encode()  # the member's invite code, in their hash
MEMBERS_KEY = keys.MEMBER_BUCKETS[0].rsplit(":", 1)[0].encode() + b":"  # and every member list bucket's
DUE_KEY = keys.DUE_BUCKETS[0].rsplit(":", 1)[0].encode() + b":"  # and every due schedule bucket's
ALPHABET = codes.ALPHABET.encode()


def uid(block: int, i: int) -> str:
    """A LINE-shaped user id (U + 32 hex). Block 0 holds the organic members, blocks 1… their copies."""
    return f"U{block:08x}{i:024x}"


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"ledger did not do what the benchmark expects: {what}")


def now_ms() -> int:
    return int(time.time() * 1000)


async def each(items: Iterable[Any], fn: Callable[[Any], Awaitable[Any]], concurrency: int = 50) -> None:
    """fn over items, at most `concurrency` at a time."""
    it = iter(items)

    async def worker() -> None:
        for item in it:
            await fn(item)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def costs(r: Any) -> tuple[float, float, float]:
    """Redis's CPU seconds, the seconds its Lua scripts ran, and this process's CPU seconds, so far."""
    cpu, stats = await r.info("cpu"), await r.info("commandstats")
    lua = sum(v["usec"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval")) / 1e6
    return float(cpu["used_cpu_user"] + cpu["used_cpu_sys"]), lua, time.process_time()


# ---- 1-3: throughput ------------------------------------------------------------------------
async def timed(r: Any, seconds: float, concurrency: int, op: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            await op()
            latencies.append(time.perf_counter() - t)

    before, start = await costs(r), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, after = time.perf_counter() - start, await costs(r)
    n, q = len(latencies), statistics.quantiles(latencies, n=100)
    redis_cpu, lua, client_cpu = ((a - b) / n * 1e6 for a, b in zip(after, before, strict=True))
    return {"concurrency": concurrency, "calls": n, "ops_per_s": round(n / elapsed),
            "p50_ms": round(q[49] * 1000, 3), "p99_ms": round(q[98] * 1000, 3),
            "redis_cpu_us_per_op": round(redis_cpu, 1), "lua_us_per_op": round(lua, 1),
            "client_cpu_us_per_op": round(client_cpu, 1)}


async def throughput(program: Program, r: Any, seconds: float) -> list[dict[str, Any]]:
    pool = [uid(0xBE, i) for i in range(POOL)]
    earned, spent, replayed = itertools.count(), itertools.count(), itertools.count()
    written = 0  # earn ops written: op earn:n belongs to pool[n % POOL]
    await each(pool, lambda u: program.apply(u, "fund", 10**6, "adjustment", "bench", now_ms()))  # for spends

    async def earn() -> None:
        n = next(earned)
        w, _ = await program.apply(pool[n % POOL], f"earn:{n}", 10, "event", "events.review", now_ms())
        expect(w == 1, f"earn:{n} written")

    async def spend() -> None:
        n = next(spent)
        w, _ = await program.spend(pool[n % POOL], f"claim:{n}", 1, "coffee")
        expect(w == 1, f"claim:{n} spent")

    async def replay() -> None:
        n = next(replayed) % written
        w, _ = await program.apply(pool[n % POOL], f"earn:{n}", 10, "event", "events.review", now_ms())
        expect(w == 0, f"earn:{n} replayed as a no-op")

    rows = []
    for name, op in (("earn", earn), ("spend (claim)", spend), ("replay (same op)", replay)):
        for concurrency in (1, 50):
            row = {"operation": name, **await timed(r, seconds, concurrency, op)}
            log(f"{name} x{concurrency}: {row['ops_per_s']} ops/s")
            rows.append(row)
        if name == "earn":
            written = next(earned)
    return rows


# ---- 4: memory ------------------------------------------------------------------------------
async def organic_member(program: Program, u: str, at: int) -> None:
    await program.see(u, "follow", at)
    expect(await program.welcome_points(u, at) > 0, "signup points paid")
    await program.invite_code(u)
    for j, step in enumerate(SHAPE):
        if step == "E":
            rule = ("events.review", "events.share")[j % 2]
            w, _ = await program.apply(u, f"event:{rule[7:]}:{j:06d}", 10 + 7 * j, "event", rule, at)
        else:
            w, _ = await program.spend(u, f"claim:coffee:{j}", 50, "coffee")
        expect(w == 1, f"{u} entry {j} written")


async def referred(program: Program, friend: str, referrer: str) -> None:
    attribution = await program.attribute(friend, await program.invite_code(referrer), f"msg:{friend}")
    purchase = await program.record_purchase(f"order-{friend}", friend, 3000)
    expect(attribution.ok and purchase.completed_referral_of == referrer, f"{friend}'s referral completed")


async def read(r: Any, names: list[Any]) -> tuple[list[str], list[Any]]:
    """Each key's type and whole value (hash: dict, list and set: items, zset: (member, score) pairs)."""
    async with r.pipeline(transaction=False) as pipe:
        for n in names:
            pipe.type(n)
        types = [t.decode() for t in await pipe.execute()]
    async with r.pipeline(transaction=False) as pipe:
        for n, t in zip(names, types, strict=True):
            if t == "hash":
                pipe.hgetall(n)
            elif t == "list":
                pipe.lrange(n, 0, -1)
            elif t == "zset":
                pipe.zrange(n, 0, -1, withscores=True)
            elif t == "set":
                pipe.smembers(n)
            else:
                pipe.get(n)
        return types, await pipe.execute()


async def shapes(r: Any, names: list[str]) -> list[Any]:
    """What a key's memory depends on: its type, encoding, and the length of every element."""
    types, values = await read(r, names)
    async with r.pipeline(transaction=False) as pipe:
        for n in names:
            pipe.object("encoding", n)
        encodings = await pipe.execute()

    def lengths(t: str, v: Any) -> Any:
        if t == "hash":
            return sorted((len(f), len(x)) for f, x in v.items())
        if t == "zset":
            return sorted((len(m), score) for m, score in v)
        return sorted(map(len, v)) if t in ("list", "set") else len(v or b"")

    return [(t, enc, lengths(t, v)) for t, enc, v in zip(types, encodings, values, strict=True)]


def resp(*args: bytes) -> bytes:
    """One command in Redis's wire protocol."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def redis_cli() -> str:
    bundled = Path(redis_server_binary()).with_name("redis-cli")
    return str(bundled) if bundled.exists() else shutil.which("redis-cli") or "redis-cli"


async def copy_members(r: Any, url: str, blocks: int) -> None:
    """Blocks 1..blocks-1: every organic key written again with the user ids and invite codes replaced by
    others of the same length. Written with `redis-cli --pipe` (Redis's mass insertion): through the
    Python client the copies alone would take longer than the rest of the benchmark."""
    names = [n async for n in r.scan_iter(match="shokai:*", count=1000)]
    types, values = await read(r, names)
    numbers: dict[bytes, int] = {}

    def code(c: bytes) -> bytes:
        """An organic invite code's stand-in: 6 characters from its number, then "##", the block's two."""
        n = numbers.setdefault(c, len(numbers))
        return bytes(ALPHABET[n >> 5 * k & 31] for k in range(6)) + b"##"

    def pairs(items: Iterable[tuple[Any, Any]]) -> list[bytes]:
        return [x if isinstance(x, bytes) else repr(x).encode() for pair in items for x in pair]

    commands = []
    listed: list[bytes] = []  # the member list's and the due schedule's entries: a copy goes to its own bucket
    due: list[tuple[bytes, float]] = []
    for name, t, value in zip(names, types, values, strict=True):
        if name.startswith(MEMBERS_KEY):
            listed.extend(value)
        elif name.startswith(DUE_KEY):
            due.extend(value)
        elif name.startswith(CODES_KEY):  # each code again, in the bucket of its stand-in
            for c, owner in value.items():
                commands.append(resp(b"HSET", keys.codes(code(c).decode()).encode(), code(c), owner))
        elif t == "zset":  # a member's held lots, or the board (it gains the copies)
            commands.append(resp(b"ZADD", name, *pairs((s, m) for m, s in value)))
        elif TAG0 not in name:
            continue  # the shared counters stay as they are
        elif t == "hash":
            commands.append(resp(b"HSET", name, *pairs((f, code(v) if f == CODE_FIELD else v)
                                                       for f, v in value.items())))
        elif t == "list":
            commands.append(resp(b"RPUSH", name, *value))
        else:
            commands.append(resp(b"SET", name, value))
    bucketed = []
    for block in range(1, blocks):
        tag = b"U%08x" % block
        for u in listed:
            copy = u.replace(TAG0, tag)
            bucketed.append(resp(b"HSET", keys.members(copy.decode()).encode(), copy, b""))
        for u, score in due:
            copy = u.replace(TAG0, tag)
            bucketed.append(resp(b"ZADD", keys.due(copy.decode()).encode(), repr(score).encode(), copy))
    await asyncio.to_thread(mass_insert, url, b"".join(commands), blocks, b"".join(bucketed))


def mass_insert(url: str, template: bytes, blocks: int, exact: bytes = b"") -> None:
    cli = subprocess.Popen([redis_cli(), "-u", url, "--pipe"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
    assert cli.stdin
    for block in range(1, blocks):
        tag = bytes([ALPHABET[block >> 5], ALPHABET[block & 31]])
        cli.stdin.write(template.replace(TAG0, b"U%08x" % block).replace(b"##", tag))
    cli.stdin.write(exact)
    out, _ = cli.communicate()
    expect(cli.returncode == 0 and b"errors: 0," in out, f"redis-cli --pipe wrote the copies: {out.decode()}")


def member_keys(u: str) -> dict[str, str]:
    """kind of key -> key name, for everything one member owns (their invite code sits in a shared bucket)."""
    return {"member hash (record, entries with their lots, op ids, lot queue, caps)": keys.member(u),
            "hold zset": keys.hold_queue(u),
            "orders hash": keys.orders(u),
            "referral hash": keys.referral(u), "referrals-made hash": keys.referrals_made(u),
            "order owner string": keys.order_owner(f"order-{u}")}


async def sizes(r: Any, names: list[str]) -> list[int]:
    async with r.pipeline(transaction=False) as pipe:
        for n in names:
            pipe.memory_usage(n)
        return [s or 0 for s in await pipe.execute()]


async def settled_memory(r: Any) -> int:
    """used_memory once no AOF rewrite is running and the once-a-second fsync has emptied its buffer."""
    while True:
        p = await r.info("persistence")
        if not (p["aof_rewrite_in_progress"] or p["aof_rewrite_scheduled"]):
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.2)
    return int((await r.info("memory"))["used_memory"])


async def memory(program: Program, r: Any, url: str, members: int, organic: int) -> dict[str, Any]:
    await r.flushdb()
    before = await settled_memory(r)
    at, start = now_ms(), time.perf_counter()
    await each(range(organic), lambda i: organic_member(program, uid(0, i), at))
    await each(range(4, organic, 5), lambda i: referred(program, uid(0, i), uid(0, i - 1)))
    organic_s = time.perf_counter() - start
    organic_bytes = await settled_memory(r) - before
    log(f"{organic} members through Program in {organic_s:.1f}s")
    start = time.perf_counter()
    await copy_members(r, url, members // organic)
    log(f"{members - organic} copies in {time.perf_counter() - start:.1f}s")
    used = await settled_memory(r) - before

    # a copy must have its original's shape
    names: list[str] = []
    copies: list[str] = []
    for i in range(0, organic, max(1, organic // 200)):
        for u, out in ((uid(0, i), names), (uid(1, i), copies)):
            out.extend(member_keys(u).values())
    expect(await shapes(r, names) == await shapes(r, copies),
           "every copied key has its original's type, encoding and element lengths")
    copy_ratio = sum(await sizes(r, copies)) / sum(await sizes(r, names))
    expect(await buckets.member_count(r) == members, f"{members} members")

    # what one member's keys weigh, averaged over a sample spread over organic members and copies
    step = max(1, members // 1000)
    step += step % 5 == 0  # not a multiple of 5, so every shape of member is in the sample
    sample = [uid(i // organic, i % organic) for i in range(0, members, step)]
    per_kind: Counter[str] = Counter()
    for u in sample:
        ks = member_keys(u)
        per_kind.update(dict(zip(ks, await sizes(r, list(ks.values())), strict=True)))
    breakdown = {k: round(v / len(sample)) for k, v in per_kind.most_common() if v}
    for names_, label in ((keys.MEMBER_BUCKETS, "member list buckets (shared)"),
                          (keys.DUE_BUCKETS, "due zset buckets (shared)")):
        async with r.pipeline(transaction=False) as pipe:
            for name in names_:
                pipe.memory_usage(name, samples=0)
            breakdown[label] = round(sum(s or 0 for s in await pipe.execute()) / members)
    code_buckets = [n async for n in r.scan_iter(match=keys.codes("") + "*", count=1000)]
    breakdown["invite code buckets (shared)"] = round(sum(await sizes(r, code_buckets)) / members)
    entries = sum([int(await r.hget(keys.ops(u), ledger_codec.LAST_ID) or 0) for u in sample]) / len(sample)
    async with r.pipeline(transaction=False) as pipe:  # the entries' own bytes: they share the ops hash
        for u in sample:
            pipe.hmget(keys.ops(u), [ledger_codec.entry_field(i + 1) for i in range(100)])
        entry_bytes = sum(len(e) for row in await pipe.execute() for e in row if e)
    return {"members": members, "organic": organic, "organic_seconds": round(organic_s, 1),
            "organic_bytes_per_member": round(organic_bytes / organic), "used_memory_delta": used,
            "bytes_per_member": round(used / members), "target": TARGET, "meets_target": used / members <= TARGET,
            "ledger_entries_per_member": round(entries, 2),
            "bytes_per_ledger_entry": round(entry_bytes / len(sample) / entries),
            "breakdown_bytes_per_member": breakdown, "copies_checked_keys": len(names),
            "copies_memory_usage_ratio": round(copy_ratio, 4)}


# ---- report ---------------------------------------------------------------------------------
def log(text: str) -> None:
    print(f"  … {text}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.processor())


async def machine(r: Any) -> dict[str, Any]:
    cpu = cpu_model()
    server, mem = await r.info("server"), await r.info("memory")
    aof = (await r.config_get("appendonly")).get("appendonly")
    return {"nproc": os.cpu_count(), "cpu": cpu, "load_average_at_start": os.getloadavg()[0],
            "redis": server["redis_version"],
            "allocator": mem["mem_allocator"], "appendonly": aof, "python": platform.python_version(),
            "redis_py": redis_py.__version__}


def markdown(result: dict[str, Any]) -> str:
    m, mem = result["machine"], result["memory"]
    out = [f"Ledger benchmark {result['date']}: {m['nproc']} × {m['cpu']}, Redis {m['redis']} "
           f"({m['allocator']}, appendonly {m['appendonly']}), Python {m['python']}; load average "
           f"{m['load_average_at_start']:.2f} at start, {m['load_average_at_end']:.2f} at end", "",
           "| operation | concurrency | ops/s | p50 ms | p99 ms | Redis CPU µs/op | of it in Lua | client CPU µs/op |",
           "|---|--:|--:|--:|--:|--:|--:|--:|"]
    out += [f"| {t['operation']} | {t['concurrency']} | {t['ops_per_s']:,} | {t['p50_ms']} | {t['p99_ms']} | "
            f"{t['redis_cpu_us_per_op']} | {t['lua_us_per_op']} | {t['client_cpu_us_per_op']} |"
            for t in result["throughput"]]
    verdict = "meets" if mem["meets_target"] else f"MISSES by {mem['bytes_per_member'] / TARGET:.1f}×"
    out += ["", "| memory | value |", "|---|--:|",
            f"| members | {mem['members']:,} ({mem['organic']:,} through Program, the rest copies) |",
            f"| used_memory delta | {mem['used_memory_delta'] / 2**20:,.1f} MiB |",
            f"| **bytes per member** | **{mem['bytes_per_member']:,}** (target ≤ {TARGET:,}: {verdict}) |",
            f"| bytes per member, organic part only | {mem['organic_bytes_per_member']:,} |",
            f"| ledger entries per member | {mem['ledger_entries_per_member']} |",
            f"| bytes per ledger entry (its stored field: the entry, and an earning's lot in front) | {mem['bytes_per_ledger_entry']} |",
            "", "| key (MEMORY USAGE, sample average) | bytes/member | share of used_memory |", "|---|--:|--:|"]
    rest = mem["bytes_per_member"] - sum(mem["breakdown_bytes_per_member"].values())
    for kind, size in [*mem["breakdown_bytes_per_member"].items(), ("keyspace table, allocator, other", rest)]:
        out.append(f"| {kind} | {size:,} | {size / mem['bytes_per_member']:.0%} |")
    return "\n".join(out)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    url = os.environ.get("REDIS_URL")
    if url:
        return await run(args, url, own_server=False)
    with tempfile.TemporaryDirectory(prefix="shokai-bench-") as data:
        server = EmbeddedRedis(Path(data)).start()
        try:
            return await run(args, server.url, own_server=True)
        finally:
            server.stop()


async def run(args: argparse.Namespace, url: str, own_server: bool) -> dict[str, Any]:
    r = connect(url)
    try:
        if not own_server and await r.dbsize():
            raise SystemExit("REDIS_URL names a database that is not empty; the benchmark flushes it")
        program = Program(r, load_rules(ROOT / "assets" / "rules.toml"))
        result: dict[str, Any] = {"date": date.today().isoformat(), "machine": await machine(r),
                                  "config": {"seconds": args.seconds, "members": args.members,
                                             "organic": args.organic, "pool": POOL}}
        result["throughput"] = await throughput(program, r, args.seconds)
        result["memory"] = await memory(program, r, url, args.members, args.organic)
        result["machine"]["load_average_at_end"] = os.getloadavg()[0]
        await r.flushdb()
        return result
    finally:
        await r.aclose()


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ledger", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each throughput run")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--organic", type=int, default=10_000, help="members made through Program")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 0.3 s runs, 2,000 members")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.members, args.organic = 0.3, 2_000, 500
    if args.organic % 5 or args.members % args.organic:
        parser.error("--organic must be a multiple of 5 and divide --members")
    result = asyncio.run(main(args))
    print(markdown(result))
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"ledger-{result['date']}.json"
        path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"\nwritten to {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    cli()
