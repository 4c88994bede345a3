"""Clock work: what the clock drives rather than an event, run by one worker at a time under a lease.

Every CLOCK_SECONDS the worker holding the clock lease finishes half-done referrals, releases held points,
expires old ones, warns before they expire, pays birthday points, frees stale claims, reminds referred friends
who have not ordered ([prompts]) and sends the notices kept through quiet hours. Each step is idempotent, so a takeover mid-tick repeats nothing.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from bot import notices
from bot.infra import keys
from bot.infra.leases import Leases
from bot.services import Services

log = logging.getLogger(__name__)

CLOCK_SECONDS = 30


class ClockWork:
    def __init__(self, services: Services, leases: Leases, name: str):
        self.services = services
        self.name = name
        self._leases = leases
        # True while this worker holds the clock lease; the worker's keep-alive renews it every third of a
        # lease, so it lapses a lease after its holder dies, not three ticks after
        self.holding = False

    async def run(self, pause: Callable[[float], Awaitable[None]], stopping: asyncio.Event) -> None:
        """Work the clock drives, by one worker at a time (a lease): finish half-done referrals, release
        held points, expire old ones, warn before they expire, pay birthday points. Each step is idempotent."""
        lease = keys.CLOCK_LEASE
        while not stopping.is_set():
            try:
                self.holding = await self._leases.hold(lease, self.name, self.services.settings.lease_ms)
                if self.holding:
                    await self.tick()
            except RedisError as exc:
                log.warning("clock work failed: %s", exc)
            except Exception:  # one bad run must not end the worker (the worker gathers this with its partitions)
                log.exception("clock work failed unexpectedly; trying again later")
            await pause(CLOCK_SECONDS)

    async def tick(self, now_ms: int | None = None) -> None:
        program = self.services.program
        await program.settle_all()
        await program.links.finish_all()  # account links a crash left half done
        await program.privacy.finish_all()  # erasures a crash left half done (rewards/privacy.py)
        expired: list[tuple[str, int]] = []
        at_ms = now_ms if now_ms is not None else program.now_ms()
        await program.maintain_due(at_ms, expired=expired)
        await notices.after_expiry(self.services, expired, at_ms)  # outbound webhooks: points.expired
        for uid, points, when in await program.expiring_soon(now_ms):
            await notices.points_expiring(self.services, uid, points, when)
        await program.birthdays_due(now_ms)
        await program.rings.scan_due(at_ms)  # [rings]: the whole-graph pass, every every_minutes
        await self.services.catalog.release_stale(now_ms)
        await notices.remind_friends(self.services, now_ms)  # referred friends' one reminder ([prompts])
        await notices.release_budget_holds(self.services)  # [budget]: a new month pays what the last one held
        await notices.budget_alerts(self.services)  # [budget]: staff told at 80% and 100%, once a month
        await notices.send_due(self.services, now_ms)  # notices kept through quiet hours or a LINE outage
