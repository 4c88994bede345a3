"""The Shopify store's privacy requests kept for staff (customers/data_request, bot/shopify/topics.py)."""
from __future__ import annotations

from aiohttp import web

from bot.services import Services


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    async def data_requests(request: web.Request) -> web.Response:
        """Each customers/data_request Shopify sent, oldest first, with what we hold about that customer: staff
        send it to the store owner within 30 days (Shopify's rule). Gone once the customer is redacted."""
        return web.json_response({"requests": await request.app[services_key].program.shopify.data_requests()})

    app.router.add_get("/api/v1/shopify/data-requests", data_requests)
