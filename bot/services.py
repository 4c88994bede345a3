"""The service container: what handlers, the worker, the admin API, the pages and the CLI commands use.

`open_services` opens Redis (given or embedded), the LINE client and the program, and closes them in
reverse order; the app, `python -m bot worker`, the rich-menu command and the benchmarks all build
their services through it, so none of them copies the setup.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.chat.postback import key_for
from bot.config import Settings
from bot.line.client import LineClient
from bot.line.i18n import Texts
from rewards.catalog import Catalog
from rewards.program import Program


@dataclass
class Services:
    """What handlers may use; built once by the app."""

    settings: Settings
    program: Program
    line: LineClient
    texts: Texts
    redis: Any
    catalog: Catalog

    @property
    def postback_key(self) -> bytes:
        return key_for(self.settings.channel_secret)
