"""Every route of the web app but the webhook, in one place: health and metrics, the pages, the admin API.

bot/app.py calls setup() once; each module below adds its own routes (the admin API one module per resource).
"""
from __future__ import annotations

from aiohttp import web

from bot.infra.metrics import Metrics
from bot.services import Services
from bot.web import dashboard, health, liff
from bot.web.api import (
    account_links,
    audit,
    broadcasts,
    budget,
    conversions,
    experiments,
    exports,
    imports,
    members,
    openapi,
    privacy,
    referrals,
    rewards,
    shopify,
    staff,
    stats,
    webhooks,
)
from bot.web.pages import coupon, invite, member, my_data


def setup(app: web.Application, services_key: web.AppKey[Services], metrics: Metrics) -> None:
    health.setup(app, services_key, metrics)
    invite.setup(app, services_key)
    conversions.setup(app, services_key)
    members.setup(app, services_key)
    privacy.setup(app, services_key)
    stats.setup(app, services_key)
    budget.setup(app, services_key)  # [budget]: GET /api/v1/budget, POST /api/v1/budget/release
    experiments.setup(app, services_key)
    broadcasts.setup(app, services_key)
    rewards.setup(app, services_key)
    referrals.setup(app, services_key)
    audit.setup(app, services_key)
    exports.setup(app, services_key)
    staff.setup(app, services_key)
    account_links.setup(app, services_key)
    imports.setup(app, services_key)
    webhooks.setup(app, services_key)
    shopify.setup(app, services_key)
    openapi.setup(app)
    coupon.setup(app, services_key)
    member.setup(app, services_key)
    my_data.setup(app, services_key)
    liff.setup(app, services_key, metrics)
    dashboard.setup(app, services_key)
