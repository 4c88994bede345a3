"""`python -m bot whatif --rules DRAFT.toml [--days N] [--json]`: the last N days' facts replayed under the live
rules and under a draft, each in an embedded Redis of its own in a temporary directory (rewards/whatif.py),
printed side by side. The live Redis (REDIS_URL, or the embedded one in DATA_DIR) is only read."""
from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import multiprocessing
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis._parsers import _HiredisParser
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.exceptions import ResponseError

from bot.config import Settings
from bot.infra import event_loop
from bot.infra.redis_conn import EmbeddedRedis
from bot.services import open_redis
from rewards.facts import Fact, Facts
from rewards.rules import Rules, load_rules
from rewards.whatif import Totals, replay

APART_FROM = 5_000  # facts from which the draft's replay runs in a process of its own


class _ReplyError(Exception):
    """An error reply, as hiredis hands it over; turned into redis-py's exception (NOSCRIPT, WRONGTYPE…)."""


class _Gathered:
    """A pipeline without MULTI on the sandbox client: its commands are sent as they are queued, with everything
    else due in this turn of the loop, and answered in order."""

    def __init__(self, client: SandboxRedis):
        self._client = client
        self._sent: list[asyncio.Future[Any]] = []

    async def __aenter__(self) -> _Gathered:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._sent = []

    def __getattr__(self, name: str) -> Any:
        command = getattr(self._client, name)

        def queue(*args: Any, **kwargs: Any) -> _Gathered:
            self._sent.append(command(*args, **kwargs))
            return self
        return queue

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        sent, self._sent = self._sent, []
        out: list[Any] = []
        for answer in sent:
            try:
                out.append(await answer)
            except ResponseError as exc:
                if raise_on_error:
                    raise
                out.append(exc)
        return out


class SandboxRedis(aioredis.Redis):
    """The replay's client: one connection, and every command issued in a turn of the loop (by all the facts in
    flight) written together, its answer read back in order; packed and parsed by hiredis, answered through
    redis-py's own reply callbacks. A command returns a future (what `await` needs), so a plain pipeline's
    commands are on their way as soon as they are queued (_Gathered). A MULTI pipeline goes through redis-py.

    redis-py's connection adds ~100 µs of CPU to each command (timeouts, health checks, encoders): most of a
    replay's time. The program's code above the client is the same."""

    def __init__(self, host: str, port: int):
        super().__init__(host=host, port=port, protocol=2)  # RESP2, as spoken below; its pool: MULTI pipelines only
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._parser = hiredis.Reader(replyError=_ReplyError)
        self._queued: list[bytes] = []
        self._waiting: collections.deque[tuple[asyncio.Future[Any], Any, dict[str, Any]]] = collections.deque()
        self._reading: asyncio.Task[None] | None = None

    async def open(self) -> SandboxRedis:
        self._stream = await asyncio.open_connection(self.connection_pool.connection_kwargs["host"],
                                                     self.connection_pool.connection_kwargs["port"])
        self._reading = asyncio.create_task(self._read())
        return self

    def execute_command(self, *args: Any, **options: Any) -> asyncio.Future[Any]:  # type: ignore[override]
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._queued:
            asyncio.get_running_loop().call_soon(self._flush)
        name = args[0]  # "SCRIPT LOAD" is two words on the wire
        self._queued.append(hiredis.pack_command((*name.split(), *args[1:]) if " " in name else args))
        self._waiting.append((answer, args[0], options))
        return answer

    def _flush(self) -> None:
        assert self._stream is not None
        self._stream[1].write(b"".join(self._queued))
        self._queued = []

    async def _read(self) -> None:
        assert self._stream is not None
        reader = self._stream[0]
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    raise ConnectionError("the sandbox Redis closed the connection")
                self._parser.feed(data)
                while (reply := self._parser.gets()) is not False:
                    answer, command, options = self._waiting.popleft()
                    if not answer.done():
                        self._answer(answer, command, options, reply)
        except Exception as exc:  # the server went away: everyone waiting hears it
            while self._waiting:
                answer = self._waiting.popleft()[0]
                if not answer.done():
                    answer.set_exception(exc)

    def _answer(self, answer: asyncio.Future[Any], command: Any, options: dict[str, Any], reply: Any) -> None:
        if isinstance(reply, _ReplyError):
            if EMPTY_RESPONSE in options:
                answer.set_result(options[EMPTY_RESPONSE])
            else:
                answer.set_exception(_PARSER.parse_error(str(reply)))
            return
        options = {k: v for k, v in options.items() if k not in (EMPTY_RESPONSE, NEVER_DECODE, "keys")}
        callback = self.response_callbacks.get(command)
        try:
            answer.set_result(callback(reply, **options) if callback else reply)
        except Exception as exc:
            answer.set_exception(exc)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        return super().pipeline(transaction, shard_hint) if transaction else _Gathered(self)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._reading is not None:
            self._reading.cancel()
        if self._stream is not None:
            self._stream[1].close()
        await super().aclose(close_connection_pool)


_PARSER = _HiredisParser  # parse_error: an error reply's redis-py exception


