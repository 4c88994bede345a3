"""Takeover benchmark: how long a SIGKILLed worker's users wait, from the kill to their next event handled.

What runs (all on loopback): an embedded redis-server started here (or REDIS_URL naming an EMPTY database,
which is flushed between runs), the LINE stand-in (linesim/platform.py) in this process, and real
`python -m bot worker` processes with the default lease (no WORKER_LEASE_MS), each given a platform name
(DYNO=worker.1, worker.2) as Heroku-like platforms do. Events go into the streams through the bot's own
Intake, as the webhook would put them there.

Each run starts the workers on a fresh database, waits until they hold the partitions, SIGKILLs worker.1
and at once queues one text event for a user in a partition worker.1 held. Measured: the seconds from the
SIGKILL to the stand-in receiving that event's answer, and who answered (the partition's holder then).
- survivor:  worker.1 and worker.2 share the partitions 4 and 4; worker.2 is left and must notice worker.1
             is gone and take the partition over.
- restart:   worker.1 alone holds every partition; it is started again right after the kill with the same
             DYNO, as a platform restarts a crashed process. The figure includes the new process's start-up
             (the interpreter and the imports), also measured on its own at the end.

Nothing here is a test: no assertion on time. A run that gets no answer within --give-up seconds fails.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as host
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from benchmarks.common import redis_url
from bot.infra import keys
from bot.infra.redis_conn import connect
from bot.intake.stream import Intake, partition_of
from linesim.platform import Platform, new_user_id

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SECRET, TOKEN, PUBLIC = "bench-secret", "bench-token", "https://bench.example.test"
PARTITIONS = 8  # the default


def worker(url: str, platform: Platform, dyno: str, logs: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "REDIS_", "WORKER_", "DYNO"))}
    env.update(LINE_CHANNEL_SECRET=SECRET, LINE_CHANNEL_ACCESS_TOKEN=TOKEN, LINE_API_BASE_URL=platform.api_url,
               REDIS_URL=url, PUBLIC_BASE_URL=PUBLIC, LINE_BASIC_ID=platform.basic_id, LOG_LEVEL="INFO",
               PYTHONUNBUFFERED="1", DYNO=dyno)
    out = (logs / f"{dyno}.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "bot", "worker"], cwd=ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def holders(redis: Any) -> list[str]:
    return [(v or b"").decode() for v in [await redis.get(keys.lease(p)) for p in range(PARTITIONS)]]


def owned_by(name: str, proc: subprocess.Popen[bytes], dyno: str) -> bool:
    """Before this change a worker's name was host-pid-random; after it, host-DYNO."""
    return f"-{proc.pid}-" in name or name.endswith(f"-{dyno}")


async def one_run(url: str, platform: Platform, mode: str, logs: Path, give_up: float) -> tuple[float, str]:
    redis = connect(url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        await redis.flushdb()
        first = worker(url, platform, "worker.1", logs)
        procs.append(first)
        second = worker(url, platform, "worker.2", logs) if mode == "survivor" else None
        procs += [second] if second else []
        # settled: every partition held, by both workers each its share (survivor), or by worker.1 (restart)
        share = PARTITIONS // 2 if second else PARTITIONS
        end = time.monotonic() + 60
        while True:
            names = await holders(redis)
            mine = [p for p, n in enumerate(names) if owned_by(n, first, "worker.1")]
            theirs = [p for p, n in enumerate(names) if second and owned_by(n, second, "worker.2")]
            if len(mine) == share and len(theirs) == PARTITIONS - share:
                break
            if time.monotonic() > end:
                raise SystemExit(f"workers did not take the partitions in 60 s: {names}; logs in {logs}")
            await asyncio.sleep(0.1)
        user = next(u for u in iter(new_user_id, None) if partition_of(u, PARTITIONS) in mine)
        intake = Intake(redis, PARTITIONS)
        os.killpg(first.pid, signal.SIGKILL)
        killed = time.monotonic()
        first.wait()
        if mode == "restart":
            procs.append(worker(url, platform, "worker.1", logs))
        event = platform.text(user, "ポイント")
        await intake.enqueue([event], int(time.time() * 1000))
        if not await platform.wait_for(lambda: platform.said_to(user), give_up):
            raise SystemExit(f"{mode}: no answer within {give_up} s; logs in {logs}")
        seconds = time.monotonic() - killed
        # who answered: the user's partition's holder now
        holder = (await redis.get(keys.lease(partition_of(user, PARTITIONS))) or b"").decode()
        if second and owned_by(holder, second, "worker.2"):
            return seconds, "worker.2"
        return seconds, "worker.1 restarted" if holder and mode == "restart" else holder or "nobody"
    finally:
        stop(procs)
        await redis.aclose()


async def startup_seconds(url: str, platform: Platform, logs: Path) -> float:
    """How long `python -m bot worker` takes from its start to holding a partition on an empty database:
    the part of a restart no lease setting changes (the interpreter and the imports)."""
    redis = connect(url)
    await redis.flushdb()
    began = time.monotonic()
    proc = worker(url, platform, "worker.1", logs)
    try:
        while not any(await holders(redis)):  # noqa: ASYNC110 (polling Redis, not an event here)
            await asyncio.sleep(0.02)
        return time.monotonic() - began
    finally:
        stop([proc])
        await redis.aclose()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    RESULTS.mkdir(exist_ok=True)
    platform = Platform(secret=SECRET, token=TOKEN, basic_id="@shokai-bench")
    await platform.start()
    result: dict[str, Any] = {"date": date.today().isoformat(), "label": args.label, "runs": args.runs,
                              "machine": {"nproc": os.cpu_count(), "python": host.python_version()}}
    try:
        with tempfile.TemporaryDirectory(prefix="shokai-takeover-logs-") as tmp:
            async with redis_url("shokai-takeover-") as url:
                for mode in ("survivor", "restart"):
                    seconds, by = [], []
                    for i in range(args.runs):
                        took, who = await one_run(url, platform, mode, Path(tmp), args.give_up)
                        seconds.append(round(took, 2))
                        by.append(who)
                        print(f"  … {mode} run {i + 1}: {took:.2f} s, answered by {who}", file=sys.stderr, flush=True)
                    result[mode] = {"seconds": seconds, "median": round(statistics.median(seconds), 2),
                                    "max": max(seconds), "answered_by": by}
                starts = [round(await startup_seconds(url, platform, Path(tmp)), 2) for _ in range(3)]
                result["worker_startup_seconds"] = starts
    finally:
        await platform.stop()
    if platform.violations:
        raise SystemExit(f"the LINE stand-in saw protocol violations: {platform.violations[:5]}")
    return result


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.takeover", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="kills per mode")
    parser.add_argument("--give-up", type=float, default=60.0, help="seconds to wait for the answer before failing")
    parser.add_argument("--label", default="", help="a word for the results file name (before, after)")
    args = parser.parse_args()
    result = asyncio.run(main(args))
    name = f"takeover-{result['date']}{'-' + args.label if args.label else ''}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print("\n| after SIGKILL, first event handled by | runs | median s | max s | each run (s) | answered by |\n"
          "|---|---|---|---|---|---|")
    for mode in ("survivor", "restart"):
        r = result[mode]
        print(f"| {mode} | {args.runs} | {r['median']} | {r['max']} | {', '.join(map(str, r['seconds']))} | "
              f"{', '.join(sorted(set(r['answered_by'])))} |")
    print(f"\n`python -m bot worker` start to its first partition: {result['worker_startup_seconds']} s")
    print(f"\nresults in {RESULTS / name}")


if __name__ == "__main__":
    cli()
