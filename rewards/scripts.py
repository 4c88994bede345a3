"""The one Lua loader. Every script is a package file beside the code that owns it (`rewards/lua/`,
`bot/intake/lua/`, `bot/infra/lua/`, `bot/broadcasts/lua/`, `bot/richmenu/lua/`), read once and registered
on a client with `register()`, called with explicit KEYS and ARGV.

It lives in rewards/ because the domain may not import the plumbing (bot/ imports rewards/, never the
other way), and both need it.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any


@cache
def source(path: Path, prelude: Path | None = None, header: str = "") -> str:
    """The script's text, after the header (generated Lua, e.g. a table of names) and the prelude's when it has one
    (ledger.lua's helpers, for instance)."""
    text = path.read_text()
    text = f"{prelude.read_text()}\n{text}" if prelude else text
    return f"{header}\n{text}" if header else text


def register(redis: Any, path: Path, prelude: Path | None = None, header: str = "") -> Any:
    """The script registered on this client: sent by EVALSHA, loaded again on NOSCRIPT."""
    return redis.register_script(source(path, prelude, header))