@contextlib.asynccontextmanager
async def embedded_sandbox() -> AsyncIterator[Any]:
    """A fresh embedded Redis in a temporary directory, stopped and removed on the way out."""
    with tempfile.TemporaryDirectory(prefix="shokai-whatif-") as where:
        server = await asyncio.to_thread(EmbeddedRedis(Path(where)).start)
        redis = await SandboxRedis("127.0.0.1", server.port).open()
        try:
            await redis.config_set("appendonly", "no")  # thrown away afterwards: nothing to keep on disk
            yield redis
        finally:
            await redis.aclose()
            await asyncio.to_thread(server.stop)


async def _replay_in_sandbox(rules: Rules, facts: list[Fact], end_ms: int) -> Totals:
    async with embedded_sandbox() as redis:
        return await replay(redis, rules, facts, end_ms)


def _replay_apart(rules_path: str, facts: list[Fact], end_ms: int) -> Totals:
    """In a process of its own: one replay, in a sandbox of its own."""
    return event_loop.run(_replay_in_sandbox(load_rules(Path(rules_path)), facts, end_ms))


async def compare_apart(facts: list[Fact], live: Path, draft: Path, end_ms: int) -> dict[str, Totals]:
    """The live rules' replay here and the draft's in a second process, at the same time: a replay is Python
    work (the program's code and its client's), so two of them take two cores. A few facts go side by side
    here: a second interpreter takes longer to start than they take to replay."""
    if len(facts) < APART_FROM:
        live_totals, draft_totals = await asyncio.gather(_replay_in_sandbox(load_rules(live), facts, end_ms),
                                                         _replay_in_sandbox(load_rules(draft), facts, end_ms))
        return {"live": live_totals, "draft": draft_totals}
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this one's event loop
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as apart:
        draft_apart = asyncio.get_running_loop().run_in_executor(apart, _replay_apart, str(draft), facts, end_ms)
        live_here = await _replay_in_sandbox(load_rules(live), facts, end_ms)
        return {"live": live_here, "draft": await draft_apart}


async def run(settings: Settings, draft_path: Path, days: int, as_json: bool, now_ms: int) -> str:
    """The report, as text or JSON. Raises RulesError for a bad draft (naming the setting and its line)."""
    live_rules = load_rules(settings.rewards_config)
    draft_rules = load_rules(draft_path)
    async with open_redis(settings) as live:
        facts = await Facts(live, live_rules, lambda: now_ms).read(days, now_ms)
    result = await compare_apart(facts, settings.rewards_config, draft_path, now_ms)
    if as_json:
        return json.dumps({side: totals.as_json() for side, totals in result.items()}, ensure_ascii=False, indent=2)
    return report(result["live"], result["draft"], live_rules, draft_rules, days)


def _signed(n: int, yen: bool = False) -> str:
    text = f"¥{abs(n):,}" if yen else f"{abs(n):,}"
    return "0" if n == 0 else ("+" if n > 0 else "-") + text


def report(live: Totals, draft: Totals, live_rules: Rules, draft_rules: Rules, days: int) -> str:
    """Live and draft side by side, with the change."""
    rows: list[tuple[str, str, str, str]] = [
        ("points issued", f"{live.points_issued:,}", f"{draft.points_issued:,}",
         _signed(draft.points_issued - live.points_issued)),
        ("yen cost", f"¥{live.yen_cost:,}", f"¥{draft.yen_cost:,}", _signed(draft.yen_cost - live.yen_cost, yen=True)),
        ("referrals completed", f"{live.referrals_completed:,}", f"{draft.referrals_completed:,}",
         _signed(draft.referrals_completed - live.referrals_completed)),
        ("milestone payouts", f"{live.milestone_payouts:,} ({live.milestone_points:,} pt)",
         f"{draft.milestone_payouts:,} ({draft.milestone_points:,} pt)",
         _signed(draft.milestone_payouts - live.milestone_payouts)),
        ("members per tier", "", "", ""),
    ]
    for tier in dict.fromkeys([*live.members_per_tier, *draft.members_per_tier]):
        a, b = live.members_per_tier.get(tier, 0), draft.members_per_tier.get(tier, 0)
        rows.append((f"  {tier}", f"{a:,}", f"{b:,}", _signed(b - a)))
    rows.append(("months at the budget cap", ", ".join(live.capped_months) or "none",
                 ", ".join(draft.capped_months) or "none", ""))
    rows.append(("held for the budget", f"{live.held_for_budget:,}", f"{draft.held_for_budget:,}",
                 _signed(draft.held_for_budget - live.held_for_budget)))
    for kind in sorted({*live.refused, *draft.refused}):
        a, b = live.refused.get(kind, 0), draft.refused.get(kind, 0)
        rows.append((f"refused {kind}", f"{a:,}", f"{b:,}", _signed(b - a)))
    header = ("", "live rules", "draft rules", "change")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = [f"What if: {live.facts:,} facts of the last {days} days, replayed from an empty program "
             f"(1 point = ¥{live_rules.point_value_yen:g} live, ¥{draft_rules.point_value_yen:g} draft)", ""]
    for r in [header, *rows]:
        lines.append("  ".join([r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True))])
                     .rstrip())
    return "\n".join(lines)
