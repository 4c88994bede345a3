"""Invites through LIFF (README "Invites through LIFF"): the LIFF page and the two calls it makes.

- `GET /liff/invite?code=…` — the LIFF app's endpoint. The offer in the viewer's language; inside LINE its
  script (assets/pages/liff_invite.js, at /liff/invite.js) sends the ID token to the server, shows the answer,
  asks for the friendship and offers "send to friends" (liff.shareTargetPicker); anywhere else it is today's
  invite page. LINE's SDK is what it loads (settings.liff_sdk_url; `python -m bot dev` points that at the
  simulator's stand-in).
- `POST /liff/v1/attribution` `{"id_token", "code"}` — LINE verifies the token (bot/line/login.py); the person
  is its `sub`, never anything the page sends. Someone the bot knows is attributed as a code message would
  attribute them (program.attribute, every rule and reason code); someone not yet a friend is judged as far
  as can be now and waits for their follow (rewards/pre_follow.py, handlers/follow.py). 200 {status, reason?,
  message}; 401 INVALID_ID_TOKEN; 503 LINE_UNAVAILABLE; 400 for a bad body. No error changes anything.
- `POST /liff/v1/shares` `{"id_token", "code"}` — a completed share, counted once per person, code and day.

Both calls spend the same per-address budget as the invite pages (bot/web/limits.py) on an unknown code or a
refused token, so neither can be used to probe codes.
"""
from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

from bot import notices
from bot.config import ASSETS
from bot.infra.metrics import Metrics
from bot.line import flex
from bot.line.client import retry_key
from bot.line.links import add_friend_link, liff_invite_link, oa_message_link
from bot.line.login import IdToken, IdTokenRefused, LoginClient, LoginUnavailable
from bot.line.offer_texts import Say, budget_note, campaign_note, hold_note, joined, offer_text, referral_ok
from bot.services import Services
from bot.web.http import JsonRefused, error_response, loads_json
from bot.web.limits import client_address, too_many
from bot.web.pages.invite import GUESSES
from bot.web.pages.render import NOT_FOUND, WAIT, page_language, render, style_sources
from rewards import codes
from rewards.offer import ReferralOffer
from rewards.pre_follow import liff_op
from rewards.referrals import UNKNOWN_CODE

log = logging.getLogger(__name__)

LOGIN = web.AppKey("liff_login", LoginClient)
RETRY_AFTER_SECONDS = 5  # what a 503 for LINE's verify not answering tells the page
NICKNAME_MAX = 20
CODE = re.compile(f"[{re.escape(codes.ALPHABET)}]{{{codes.LENGTH}}}")  # an invite code, as the invite pages take it


