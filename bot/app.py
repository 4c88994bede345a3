"""The app factory: every resource is opened in a cleanup context and closed there."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from linebot.v3.webhook import SignatureValidator

from bot.broadcasts.runner import BroadcastRunner
from bot.config import ASSETS, Settings
from bot.deliveries.engine import FORWARD_OWNER, Deliveries, Sender
from bot.deliveries.forward import Forwarder
from bot.deliveries.outbound import OWNER as OUTBOUND_OWNER
from bot.infra.metrics import Metrics
from bot.infra.redis_conn import unbatched
from bot.infra.signals import until_stopped
from bot.intake import webhook
from bot.intake.stream import Intake
from bot.intake.worker import Worker
from bot.line.i18n import Texts
from bot.services import Services, open_services
from bot.shopify import webhook as shopify_webhook
from bot.web import routes
from bot.web.http import (
    OUTAGE,
    RedisOutage,
    auth_middleware,
    body_timeout_middleware,
    security_headers,
    unavailable_middleware,
)
from handlers import build_router
from rewards.rules import Rules, load_rules

log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)
INTAKE = web.AppKey("intake", Intake)
METRICS = web.AppKey("metrics", Metrics)
WORKER = web.AppKey("worker", Worker)
FORWARDER = web.AppKey("forwarder", Forwarder)
SENDER = web.AppKey("sender", Sender)


def delivery_sender(services: Services, metrics: Metrics) -> Sender:
    """The delivery engine's sender: outbound webhooks signed per attempt, forwarded LINE bodies as they came."""
    kinds = {OUTBOUND_OWNER: "webhook", FORWARD_OWNER: "forward"}
    return Sender(services.redis, services.program.now_ms, {OUTBOUND_OWNER: services.outbound},
                  counted=lambda owner, outcome: metrics.delivery_attempts.labels(kinds.get(owner, owner),
                                                                                  outcome).inc())


@contextlib.asynccontextmanager
async def running_worker(services: Services, metrics: Metrics, sender: Sender | None = None
                         ) -> AsyncIterator[Worker]:
    worker = Worker(services, build_router(), metrics)
    await worker.claim_name()  # before the broadcast runner takes it: the name may get a suffix
    broadcasts = BroadcastRunner(services, worker.name)
    # the delivery sender runs in every worker: each attempt is claimed, so two never make the same one
    sender = sender or delivery_sender(services, metrics)
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(broadcasts.run(stopping)),
             asyncio.create_task(sender.run(stopping, services.settings.delivery_poll_seconds))]
    try:
        yield worker
    finally:
        await worker.stop()
        stopping.set()
        done, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()


def log_rules_warnings(rules: Rules) -> None:
    """What the rules' checks found but let through ([legal] premiums = "warn"): one warning each."""
    for warning in rules.warnings:
        log.warning("rules: premiums law: %s", warning)


def create_app(settings: Settings, *, run_worker: bool = True) -> web.Application:
    """The web app: webhook, pages, admin API, health and metrics; the worker too unless run_worker=False.

    The rules and texts are read here, so a broken rules file stops start-up with one clear line.
    """
    rules = load_rules(settings.rewards_config)
    texts = Texts(ASSETS / "locales")
    metrics = Metrics()
    app = web.Application(client_max_size=webhook.MAX_BODY, middlewares=[
        auth_middleware(SERVICES), body_timeout_middleware(settings.body_read_seconds, webhook.MAX_BODY),
        unavailable_middleware(SERVICES)])
    app.on_response_prepare.append(security_headers(settings.public_base_url))
    app[METRICS] = metrics
    app[OUTAGE] = RedisOutage()

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_services(settings, metrics, rules, texts) as services:
            log_rules_warnings(rules)  # once started: a start that fails stays one line
            app[SERVICES] = services
            app[INTAKE] = Intake(services.redis, settings.stream_partitions)
            if settings.forward_webhook_urls:
                # not auto-pipelined, as the intake's own call: the 200 waits for it
                app[FORWARDER] = Forwarder(Deliveries(unbatched(services.redis), services.program.now_ms),
                                           settings.forward_webhook_urls)
            if run_worker:
                app[SENDER] = delivery_sender(services, metrics)
                async with running_worker(services, metrics, app[SENDER]) as worker:
                    app[WORKER] = worker
                    yield
            else:
                yield

    app.cleanup_ctx.append(services_ctx)
    app.router.add_post("/callback", webhook.make_handler(SignatureValidator(settings.channel_secret), INTAKE, METRICS,
                                                          FORWARDER))

    app.router.add_post("/webhooks/shopify", shopify_webhook.make_handler(settings.shopify_webhook_secret, INTAKE,
                                                                          METRICS, SERVICES))
    routes.setup(app, SERVICES, metrics)
    return app


async def run_worker_alone(settings: Settings) -> None:
    """`python -m bot worker`: the worker without the web server, until SIGTERM/SIGINT."""
    metrics = Metrics()
    async with open_services(settings, metrics, load_rules(settings.rewards_config), Texts(ASSETS / "locales")
                             ) as services:
        log_rules_warnings(services.program.rules)
        async with running_worker(services, metrics):
            await until_stopped()
