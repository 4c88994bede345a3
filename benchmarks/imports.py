"""Import benchmark: a --rows (100,000) member CSV through POST /api/v1/imports/members into `python -m bot serve`.

The server runs as a subprocess (`serve --no-worker`) on the embedded Redis (or REDIS_URL: an empty database, which
the run fills). The file is generated as it is sent (chunked), so this process never holds it either: every row a
new user id, a customer id, an opening balance and a joined_at. The import becomes a job (over 1,000 rows); its
progress is polled until done, then the same file is imported again (every row skipped: the op ids).

Reported: seconds and rows/s for each run, and the server's memory: its RSS before the first upload and its peak
(VmHWM from /proc, Linux), so the peak minus the start is what a 100,000-row import costs it.

    .venv/bin/python -m benchmarks.imports [--rows 100000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from benchmarks.common import redis_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
ADMIN = "bench-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc/{pid}/status (Linux only)")


def start_server(port: int, env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bot", "serve", "--no-worker", "--host", "127.0.0.1", "--port",
                             str(port)], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def tail(path: str) -> str:
    return Path(path).read_text()[-2000:]


async def rows(n: int) -> AsyncIterator[bytes]:
    yield b"user_id,customer_id,points,joined_at\n"
    block = []
    for i in range(n):
        block.append(f"U{i:032x},bench-{i},{i % 1000},2024-{i % 12 + 1:02d}-01T10:00:00+09:00\n")
        if len(block) == 1000:
            yield "".join(block).encode()
            block = []
    if block:
        yield "".join(block).encode()


async def import_once(http: ClientSession, base: str, n: int) -> dict:
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "text/csv"}
    start = time.monotonic()
    async with http.post(f"{base}/api/v1/imports/members", data=rows(n), headers=headers) as r:
        answer = await r.json()
        if r.status != 202:
            raise SystemExit(f"expected a job (202), got {r.status}: {answer}")
    uploaded = time.monotonic() - start
    while True:
        async with http.get(f"{base}/api/v1/imports/{answer['id']}", headers=headers) as r:
            job = await r.json()
        if job["status"] != "running":
            break
        await asyncio.sleep(0.5)
    seconds = time.monotonic() - start
    if job["status"] != "done" or job["errors_total"]:
        raise SystemExit(f"the import did not finish cleanly: {job}")
    return {"seconds": round(seconds, 1), "upload_seconds": round(uploaded, 1), "rows_per_second": round(n / seconds),
            "imported": job["imported"], "skipped": job["skipped"]}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    async with redis_url("shokai-bench-imports-") as url:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_CLUSTER")}
        env.update(REDIS_URL=url, ADMIN_TOKEN=ADMIN, LINE_CHANNEL_SECRET="bench-secret",
                   LINE_CHANNEL_ACCESS_TOKEN="bench-token", PUBLIC_BASE_URL="http://127.0.0.1",
                   LINE_API_BASE_URL="http://127.0.0.1:9", LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
        with tempfile.NamedTemporaryFile(prefix="shokai-bench-imports-", suffix=".log") as log:
            server = start_server(port, env, log)
            base = f"http://127.0.0.1:{port}"
            try:
                async with ClientSession() as http:
                    for _ in range(300):
                        try:
                            async with http.get(base + "/healthz"):
                                break
                        except OSError:
                            await asyncio.sleep(0.1)
                    else:
                        raise SystemExit(f"the server did not start: {tail(log.name)}")
                    rss_start = memory_kib(server.pid, "VmRSS")
                    first = await import_once(http, base, args.rows)
                    peak_first = memory_kib(server.pid, "VmHWM")
                    again = await import_once(http, base, args.rows)
                    peak = memory_kib(server.pid, "VmHWM")
            finally:
                server.send_signal(signal.SIGINT)
                server.wait(60)
    result = {"date": date.today().isoformat(), "rows": args.rows, "python": platform.python_version(),
              "cpus": os.cpu_count(), "first_import": first, "same_file_again": again,
              "server_rss_start_mib": round(rss_start / 1024, 1),
              "server_peak_rss_mib_after_first": round(peak_first / 1024, 1),
              "server_peak_rss_mib": round(peak / 1024, 1)}
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"imports-{result['date']}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