class LiffRefused(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    def response(self) -> web.Response:
        answer = error_response(self.status, self.code, self.message)
        if self.retry_after:
            answer.headers["Retry-After"] = str(self.retry_after)
        answer.headers["Cache-Control"] = "no-store"
        return answer


def page_policy(sdk_url: str) -> str:
    """The LIFF page's Content-Security-Policy: the invite page's, plus its own script and LINE's SDK, which
    talks to LINE's servers (the app's settings, the login, the friendship) from the page."""
    sdk = urlsplit(sdk_url)
    sdk_origin = f" {sdk.scheme}://{sdk.netloc}" if sdk.netloc else ""  # a path: served by the page's own origin
    return "; ".join([
        "default-src 'none'",
        # the SDK may load parts of itself from LINE's CDN, and calls LINE's API hosts
        f"script-src 'self'{sdk_origin} https://*.line-scdn.net",
        "connect-src 'self' https://*.line.me https://*.line-scdn.net https://*.line-apps.com",
        "style-src " + " ".join(style_sources()),
        "img-src 'self' https: data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])


def code_of(request: web.Request) -> str:
    """The invite code: ?code=, or inside LINE's first redirect, the query kept in liff.state (LINE moves the
    LIFF URL's query there until liff.init() restores it)."""
    code = request.query.get("code")
    if not code and "liff.state" in request.query:
        state = urlsplit(request.query["liff.state"])
        code = (parse_qs(state.query).get("code") or [""])[0]
    return (code or "").strip().upper()


async def attribute(services: Services, friend: str, code: str) -> tuple[str, str | None]:
    """Attribute LINE-verified `friend` to `code`: (status, refusal reason). Runs what a code message runs:
    program.attribute with every rule, then the notices; a person not yet a friend waits for their follow."""
    program = services.program
    op = liff_op(friend, code)
    if not await program.exists(friend):
        held = await program.pre_follow.hold(friend, code)
        if held.status == "refused":
            return "refused", held.reason
        if not await program.exists(friend):
            return "awaiting_follow", None
        # the follow came while the code was being kept: it may have found nothing to attribute, so do it here
        # (the same op as the follow's: whichever of the two runs second is a replay and tells nobody)
    prior_op, _ = await program.pre_follow.attributed_by(friend)
    if prior_op == op:
        return "pending", None  # the same request again (or the follow did it): nothing new
    outcome = await program.attribute(friend, code, op=op)
    await program.pre_follow.forget(friend)
    if not outcome.ok:
        return "refused", outcome.reason
    if outcome.replay:
        return "pending", None
    await program.count("liff_attributions")
    # the friend has no reply token here: a push, keyed by the attribution, so it is sent once
    offer = await offer_of(services, outcome.referrer)
    await notices.notify(services, "referral_accepted", friend, lambda say: referral_ok(say, offer),
                         retry_key(op, "accepted", friend))
    if outcome.coupon is not None:  # the welcome coupon the chat answer would have shown as a card
        await notices.notify(services, "friend_coupon", friend, "notice_friend_coupon_given",
                             retry_key(op, "coupon", friend), code=outcome.coupon.code)
    await notices.after_attribution(services, outcome, friend, op=op)
    return "pending", None


def setup(app: web.Application, services_key: web.AppKey[Services], metrics: Metrics) -> None:
    """Routes for the LIFF page and its calls; LINE's verify gets its own client for the app's lifetime."""
    script = (ASSETS / "pages" / "liff_invite.js").read_text(encoding="utf-8")

    async def login_ctx(app: web.Application) -> AsyncIterator[None]:
        client = LoginClient(app[services_key].settings, metrics)
        app[LOGIN] = client
        try:
            yield
        finally:
            await client.close()

    app.cleanup_ctx.append(login_ctx)

    def not_here(lang: str, services: Services, status: int = 404) -> web.Response:
        texts = services.texts
        body = render("notice.html", lang=lang, icon=NOT_FOUND, title=texts.get(lang, "invite_not_found_title"),
                      body=texts.get(lang, "invite_not_found_body"))
        return web.Response(text=body, status=status, content_type="text/html")

    async def invite_page(request: web.Request) -> web.Response:
        services = request.app[services_key]
        settings, texts, program = services.settings, services.texts, services.program
        lang = page_language(request, texts)
        code = code_of(request)
        if not settings.liff_id or not CODE.fullmatch(code):
            return not_here(lang, services)
        client = client_address(request, settings.trusted_proxy_hops)
        wait = request.app[GUESSES].retry_after(client)
        if wait:
            body = render("notice.html", lang=lang, icon=WAIT, title=texts.get(lang, "invite_rate_limited_title"),
                          body=texts.get(lang, "invite_rate_limited_body"))
            return too_many(wait, body, "text/html")
        referrer = await program.owner_of(code)
        if referrer is None:
            request.app[GUESSES].missed(client)
            return not_here(lang, services)
        basic_id = await services.line.basic_id()
        shop = texts.get(lang, "shop_name")
        say, offer = functools.partial(texts.get, lang), await offer_of(services, referrer)
        card = await share_card(services, lang, referrer, code)
        body = render(
            "liff_invite.html", lang=lang, title=texts.get(lang, "invite_page_title", shop=shop),
            offer=offer_text(say, "invite_page_offer", offer),
            # [budget]: once the month's referral budget is reached, the page says rewards wait
            campaign=joined(budget_note(say, await services.program.budget.referral_paused()),
                            campaign_note(say, offer), sep=" "),
            hold=hold_note(say, offer) or "",
            code_label=texts.get(lang, "invite_page_code"), code=code, liff_id=settings.liff_id,
            sdk_url=settings.liff_sdk_url, checking=texts.get(lang, "liff_page_checking"),
            error=texts.get(lang, "liff_result_error"), shared=texts.get(lang, "liff_share_done"),
            card=json.dumps(card, ensure_ascii=False),
            add_friend_prompt=texts.get(lang, "liff_add_friend_prompt"),
            share_button=texts.get(lang, "liff_share_button"),
            step1=texts.get(lang, "invite_page_step1"), step2=texts.get(lang, "invite_page_step2"),
            add_friend_url=add_friend_link(basic_id), add_friend=texts.get(lang, "invite_page_add_friend"),
            oa_message_url=oa_message_link(basic_id, texts.get(lang, "invite_prefill", code=code)),
            button=texts.get(lang, "invite_page_button"), note=texts.get(lang, "invite_page_note"))
        if "liff.state" not in request.query:  # LINE loads the page twice (liff.state, then the query): count once
            await program.count("liff_pages_opened")
        return web.Response(text=body, content_type="text/html",
                            headers={"Content-Security-Policy": page_policy(settings.liff_sdk_url)})

    async def invite_script(request: web.Request) -> web.Response:
        return web.Response(text=script, content_type="application/javascript",
                            headers={"Cache-Control": "public, max-age=300"})

    async def verified(request: web.Request) -> tuple[Services, str, IdToken, str]:
        """(services, the client's address, LINE's word on the token, the code) or LiffRefused; nothing is
        written before this passes, and a refused token spends the address's budget."""
        services = request.app[services_key]
        settings = services.settings
        if not settings.liff_id:
            raise LiffRefused(404, "LIFF_DISABLED", "LIFF_ID is not set: invites do not go through LIFF")
        client = client_address(request, settings.trusted_proxy_hops)
        wait = request.app[GUESSES].retry_after(client)
        if wait:
            raise LiffRefused(429, "RATE_LIMITED", "too many unknown codes or refused tokens from this address; "
                                                   "try again later", retry_after=wait)
        try:
            body = loads_json(await request.read())
        except JsonRefused as exc:
            raise LiffRefused(400, "INVALID_JSON", str(exc)) from exc
        if not isinstance(body, dict):
            raise LiffRefused(400, "INVALID_BODY", "the body must be a JSON object {id_token, code}")
        token, code = body.get("id_token"), body.get("code")
        if not isinstance(token, str) or not token:
            raise LiffRefused(400, "MISSING_FIELD", "id_token is required: the string liff.getIDToken() gives")
        if not isinstance(code, str) or not CODE.fullmatch(code.strip().upper()):
            raise LiffRefused(400, "INVALID_CODE", "code must be an invite code (8 letters and digits)")
        ignored = sorted(set(body) - {"id_token", "code"})
        if ignored:  # a user id among them is exactly what must never be believed: the token says who it is
            log.info("LIFF %s: ignored the field(s) %s the page sent", request.path, ", ".join(ignored[:5]))
        try:
            identity = await request.app[LOGIN].verify(token)
        except IdTokenRefused as exc:
            log.info("LIFF %s: ID token refused (%s) from %s", request.path, exc, client)
            request.app[GUESSES].missed(client)
            raise LiffRefused(401, "INVALID_ID_TOKEN", "LINE did not accept this ID token (forged, expired or "
                                                       "for another channel); open the page from LINE again") from exc
        except LoginUnavailable as exc:
            log.warning("LIFF %s: LINE's verify is unavailable: %s", request.path, exc)
            raise LiffRefused(503, "LINE_UNAVAILABLE", "LINE could not confirm who you are just now; try again in "
                                                       f"{RETRY_AFTER_SECONDS} seconds",
                              retry_after=RETRY_AFTER_SECONDS) from exc
        return services, client, identity, code.strip().upper()

    async def attribution(request: web.Request) -> web.Response:
        try:
            services, client, identity, code = await verified(request)
        except LiffRefused as refused:
            return refused.response()
        status, reason = await attribute(services, identity.sub, code)
        if reason == UNKNOWN_CODE:
            request.app[GUESSES].missed(client)
        lang = page_language(request, services.texts)
        say = functools.partial(services.texts.get, lang)
        answer: dict[str, Any] = {"status": status}
        if reason:
            answer["reason"] = reason
        answer["message"] = await result_message(services, say, status, reason, code)
        log.info("LIFF attribution of %s to %s: %s%s", identity.sub, code, status, f" ({reason})" if reason else "")
        return web.json_response(answer, headers={"Cache-Control": "no-store"})

    async def shares(request: web.Request) -> web.Response:
        try:
            services, client, identity, code = await verified(request)
        except LiffRefused as refused:
            return refused.response()
        if await services.program.owner_of(code) is None:
            request.app[GUESSES].missed(client)
            return LiffRefused(400, "UNKNOWN_CODE", "no invite has this code").response()
        counted = await services.program.shares.record(identity.sub, code)
        return web.json_response({"counted": counted}, headers={"Cache-Control": "no-store"})

    app.router.add_get("/liff/invite", invite_page)
    app.router.add_get("/liff/invite.js", invite_script)
    app.router.add_post("/liff/v1/attribution", attribution)
    app.router.add_post("/liff/v1/shares", shares)


async def share_card(services: Services, lang: str, referrer: str, code: str) -> dict[str, Any]:
    """The Flex invite card the page sends with liff.shareTargetPicker: the offer, the LIFF link, and the code
    owner's nickname only when they agreed to show it (as the referrers' board decides)."""
    texts, program, settings = services.texts, services.program, services.settings
    shop = texts.get(lang, "shop_name")
    view = await program.member(referrer)
    nickname = view.nickname if view is not None and view.nickname_consent and view.nickname else None
    link = liff_invite_link(settings.liff_id or "", code)
    say = functools.partial(texts.get, lang)
    offer = await program.offer_for(referrer, gift=bool(view and view.gift))  # 相手に譲る: the owner's share too
    campaign = joined(budget_note(say, await program.budget.referral_paused()), campaign_note(say, offer)) or None
    contents = flex.render("liff_share", lambda key, **values: texts.get(lang, key),
                           title=texts.get(lang, "liff_share_title", shop=shop),
                           **{"from": texts.get(lang, "liff_share_from", name=flex.cut(nickname, NICKNAME_MAX))
                              if nickname else None},
                           campaign=flex.render("_campaign", say, text=campaign) if campaign else None,
                           offer=offer_text(say, "liff_share_offer", offer), link=link)
    return flex.message(offer_text(say, "liff_share_alt", offer, shop=shop), contents)


async def offer_of(services: Services, referrer: str | None) -> ReferralOffer:
    """The referral offer now for a friend of `referrer`: with the referrer's share when they give it away."""
    view = await services.program.member(referrer) if referrer else None
    return await services.program.offer_for(referrer, gift=bool(view and view.gift))


async def result_message(services: Services, say: Say, status: str, reason: str | None, code: str) -> str:
    """The page's line for an attribution's status, stating the offer as the rules pay it."""
    if status in ("pending", "awaiting_follow"):
        offer = await offer_of(services, await services.program.owner_of(code))
        key = "liff_result_pending" if status == "pending" else "liff_result_awaiting"
        return joined(offer_text(say, key, offer), hold_note(say, offer))
    if reason == "ALREADY_REFERRED":
        return offer_text(say, "refused_ALREADY_REFERRED", services.program.referral_offer())
    return say(f"refused_{reason}", days=services.program.rules.referral_window_days)
