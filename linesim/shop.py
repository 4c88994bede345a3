"""A stand-in for a shop's login page and LINE's account-link dialog, so the console plays the account link story.

    the bot's button  ->  SHOP_LINK_URL?linkToken=…          this module's login page (enter a customer id)
    its form          ->  SHOP_LINK_URL/login?linkToken=…&customer_id=…
                          the "shop's server" (here) calls the bot's POST /api/v1/account-links with the admin
                          token, as a real shop's server would once its customer logged in, and redirects to
    redirect_url      ->  https://access.line.me/dialog/bot/accountLink?linkToken=…&nonce=…
                          which the Platform stands in for: it sends the signed accountLink event to the bot.

A real shop checks the customer's password here; the stand-in takes any customer id (it is a simulator).
"""
from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import ClientError

from .phone import failure_text, plain_document, under

if TYPE_CHECKING:
    from .console import Console, Customer

DIALOG = "https://access.line.me/dialog/bot/accountLink"
TEXTS = {
    "ja": {"title": "ショップにログイン", "lead": "LINEと連携する会員IDでログインしてください（シミュレーター: パスワード不要）。",
           "label": "会員ID", "button": "ログインして連携"},
    "en": {"title": "Log in to the shop", "lead": "Log in with the shop account to link to LINE (simulator: no "
                                                  "password needed).", "label": "Customer ID",
           "button": "Log in and link"},
}


def is_dialog(uri: str) -> bool:
    return under(uri, DIALOG)


def login_page(link_token: str, lang: str, action: str) -> str:
    """The login form. In the console's phone browser (a frame sandboxed without forms) the login is handed to the
    console as a tap on the login URL, as the frame's links are; opened on its own, the form simply submits."""
    t = TEXTS.get(lang, TEXTS["ja"])
    esc = html.escape
    return f"""<!doctype html><html lang="{esc(lang)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(t['title'])}</title>
<style>body{{font:15px system-ui,sans-serif;margin:0;background:#f4f4f4}}main{{max-width:360px;margin:24px auto;
background:#fff;border-radius:12px;padding:20px;box-shadow:0 1px 4px #0002}}h1{{font-size:18px;margin:0 0 8px}}
p{{color:#555;font-size:13px}}label{{display:block;font-size:13px;margin:12px 0 4px}}input{{width:100%;
box-sizing:border-box;padding:10px;font-size:15px;border:1px solid #ccc;border-radius:8px}}button{{width:100%;
margin-top:16px;padding:12px;border:0;border-radius:8px;background:#06C755;color:#fff;font-size:15px}}
.shop{{font-weight:bold;color:#06C755;margin-bottom:12px}}</style></head>
<body><main><div class="shop">SHOKAI SHOP</div><h1>{esc(t['title'])}</h1><p>{esc(t['lead'])}</p>
<form id="login" method="get" action="{esc(action)}">
<input type="hidden" name="linkToken" value="{esc(link_token)}">
<label for="customer_id">{esc(t['label'])}</label>
<input id="customer_id" name="customer_id" required maxlength="128" autocomplete="username" placeholder="C-10001">
<button type="submit" id="login-button">{esc(t['button'])}</button></form></main>
<script>
// the phone browser's frame is sandboxed without forms: a tap on the button (or Enter) goes to the console as
// a tap on the login URL, as the frame's links do; opened on its own, the form submits as usual
(function () {{
  var form = document.getElementById("login");
  function login(event) {{
    if (window.parent === window) {{ return; }}
    event.preventDefault();
    if (!form.reportValidity()) {{ return; }}
    var query = new URLSearchParams(new FormData(form)).toString();
    parent.postMessage({{shokaiTap: form.action + "?" + query}}, "*");
  }}
  document.getElementById("login-button").addEventListener("click", login);
  document.getElementById("customer_id").addEventListener("keydown", function (event) {{
    if (event.key === "Enter") {{ login(event); }}
  }});
}})();
</script></body></html>"""


async def open_shop(console: Console, customer: Customer, uri: str, origin: str) -> dict[str, Any]:
    """The phone opening the shop's page (SHOP_LINK_URL…) or LINE's account-link dialog."""
    if is_dialog(uri):
        return await _dialog(console, customer, uri)
    base = console.shop_link_url or ""
    query = parse_qs(urlsplit(uri).query)
    link_token = query.get("linkToken", [""])[0]
    if under(uri, base + "/login"):
        return await _login(console, customer, uri, link_token, query.get("customer_id", [""])[0].strip(), origin)
    page = login_page(link_token, customer.language, base + "/login")
    return {"effect": "browser", "url": uri, "status": 200, "html": page}


async def _login(console: Console, customer: Customer, uri: str, link_token: str, customer_id: str,
                 origin: str) -> dict[str, Any]:
    """The shop's server after its customer logged in: a nonce from the bot, then the redirect to LINE."""
    payload = {"link_token": link_token, "customer_id": customer_id}
    try:
        async with console.session.post(console.bot_url + "/api/v1/account-links", json=payload,
                                        headers={"Authorization": f"Bearer {console.admin_token}"}) as response:
            status, text = response.status, await response.text()
    except (ClientError, TimeoutError) as exc:
        return {"effect": "browser", "url": uri, "status": 0,
                "html": plain_document("ショップのサーバーがボットに届きません the shop could not reach the bot",
                                       failure_text(exc))}
    if status != 201:
        console.add_log("link", f"POST /api/v1/account-links → HTTP {status}: {text[:200]}")
        return {"effect": "browser", "url": uri, "status": status,
                "html": plain_document(f"連携できません could not link (HTTP {status})", text)}
    redirect = json.loads(text)["redirect_url"]
    console.add_entry(customer, "system", text=f"ショップにログイン shop login as {customer_id} → LINE の連携画面へ")
    return await console.open_uri(customer, redirect, origin)


async def _dialog(console: Console, customer: Customer, uri: str) -> dict[str, Any]:
    """LINE's dialog: it checks the link token and sends the accountLink event (signed) to the bot."""
    query = parse_qs(urlsplit(uri).query)
    event = console.platform.account_link(query.get("linkToken", [""])[0], query.get("nonce", [""])[0])
    if event is None:
        return {"effect": "browser", "url": uri, "status": 400,
                "html": plain_document("無効なリンクです invalid link", "LINE does not know this link token.")}
    result = event["link"]["result"]
    console.add_entry(customer, "system", text=f"アカウント連携 account link: {result}")
    status = await console._deliver(customer, event)
    return {"effect": "account_link", "result": result, "webhook_status": status}
