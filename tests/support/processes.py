"""Real `python -m bot worker` processes for the tests that SIGKILL one mid-work (crash, chaos, broadcasts), and
`python -m bot serve` for the burst test (tests/test_bursts.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.support.harness import BASIC_ID, PUBLIC, SECRET, TOKEN

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def worker_process(redis_url: str, api_url: str, **env: str) -> subprocess.Popen:
    """A worker in its own process group (so a kill takes its children too), talking to the stand-in."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "REDIS_", "BROADCAST_"))}
    clean.pop("DYNO", None)
    clean.update(LINE_CHANNEL_SECRET=SECRET, LINE_CHANNEL_ACCESS_TOKEN=TOKEN, LINE_API_BASE_URL=api_url,
                 REDIS_URL=redis_url, PUBLIC_BASE_URL=PUBLIC, LINE_BASIC_ID=BASIC_ID, WORKER_LEASE_MS="1000",
                 LOG_LEVEL="WARNING")
    clean.update(env)  # a test's own lease, or a platform name (DYNO)
    return subprocess.Popen([sys.executable, "-m", "bot", "worker"], cwd=ROOT, env=clean, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_processes(workers: list[subprocess.Popen]) -> None:
    """What a test started, stopped: the ones still running get SIGTERM and up to 15 s to finish."""
    for proc in workers:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)


def serve_process(redis_url: str, api_url: str, port: int, log: str, **env: str) -> subprocess.Popen:
    """`python -m bot serve` (web and worker) on 127.0.0.1:port, talking to the stand-in; its output in `log`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "REDIS_", "BROADCAST_"))}
    clean.update(LINE_CHANNEL_SECRET=SECRET, LINE_CHANNEL_ACCESS_TOKEN=TOKEN, LINE_API_BASE_URL=api_url,
                 REDIS_URL=redis_url, PUBLIC_BASE_URL=PUBLIC, LINE_BASIC_ID=BASIC_ID, LOG_LEVEL="WARNING", **env)
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, env=clean, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
