"""Pages for phones: the invite page a friend opens or scans, and the invite QR image.

Both tell a known code from an unknown one, so both spend the client's MissBudget (bot/web/limits.py) on
an unknown code and answer 429 once it is spent. Security headers and the pages' default Cache-Control
(no-store: an unknown code may be valid later) come from bot/web/http.py's security_headers.
"""
from __future__ import annotations

import functools
import logging
import re

from aiohttp import web

from bot.line.i18n import Texts
from bot.line.links import add_friend_link, invite_link, oa_message_link
from bot.line.offer_texts import budget_note, campaign_note, hold_note, joined, offer_text
from bot.web.limits import MissBudget, client_address, too_many
from bot.web.pages.render import NOT_FOUND, WAIT, page_language, qr_png, render

log = logging.getLogger(__name__)

_CODE_PATH = re.compile(r"^[2-9A-HJ-NP-Z]{8}$")
GUESSES = web.AppKey("invite_guesses", MissBudget)  # per client: lookups of codes nobody owns


def setup(app: web.Application, services_key: web.AppKey) -> None:
    """Routes for /i/{code} and /qr/{code}.png."""
    app[GUESSES] = MissBudget()

    def not_found(lang: str, texts: Texts) -> web.Response:
        body = render("notice.html", lang=lang, icon=NOT_FOUND, title=texts.get(lang, "invite_not_found_title"),
                      body=texts.get(lang, "invite_not_found_body"))
        return web.Response(text=body, status=404, content_type="text/html")

    def spent(request: web.Request) -> tuple[str, int]:
        """(the client, 0 or the seconds it must wait before looking up another code)."""
        client = client_address(request, request.app[services_key].settings.trusted_proxy_hops)
        return client, request.app[GUESSES].retry_after(client)

    def missed(request: web.Request, client: str) -> None:
        if request.app[GUESSES].missed(client):
            log.warning("invite codes: %s used up its unknown-code budget (at %s); answering 429", client,
                        request.path)

    async def invite_page(request: web.Request) -> web.Response:
        services = request.app[services_key]
        texts = services.texts
        lang = page_language(request, texts)
        code = request.match_info["code"].upper()
        if not _CODE_PATH.match(code):
            return not_found(lang, texts)
        client, wait = spent(request)
        if wait:
            body = render("notice.html", lang=lang, icon=WAIT, title=texts.get(lang, "invite_rate_limited_title"),
                          body=texts.get(lang, "invite_rate_limited_body"))
            return too_many(wait, body, "text/html")
        owner = await services.program.owner_of(code)
        if owner is None:
            missed(request, client)
            return not_found(lang, texts)
        basic_id = await services.line.basic_id()
        referrer = await services.program.member(owner)  # 相手に譲る: their share goes to the friend too
        shop = texts.get(lang, "shop_name")
        say = functools.partial(texts.get, lang)
        offer = await services.program.offer_for(owner, gift=bool(referrer and referrer.gift))
        body = render(
            "invite.html", lang=lang, title=texts.get(lang, "invite_page_title", shop=shop),
            offer=offer_text(say, "invite_page_offer", offer),
            # [budget]: once the month's referral budget is reached, the page says rewards wait
            campaign=joined(budget_note(say, await services.program.budget.referral_paused()),
                            campaign_note(say, offer), sep=" "),
            hold=hold_note(say, offer) or "",
            code_label=texts.get(lang, "invite_page_code"), code=code,
            step1=texts.get(lang, "invite_page_step1"), step2=texts.get(lang, "invite_page_step2"),
            add_friend_url=add_friend_link(basic_id), add_friend=texts.get(lang, "invite_page_add_friend"),
            oa_message_url=oa_message_link(basic_id, texts.get(lang, "invite_prefill", code=code)),
            button=texts.get(lang, "invite_page_button"), note=texts.get(lang, "invite_page_note"))
        await services.program.count("invite_pages_opened")
        return web.Response(text=body, content_type="text/html")

    async def qr_image(request: web.Request) -> web.StreamResponse:
        services = request.app[services_key]
        code = request.match_info["code"]
        if not _CODE_PATH.match(code):
            return web.Response(status=404, text="no such invite code")
        client, wait = spent(request)
        if wait:
            return too_many(wait, "too many unknown invite codes from this address; try again later")
        if await services.program.owner_of(code) is None:
            missed(request, client)
            return web.Response(status=404, text="no such invite code")
        png = qr_png(invite_link(services.settings, code))
        return web.Response(body=png, content_type="image/png",
                            headers={"Cache-Control": "public, max-age=86400, immutable"})

    app.router.add_get("/i/{code}", invite_page)
    app.router.add_get("/qr/{code}.png", qr_image)
