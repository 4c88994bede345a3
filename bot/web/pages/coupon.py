"""The coupon page a member shows at the counter (/c/{token}) and its QR image (/c/{token}.png).

The token is unguessable and is all the page reveals: no user id. The QR encodes the token itself, which is
what staff redeem with POST /api/v1/coupons/{token}/use.
"""
from __future__ import annotations

from aiohttp import web

from bot.line.links import coupon_qr_url
from bot.web.pages.render import NOT_FOUND, page_language, qr_png, render
from rewards.rules import FRIEND_COUPON_POOL, SHOPIFY_DISCOUNT

_TOKEN = r"{token:[A-Za-z0-9_-]{22}}"
_PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}  # Referrer-Policy &c.: http.security_headers


def setup(app: web.Application, services_key: web.AppKey) -> None:
    """Routes for /c/{token} and /c/{token}.png."""

    async def coupon_page(request: web.Request) -> web.Response:
        services = request.app[services_key]
        texts, catalog = services.texts, services.catalog
        lang = page_language(request, texts)
        found = await catalog.coupon(request.match_info["token"])
        if found is None:
            body = render("notice.html", lang=lang, icon=NOT_FOUND, title=texts.get(lang, "coupon_not_found_title"),
                          body=texts.get(lang, "coupon_not_found_body"))
            return web.Response(text=body, status=404, content_type="text/html", headers=_PRIVATE)
        owner, coupon = found
        reward = services.program.rules.reward(coupon.reward_id)
        name = (reward.name.get(lang) or reward.name["ja"]) if reward else coupon.reward_id
        welcome = await services.program.friend_coupons.rule_of(owner)  # an experiment arm's, or the rules'
        if coupon.reward_id == FRIEND_COUPON_POOL and welcome:  # a referral's welcome coupon: named by its offer
            name = welcome.name.get(lang) or welcome.name["ja"]
        last = catalog.last_day(coupon)
        if coupon.used:
            state_class = "used"
            state = texts.get(lang, "coupon_page_used", date=catalog.day_of(coupon.used_at_ms).strftime("%Y/%m/%d"))
        elif coupon.expired(catalog.now_ms()):
            state_class, state = "expired", texts.get(lang, "coupon_page_expired")
        else:
            state_class = "valid"
            state = (texts.get(lang, "coupon_page_valid_until", date=last.strftime("%Y/%m/%d")) if last
                     else texts.get(lang, "coupon_page_valid"))
        body = render(
            "coupon.html", lang=lang, title=name, shop=texts.get(lang, "shop_name"),
            show=texts.get(lang, "coupon_page_show"), qr_url=coupon_qr_url(services.settings, coupon.token),
            qr_alt=texts.get(lang, "coupon_page_qr_alt"), code_label=texts.get(lang, "coupon_page_code"),
            code=coupon.code, state=state, state_class=state_class,
            note=texts.get(lang, {"manual": "coupon_page_manual", SHOPIFY_DISCOUNT: "coupon_page_online"}.get(
                coupon.issue, "coupon_page_note")))
        return web.Response(text=body, content_type="text/html", headers=_PRIVATE)

    async def coupon_qr(request: web.Request) -> web.StreamResponse:
        services = request.app[services_key]
        token = request.match_info["token"]
        if await services.catalog.coupon(token) is None:
            return web.Response(status=404, text="no such coupon")
        return web.Response(body=qr_png(token), content_type="image/png",
                            headers={"Cache-Control": "private, max-age=86400"})

    app.router.add_get(f"/c/{_TOKEN}.png", coupon_qr)
    app.router.add_get(f"/c/{_TOKEN}", coupon_page)
