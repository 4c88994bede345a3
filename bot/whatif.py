"""`python -m bot whatif --rules DRAFT.toml [--days N] [--json]`: the last N days' facts replayed under the live
rules and under a draft, each in an embedded Redis of its own in a temporary directory (rewards/whatif.py),
printed side by side. The live Redis (REDIS_URL, or the embedded one in DATA_DIR) is only read."""
from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.infra.redis_conn import EmbeddedRedis, connect, ready
from bot.services import open_redis
from rewards.facts import Facts
from rewards.rules import Rules, load_rules
from rewards.whatif import Totals, compare

DEFAULT_DAYS = 30


@contextlib.asynccontextmanager
async def embedded_sandbox() -> AsyncIterator[Any]:
    """A fresh embedded Redis in a temporary directory, stopped and removed on the way out."""
    with tempfile.TemporaryDirectory(prefix="shokai-whatif-") as where:
        server = await asyncio.to_thread(EmbeddedRedis(Path(where)).start)
        redis = connect(server.url, pool_size=64)
        try:
            await ready(redis)
            yield redis
        finally:
            await redis.aclose()
            await asyncio.to_thread(server.stop)


async def run(settings: Settings, draft_path: Path, days: int, as_json: bool, now_ms: int) -> str:
    """The report, as text or JSON. Raises RulesError for a bad draft (naming the setting and its line)."""
    live_rules = load_rules(settings.rewards_config)
    draft_rules = load_rules(draft_path)
    async with open_redis(settings) as live:
        facts = await Facts(live, live_rules, lambda: now_ms).read(days, now_ms)
    result = await compare(facts, live_rules, draft_rules, embedded_sandbox, now_ms)
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
