"""Rules variants for tests: the shipped file with a few settings changed, and a Program on a clean Redis.

Tests run on the shipped rules with one change: [chat_pace] set out of reach, because a test drives one
user through dozens of events in seconds, which the shipped pace (rightly) takes for a script. The pace's
own tests set it back (tests/test_fairness.py)."""
from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import time
from pathlib import Path

from bot.config import ASSETS
from bot.infra.redis_conn import connect
from rewards.program import Program
from rewards.rules import Rules, load_rules

SHIPPED = (ASSETS / "rules.toml").read_text(encoding="utf-8")
DEFAULT = re.sub(r"^max_events = \d+", "max_events = 1000000", SHIPPED, count=1, flags=re.M)
assert DEFAULT != SHIPPED, "the shipped rules have no [chat_pace] max_events"

_HOME = Path(tempfile.mkdtemp(prefix="shokai-test-rules-"))
atexit.register(shutil.rmtree, _HOME, True)
TEST_RULES = _HOME / "rules.toml"  # what make_settings points at unless a test names its own
TEST_RULES.write_text(DEFAULT, encoding="utf-8")


def variant(tmp: Path, extra: str = "", **settings: object) -> Path:
    """The default rules with `section__key=value` settings replaced (values in TOML syntax) and `extra` appended."""
    text = DEFAULT
    for name, value in settings.items():
        section, key = name.rsplit("__", 1)
        header = re.search(rf"^\[{re.escape(section.replace('__', '.'))}\]\s*$", text, re.M)
        assert header, f"no [{section}] in the default rules"
        line = re.compile(rf"^{re.escape(key)} = .*$", re.M).search(text, header.end())
        assert line, f"no {key} in [{section}]"
        text = text[:line.start()] + f"{key} = {value}" + text[line.end():]
    path = tmp / f"rules-{time.monotonic_ns()}.toml"
    path.write_text(text + "\n" + extra, encoding="utf-8")
    return path


class Clock:
    """A clock the test moves: the program's notion of now."""

    def __init__(self, start: float | None = None):
        self.now = start if start is not None else time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, days: float = 0, hours: float = 0, minutes: float = 0) -> None:
        self.now += days * 86_400 + hours * 3_600 + minutes * 60

    @property
    def ms(self) -> int:
        return int(self.now * 1000)


async def program_for(redis_url: str, rules: Rules | Path, clock: Clock) -> Program:
    client = connect(redis_url)
    await client.flushdb()
    return Program(client, rules if isinstance(rules, Rules) else load_rules(rules), clock=clock)
