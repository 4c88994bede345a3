"""The listening sockets of `serve` and `dev`, bound before anything else starts.

Bound first, so that a port already in use stops start-up with one line (a ConfigError) before the embedded
Redis, the worker or the simulator are started, instead of aiohttp's traceback after they were.
"""
from __future__ import annotations

import errno
import socket

from bot.config import ConfigError


def listening_socket(host: str, port: int, change: str) -> socket.socket:
    """A TCP socket listening on host:port (port 0: any free one); `change` says how to pick another port."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, OverflowError) as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        # what asyncio sets on its own listening sockets: a restart can bind while old connections linger
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except (OSError, OverflowError) as exc:
        sock.close()
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use (is Shokai already running?); "
                              f"choose another with {change}") from exc
        raise ConfigError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from exc
    return sock


def bound_port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])
